"""What makes convd fast, checked as behaviour, never as a timing
(benchmarks are not tests: scripts/bench.sh and BENCHMARKS.md measure
speed).  Each test names the cost it guards against:

- PostgreSQL plans convd's batch statements once per connection, not once
  per batch (counted by pg_stat_statements with track_planning);
- the heap does not breathe under load: no page faults per request;
- an idle convd gives its free heap back to the kernel."""

import json
import os
import subprocess
import time

import pytest

import convdtest
from convdtest import scaled, wait_until

BENCH = os.path.join(convdtest.BUILDDIR, "convd-bench")


def bench(d, *args):
    r = subprocess.run([BENCH, "-s", d.socket, "--json"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])["methods"]


def minflt(pid):
    """Minor page faults of a process so far (/proc/PID/stat field 10)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


@pytest.fixture(scope="module")
def pgss():
    """A cluster that counts planning per statement."""
    cluster = convdtest.PgCluster().initdb(
        "shared_preload_libraries = 'pg_stat_statements'\n"
        "pg_stat_statements.track_planning = on\n")
    cluster.start()
    cluster.createdb()
    convdtest.setup_schema(cluster)
    cluster.psql("CREATE EXTENSION pg_stat_statements")
    yield cluster
    cluster.destroy()


def plans_and_calls(pg, like):
    row = pg.psql("SELECT coalesce(sum(plans), 0), coalesce(sum(calls), 0)"
                  " FROM pg_stat_statements WHERE query LIKE "
                  + convdtest.sql_literal(like))
    plans, calls = row.split("|")
    return int(plans), int(calls)


@pytest.mark.parametrize("method,like", [
    ("add_message", "INSERT INTO simple_conversation_history%unnest%"),
    # (u.ord: the batch's own statement, not schema_check's, which also
    # reads an unnest WITH ORDINALITY)
    ("get_recent_conversations", "SELECT u.ord,%unnest%WITH ORDINALITY%"),
])
def test_batch_statement_planned_once_per_connection(pgss, convd_factory,
                                                     method, like):
    """Every add_message and get_recent_conversations goes through its
    batch statement, whose parameters are arrays.  When the planner could
    see the arrays' length, every get_recent_conversations batch got a
    custom plan: the statement was planned as often as it ran (14% of
    PostgreSQL's work per history read).  Now, on one connection, each
    batch statement is planned for the first five executions at most and
    then runs its generic plan."""
    pgss.psql("SELECT pg_stat_statements_reset()")
    d = convd_factory(pgss, extra={"pool": {"size": 1, "max_overflow": 0}})
    with d.client() as c:
        for i in range(40):
            if method == "add_message":
                c.call("add_message", "plan-user", "anthropic", "user",
                       f"message {i}")
            else:
                c.call("get_recent_conversations", "plan-user", "anthropic")
    plans, calls = plans_and_calls(pgss, like)
    assert calls >= 40, (plans, calls)
    assert plans <= 6, \
        f"{method}'s batch statement was planned {plans} times in " \
        f"{calls} executions on one connection"


def load(d, method, params, clients, per_client):
    """clients threads, each on its own connection, make per_client calls
    of method(*params(client, i)) one after the other: a fixed amount of
    work, however fast the machine is.  Returns the number of calls."""
    def run(n):
        with d.client(timeout=scaled(30)) as c:
            for i in range(per_client):
                c.call(method, *params(n, i))

    errors = convdtest.in_threads(run, range(clients))
    assert not errors, errors[:3]
    return clients * per_client


@pytest.mark.skipif(not convdtest.own_allocator(),
                    reason="valgrind / ASan replace the allocator")
def test_no_page_faults_per_request_under_load(schema, convd_factory):
    """32 clients reading the 20 newest messages (400 bytes each) of 40
    users, 2,048 reads in all.  With glibc's default thresholds the top of
    the heap went back to the kernel and was faulted in again, zero filled,
    all the time: 1.5 minor page faults per request (with the allocator
    policy of memory.c switched off, this load still makes 0.5 to 0.7 per
    read).  Now freed memory is kept for reuse while convd is busy."""
    d = convd_factory(schema)
    users = [f"faults-{u}" for u in range(40)]
    text = "x" * 400
    load(d, "add_message", lambda n, i: (users[(n * 100 + i) % 40],
                                         "anthropic", "user", text), 8, 100)

    def read(n, i):
        return (users[(n + i) % 40], "anthropic", 20)
    load(d, "get_recent_conversations", read, 32, 8)   # the heap grows
    before = minflt(d.proc.pid)
    reads = load(d, "get_recent_conversations", read, 32, 64)
    faults = minflt(d.proc.pid) - before
    assert faults / reads < 0.1, f"{faults} page faults for {reads} reads"


def test_quiet_convd_returns_free_heap(schema, convd_factory):
    """After a burst of work, once a whole trim period (5 s) has gone by
    without a request that uses the database, convd hands its free heap
    back (malloc_trim): an idle daemon does not keep its busiest moment's
    memory.  Polling stats meanwhile does not count as work.  Regression:
    the trim was called inside log_debug()'s arguments, which are not
    evaluated below the debug level, so at the default level it never
    happened (this test runs at the default level, info)."""
    d = convd_factory(schema)
    with d.client() as c:
        assert c.call("stats")["memory"]["trims"] == 0
        bench(d, "-c", "8", "-T", "1", "-m", "add_message", "--users", "20")
        mem = c.call("stats")["memory"]
        assert mem["heap_bytes"] >= mem["heap_free_bytes"] >= 0, mem
        wait_until(lambda: c.call("stats")["memory"]["trims"] == 1,
                   timeout=scaled(15), interval=0.5,
                   what="the quiet-time trim")
        # quiet still: once per quiet spell, not every period
        time.sleep(6)
        assert c.call("stats")["memory"]["trims"] == 1
