"""Where the primary is (issue 19, points 4-6 without Patroni; the real
cluster is in test_patroni.py), and libpq's notices in convd's log.

Two private clusters stand for the members of an HA pair: convd is given
both hosts with target_session_attrs = read-write.  Making the first one
read-only (as a demoted primary is) while the second accepts writes is
what a failover looks like from convd's side, without a DCS.
"""

import time

import pytest

import convdtest
from convdtest import Writers, scaled, wait_until


def both(a, b, **db):
    # the list and target_session_attrs in a connection string: convd
    # reads what libpq will do from it
    url = (f"host={a.sockdir},{b.sockdir} port={a.port},{b.port} "
           f"dbname={a.dbname} user={a.user} "
           "target_session_attrs=read-write")
    return {"database": dict({"url": url, "recheck_interval": 1}, **db),
            "pool": {"size": 4, "min_size": 2, "max_overflow": 2,
                     "timeout": 5},
            "retention": {"days_to_keep": 0}}


def read_only(pg, on=True):
    pg.psql(f"ALTER SYSTEM SET default_transaction_read_only = "
            f"{'on' if on else 'off'}", db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")


def convd_backends(pg):
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                       "application_name = 'convd'", db="postgres"))


def test_read_only_error_moves_writes(pg_factory, convd_factory):
    """The first host turns read-only under write load: the writes that
    meet it fail with `unavailable` (25006: nothing written), every
    connection is checked again, and convd writes on the second host
    within a second; nothing acknowledged is lost."""
    a, b = pg_factory(), pg_factory()
    d = convd_factory(a, extra=both(a, b))
    w = Writers(d.socket, n=4).start()
    try:
        wait_until(lambda: w.count("ok") >= 50, timeout=20, what="writes")
        read_only(a)
        t_ro = time.monotonic()
        wait_until(lambda: w.count("ok", t_ro + 0.05) >= 50, timeout=20,
                   what="writes on the second host")
        first = min(r[4] for r in w.outcomes(t_ro + 0.05) if r[1] == "ok")
    finally:
        w.stop()
    errs = [r for r in w.results if r[1] == "error"]
    assert {r[2] for r in errs} <= {"unavailable"}, errs[:5]
    assert first - t_ro < scaled(1.5), first - t_ro
    # every acknowledged write is on one host or the other
    acked = [r for r in w.results if r[1] == "ok"]
    on_a = len(acked) - len(w.lost(a))
    on_b = len(acked) - len(w.lost(b))
    assert on_a + on_b == len(acked), (on_a, on_b, len(acked))
    assert on_a > 0 and on_b > 0, (on_a, on_b)
    with d.client() as c:
        st = c.call("stats")["pool"]
    assert st["read_only"] >= 1, st
    assert convd_backends(a) == 0


def test_recheck_interval_without_errors(pg_factory, convd_factory):
    """Only reads (no error to notice): within recheck_interval (1 s) of
    the first host turning read-only, convd's connections have left it."""
    a, b = pg_factory(), pg_factory()
    d = convd_factory(a, extra=both(a, b))
    with d.client() as c:
        c.call("get_recent_conversations", "u", "anthropic")
        wait_until(lambda: convd_backends(a) >= 2, timeout=10,
                   what="connections on the first host")
        read_only(a)
        t = time.monotonic()

        def moved():
            c.call("get_recent_conversations", "u", "anthropic")
            return convd_backends(a) == 0
        wait_until(moved, timeout=scaled(10), interval=0.1,
                   what="connections to leave the read-only host")
        took = time.monotonic() - t
        st = c.call("stats")["pool"]
    assert took < scaled(3), took
    assert st["rechecks"] >= 1 and st["read_only"] >= 1, st
    assert convd_backends(b) >= 1


def test_commit_not_replicated_is_not_acknowledged(pg_factory,
                                                   convd_factory):
    """A primary that waits for a synchronous standby that never answers:
    a cancel (pg_cancel_backend; a request deadline does the same) ends
    the wait, PostgreSQL commits locally and says so in a WARNING only.  convd does not acknowledge such a write
    (`unavailable`; a client with an idempotency key may retry it) and
    counts it."""
    pg = pg_factory()
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
            db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    d = convd_factory(pg, extra={
        "pool": {"size": 2, "min_size": 1, "max_overflow": 0, "timeout": 5},
        "retention": {"days_to_keep": 0}})
    with d.client() as c:
        msgid = c.request("add_message", "sync", "anthropic", "user", "hi")
        pid = wait_until(lambda: pg.psql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
            db="postgres"), timeout=10, what="a commit waiting")
        pg.psql(f"SELECT pg_cancel_backend({pid})", db="postgres")
        resp = c.recv()
        assert resp[1] == msgid and resp[2] is not None, resp
        assert resp[2]["code"] == "unavailable", resp
        assert "synchronous standby" in resp[2]["message"], resp
        st = c.call("stats")["pool"]
    assert st["not_replicated"] == 1, st
    assert "canceling wait for synchronous replication" in d.log()


def test_libpq_notices_go_through_the_log(schema, convd_factory):
    """pg_terminate_backend on convd's idle connections: the server's
    FATAL reaches convd's log as a log line (level, prefix), not libpq's
    raw "FATAL:  terminating connection" on stderr."""
    d = convd_factory(schema, extra={"database": {
        "application_name": "notice-test"}})
    wait_until(lambda: schema.backend_pids("notice-test"), timeout=10,
               what="connections")
    schema.terminate_app("notice-test")
    wait_until(lambda: "57P01" in d.log(), timeout=10,
               what="the notice in the log")
    log = d.log()
    lines = [ln for ln in log.splitlines() if "terminating connection" in ln]
    assert lines, log
    assert all("convd[" in ln and ": warning: pool: connection" in ln
               and "server says FATAL 57P01" in ln for ln in lines), lines


def test_stale_primary_is_left(pg_factory, convd_factory):
    """Split brain, as when the old leader's Patroni is frozen while a
    standby is promoted: both servers of the list accept writes.  convd
    compares timelines (the promoted one writes on a newer one), leaves
    the stale primary within about two recheck_intervals and writes on the
    new one; new connections skip the stale one."""
    a = pg_factory()
    b = a.make_standby()
    b.start()
    try:
        d = convd_factory(a, extra=both(a, b))
        w = Writers(d.socket, n=2).start()
        try:
            wait_until(lambda: w.count("ok") >= 50, timeout=20,
                       what="writes on the first host")
            b.promote()
            t = time.monotonic()
            wait_until(lambda: convd_backends(a) == 0 and
                       convd_backends(b) >= 1, timeout=scaled(10),
                       interval=0.1, what="convd to leave the stale primary")
            took = time.monotonic() - t
            n = w.count("ok")
            wait_until(lambda: w.count("ok") >= n + 50, timeout=10,
                       what="writes on the new primary")
        finally:
            w.stop()
        with d.client() as c:
            st = c.call("stats")["pool"]
        assert st["stale"] >= 1, st
        assert took < scaled(4), took
        assert "leaving the stale primary" in d.log()
        errs = [r for r in w.results if r[1] == "error"]
        assert {r[2] for r in errs} <= {"unavailable"}, errs[:5]
        # the last writes are on the new primary, none on the old one
        not_a = {r[0] for r in w.lost(a)}
        not_b = {r[0] for r in w.lost(b)}
        last = [r for r in w.results if r[1] == "ok"][-20:]
        assert all(r[0] in not_a and r[0] not in not_b for r in last), last
    finally:
        b.destroy()
