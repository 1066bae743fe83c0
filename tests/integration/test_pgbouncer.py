"""convd behind a real PgBouncer (Debian's 1.18) in transaction mode.

Named prepared statements do not survive a transaction-mode pooler: the
next transaction may run on another server session (26000, statement
missing) and a server session keeps the statements of a client that left
(42P05, already there).  convd detects the pooler (the server process that
answers is not the one the connection's start-up named) and then sends
unnamed statements and keeps no session state (issue 19, points 1-2).
"""

import os
import signal
import time

import pytest

import convdtest
from convdtest import PgBouncer, Writers, scaled, wait_until

HIST = "simple_conversation_history"


@pytest.fixture
def bouncer(schema):
    b = PgBouncer(schema, pool_size=3).start()
    yield b
    b.destroy()


def conf(bouncer, prepared="auto", **pool):
    return {"database": bouncer.database(prepared_statements=prepared),
            "pool": dict({"size": 6, "min_size": 2, "max_overflow": 2,
                          "timeout": 5}, **pool),
            "retention": {"days_to_keep": 0}}


def errors(w, after=0.0):
    return [r for r in w.outcomes(after) if r[1] == "error"]


def test_transaction_mode_detected_no_errors(schema, bouncer, convd_factory):
    """auto: convd sees the pooler, says so, and serves writes and reads
    through it with no error under load, across a convd restart against
    the warm PgBouncer (whose server sessions hold nothing of the old
    convd) and across a PgBouncer online restart (-R); every acknowledged
    write is stored."""
    d = convd_factory(schema, extra=conf(bouncer))
    with d.client() as c:
        wait_until(lambda: c.call("stats")["pool"]["pooler"], timeout=10,
                   what="the pooler to be seen")
    assert "transaction-mode pooler" in d.log()
    w = Writers(lambda: d.socket, n=6).start()
    try:
        wait_until(lambda: w.count("ok") >= 300, timeout=30,
                   what="writes through PgBouncer")
        with d.client() as c:
            for _ in range(50):
                c.call("get_recent_conversations", w.user, "anthropic", 5)
                c.call("get_conversation_count", w.user)
        assert not errors(w), errors(w)[:5]

        # convd restarts against the warm PgBouncer
        d.stop()
        t_restart = time.monotonic()
        d.start()
        n = w.count("ok")
        wait_until(lambda: w.count("ok") >= n + 300, timeout=30,
                   what="writes after the convd restart")
        with d.client() as c:
            assert c.call("health")["ok"] is True
        assert not errors(w, t_restart), errors(w, t_restart)[:5]

        # PgBouncer restarts online (takes its sockets over)
        t_bounce = time.monotonic()
        bouncer._run("-d", "-R")
        n = w.count("ok")
        wait_until(lambda: w.count("ok") >= n + 300, timeout=30,
                   what="writes after the PgBouncer restart")
    finally:
        w.stop()
    assert not errors(w), errors(w)[:5]
    # only the convd restart may cut a request short (no answer)
    io = [r for r in w.results if r[1] == "io"]
    assert all(r[3] >= t_restart - 1 and r[3] < t_bounce for r in io), io
    assert not w.lost(schema), w.lost(schema)[:5]
    with d.client() as c:
        assert c.call("health")["ok"] is True


def test_pgbouncer_stop_start(schema, bouncer, convd_factory):
    """PgBouncer stopped (safe shutdown, SIGINT) and started again under
    load: while it is gone requests get `unavailable` (nothing else), and
    from the moment it is back they succeed, with nothing acknowledged
    lost."""
    d = convd_factory(schema, extra=conf(bouncer))
    w = Writers(lambda: d.socket, n=4).start()
    try:
        wait_until(lambda: w.count("ok") >= 100, timeout=30,
                   what="writes through PgBouncer")
        bouncer.stop(signal.SIGINT)
        time.sleep(0.3)
        bouncer.start()
        t_up = time.monotonic()
        n = w.count("ok")
        wait_until(lambda: w.count("ok") >= n + 200, timeout=30,
                   what="writes after PgBouncer came back")
        # requests that began 1 s after PgBouncer listened again all
        # succeeded
        late = [r for r in w.outcomes(t_up + scaled(1)) if r[1] != "ok"]
    finally:
        w.stop()
    assert {r[2] for r in errors(w)} <= {"unavailable"}, errors(w)[:5]
    assert not late, late[:5]
    assert not w.lost(schema), w.lost(schema)[:5]


def test_prepared_yes_fails_and_health_says_so(schema, convd_factory):
    """prepared_statements = yes forces named statements through the
    transaction pooler: after a convd restart against the warm PgBouncer
    (one server session, which keeps the old convd's statements) every
    PREPARE finds its statement already there (42P05) and every request
    fails; `health` is then not ok (database "failing"), where it used to
    say ok."""
    one = PgBouncer(schema, pool_size=1).start()
    try:
        d = convd_factory(schema, extra=conf(one, prepared="yes", size=2,
                                              min_size=1))
        with d.client() as c:
            for i in range(5):
                c.call("add_message", "yes-user", "anthropic", "user",
                       f"first-{i}")
        d.stop()
        d.start()
        fails, codes = 0, set()
        with d.client() as c:
            for i in range(20):
                try:
                    c.call("add_message", "yes-user", "anthropic", "user",
                           f"then-{i}")
                except convdtest.RpcError as e:
                    fails += 1
                    codes.add(e.code)
            h = c.call("health")
    finally:
        one.destroy()
    assert fails == 20, "named statements went through a transaction pooler"
    assert codes == {"unavailable"}, codes
    assert h["ok"] is False and h["database"] == "failing", h
    assert "42P05" in d.log()


def test_retention_through_pooler(schema, bouncer, convd_factory):
    """Behind a transaction pooler retention takes a transaction lock per
    batch (a session lock would stay on a server session): two runs in a
    row both run (neither is skipped) and delete what is old."""
    d = convd_factory(schema, extra=conf(bouncer))
    user = f"ret-{os.getpid()}"
    schema.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, "
                f"role, content, created_at) SELECT '{user}', 'line', 'x', "
                "'user', 'old' || g, now() - interval '40 days' "
                "FROM generate_series(1, 25) g")
    with d.client() as c:
        r1 = c.call("cleanup_old_conversations", 30)
        r2 = c.call("cleanup_old_conversations", 30)
    assert r1["skipped"] is False and r1["deleted"] >= 25, r1
    assert r2["skipped"] is False, r2
    assert schema.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                       f"'{user}'") == "0"
