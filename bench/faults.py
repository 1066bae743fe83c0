#!/usr/bin/env python3
"""Figures for README's promises under faults (issue 15): a frozen
PostgreSQL under load, a commit that never returns, hostile clients against
the memory budget, large results.  Not a test (timings): the assertions
live in tests/integration/test_faults.py, whose helpers this reuses.

    CONVD_BUILDDIR=build CONVD_SRCDIR=. python3 bench/faults.py
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_SRCDIR", os.path.join(HERE, ".."))

import convdtest  # noqa: E402
import test_faults as tf  # noqa: E402
import benchlib  # noqa: E402
from benchlib import pct  # noqa: E402


class Factory:
    def __init__(self):
        self.made = []

    def __call__(self, pg, extra=None, env=None, start=True, wait=True):
        d = convdtest.Convd(pg, extra=extra, env=env)
        self.made.append(d)
        if start:
            d.start(wait=wait)
        return d

    def stop(self):
        for d in self.made:
            d.stop()


def ms(x):
    return f"{x * 1000:.0f} ms"


def frozen(pg):
    f = Factory()
    cv = f(pg, extra={"server": {"request_timeout": tf.DEADLINE_MS},
                      "database": {"connect_timeout": 2},
                      "pool": {"size": 3, "max_overflow": 2}})
    loads = [tf.Load(cv.socket, tf.uid("frz")) for _ in range(4)]
    loads += [tf.Load(cv.socket, tf.uid("frzr"), "get_recent_conversations")]
    for ld in loads:
        ld.start()
    time.sleep(1.0)
    pids = tf.pg_pids(pg)
    t_stop = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    stalled_at = None
    lat = []
    with convdtest.Client(cv.socket) as c:
        while time.monotonic() < t_stop + 5:
            t0 = time.monotonic()
            h = c.call("health")
            lat.append(time.monotonic() - t0)
            if stalled_at is None and h["database"] == "stalled":
                stalled_at = time.monotonic() - t_stop
            time.sleep(0.05)
    for p in pids:
        os.kill(p, signal.SIGCONT)
    t_cont = time.monotonic()
    with convdtest.Client(cv.socket) as c:
        convdtest.wait_until(lambda: c.call("add_message", "after", "openai",
                                            "user", "x"), timeout=30)
    back = time.monotonic() - t_cont
    time.sleep(0.5)
    for ld in loads:
        ld.stop.set()
    for ld in loads:
        ld.join(30)
    frozen = [c for ld in loads for c in ld.calls
              if c[0] < t_cont and c[1] > t_stop + 0.2]
    worst = max(c[1] - c[0] for c in frozen)
    codes = {}
    for c in frozen:
        k = c[2] if isinstance(c[2], str) else "ok"
        codes[k] = codes.get(k, 0) + 1
    tf.check_acked_stored(pg, loads)
    acked = sum(len(ld.acked) for ld in loads)
    print(f"SIGSTOP 5 s, 5 clients, request_timeout {tf.DEADLINE_MS} ms: "
          f"{len(frozen)} calls during the freeze ({codes}), "
          f"the longest took {ms(worst)}; health said stalled "
          f"after {ms(stalled_at)}; health/ping answered in at most "
          f"{ms(max(lat))} throughout; first write after SIGCONT "
          f"{ms(back)}; {acked} acknowledged writes, all stored")
    f.stop()


def never_commits(pg):
    f = Factory()
    cv = f(pg, extra={"server": {"request_timeout": tf.DEADLINE_MS},
                      "pool": {"size": 2, "max_overflow": 2}})
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = 'missing'",
            db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    time.sleep(0.3)
    with convdtest.Client(cv.socket) as c:
        t0 = time.monotonic()
        try:
            c.call("add_message", "sync", "openai", "user", "x")
            code = "ok"
        except convdtest.RpcError as e:
            code = e.code
        took = time.monotonic() - t0
    t1 = time.monotonic()
    convdtest.wait_until(lambda: pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        db="postgres").strip() == "0", timeout=10)
    gone = time.monotonic() - t1
    pg.psql("ALTER SYSTEM RESET synchronous_standby_names", db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    print(f"commit waiting for a missing synchronous standby: {code} after "
          f"{ms(took)}; the backend's wait cancelled {ms(gone)} later")
    f.stop()


def budget(pg, big, huge):
    for limit in (tf.BUDGET, 0):
        f = Factory()
        cv = tf.budget_convd(f, pg, limit)
        good = tf.GoodClient(cv.socket)
        good.start()
        time.sleep(0.3)
        held = tf.stalled_frames(cv.socket, 150)
        held += tf.non_readers(cv.socket, 30, big, per=2)
        time.sleep(2.0)
        st = convdtest.Client(cv.socket).call("stats")["budget"]
        good.stop.set()
        good.join()
        peak = tf.rss_peak(cv.proc.pid)
        for s in held:
            s.close()
        print(f"memory_budget {limit >> 20} MiB, 150 frames stalled 1 byte "
              f"short of 2 MiB + 30 clients not reading 2 x 3 MiB: peak RSS "
              f"{peak >> 20} MiB, {st['cutoffs']} clients cut off; good "
              f"client ping p99 {ms(pct(good.lat, 99))}, get_thread p99 "
              f"{ms(pct(good.lat_db, 99))} (max {ms(max(good.lat_db))})")
        f.stop()
    f = Factory()
    cv = tf.budget_convd(f, pg)
    base = tf.rss_peak(cv.proc.pid)
    out = tf.concurrent_large(cv.socket, huge)
    print(f"16 concurrent 10 MiB answers over max_output_bytes (4 MiB): "
          f"{out.count('result_too_large')} result_too_large, RSS grew "
          f"{(tf.rss_peak(cv.proc.pid) - base) >> 20} MiB")
    f.stop()


def main():
    pg = benchlib.cluster()
    try:
        frozen(pg)
        never_commits(pg)
        big, huge = tf.make_big_users(pg)
        budget(pg, big, huge)
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
