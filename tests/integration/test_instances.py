"""Many convd instances on one small PostgreSQL (issue 19, point 3).

Pools open connections on demand and give back what they do not use; when
the sum of the pools' ceilings is more than the server allows, a pool
that is refused a connection (53300) keeps its requests waiting, and every
contended pool gives a connection back now and then, so that a starved or
restarted instance gets its share.
"""

import json
import os
import subprocess

import pytest

import convdtest
from convdtest import Writers, wait_until

ROLE = "convd_app"
MAX_CONN = 12           # 3 of them reserved for superusers (the test's psql)
BENCH = os.path.join(convdtest.BUILDDIR, "convd-bench")


@pytest.fixture
def small_pg():
    pg = convdtest.PgCluster().initdb(
        f"max_connections = {MAX_CONN}\nsuperuser_reserved_connections = 3\n")
    pg.start()
    pg.createdb()
    convdtest.setup_schema(pg)
    pg.psql(f"CREATE ROLE {ROLE} LOGIN; "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
            f"public TO {ROLE}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA "
            f"public TO {ROLE}")
    yield pg
    pg.destroy()


def instance(pg, convd_factory, n, min_size=1):
    return convd_factory(pg, extra={
        "database": {"user": ROLE, "application_name": f"inst{n}"},
        # ceilings: 4 x 6 = 24 connections on a server that has 9
        "pool": {"size": 6, "min_size": min_size, "max_overflow": 0,
                 "timeout": 5, "idle_timeout": 5},
        "retention": {"days_to_keep": 0},
        "log": {"level": "info"}})


def bench(d, seconds):
    """convd-bench on d's socket in the background (batched writes and
    reads: up to 6 connections' worth of work)."""
    return subprocess.Popen(
        [BENCH, "-s", d.socket, "-c", "4", "-j", "1", "-d", "2",
         "-T", str(seconds), "-m", "add_message:1,get_recent_conversations:1",
         "--users", "200", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def bench_result(p):
    out, _ = p.communicate(timeout=60)
    for line in out.splitlines():
        if line.startswith("{"):
            m = json.loads(line)["methods"]
            return (sum(v["requests"] for v in m.values()),
                    sum(v["errors"] for v in m.values()))
    return None     # it lost its convd (that instance was restarted)


def test_four_instances_share_a_small_server(small_pg, convd_factory):
    """4 instances whose ceilings add up to 24 connections, on a server
    with 9 for them, all under load, then restarted one by one: every
    instance serves in every phase (a restarted one included), the few
    errors are timeouts (a request waits at most [pool] timeout), the
    pools counted refusals and gave connections back, and no
    acknowledged write is lost."""
    pg = small_pg
    ds = [instance(pg, convd_factory, n) for n in range(4)]
    ws = [Writers(lambda d=d: d.socket, n=2, user=f"inst{n}",
                  timeout=20).start() for n, d in enumerate(ds)]
    phases = []
    try:
        phases.append([bench_result(p) for p in
                       [bench(d, 4) for d in ds]])
        # rolling restart: each in turn, the others under load
        before_restart = []     # a restart starts its counters anew
        for n, d in enumerate(ds):
            others = {j: bench(o, 4) for j, o in enumerate(ds) if j != n}
            with d.client() as c:
                before_restart.append(c.call("stats")["pool"])
            d.stop()
            d.start()
            mine = bench_result(bench(d, 3))
            res = {j: bench_result(p) for j, p in others.items()}
            res[n] = mine
            phases.append([res[j] for j in range(4)])
        stats = []
        for d in ds:
            with d.client() as c:
                stats.append(c.call("stats")["pool"])
    finally:
        for w in ws:
            w.stop()
    for i, ph in enumerate(phases):
        for n, r in enumerate(ph):
            assert r is not None, (i, n, ph)
            assert r[0] > 0, f"phase {i}: instance {n} served nothing: {ph}"
    requests = sum(r[0] for ph in phases for r in ph)
    errors = sum(r[1] for ph in phases for r in ph)
    assert errors <= requests * 0.05, (errors, requests, phases)
    errs = [r for w in ws for r in w.results if r[1] == "error"]
    assert {r[2] for r in errs} <= {"timeout"}, errs[:5]
    for w in ws:
        assert not w.lost(pg), w.lost(pg)[:5]
        assert w.count("ok") > 0
    # it really was contended, and the pools gave connections back (over
    # the whole run: the counters of each instance's first life too)
    counted = stats + before_restart
    assert sum(s["refused"] for s in counted) > 0, counted
    assert sum(s["given_back"] for s in counted) > 0, counted
    assert all(s["open"] <= 6 for s in stats), stats
    print(f"# phases (requests, errors) per instance: {phases}")


def test_idle_pool_gives_back(small_pg, convd_factory):
    """A burst opens connections up to what it needs; idle_timeout later
    only min_size are left."""
    d = instance(small_pg, convd_factory, 9, min_size=2)
    with d.client() as c:
        wait_until(lambda: c.call("stats")["pool"]["open"] == 2,
                   timeout=10, what="min_size connections")
    p = bench(d, 2)
    with d.client() as c:
        peak = 0
        while p.poll() is None:
            peak = max(peak, c.call("stats")["pool"]["open"])
        assert bench_result(p)[0] > 0
        assert 2 < peak <= 6, peak
        wait_until(lambda: c.call("stats")["pool"]["open"] == 2,
                   timeout=15, what="idle connections to close")
