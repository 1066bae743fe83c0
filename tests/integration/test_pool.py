"""The backend pool and high availability: PostgreSQL restarted under load,
failover to a promoted standby, servers that drop connections, pool
exhaustion, a database that is unreachable at start, libpq settings,
connection recycling and overflow connections.  Every cluster is a real
PostgreSQL (convdtest.PgCluster); the daemon is the real convd."""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

import convdtest
from convdtest import RpcError, sql_literal as q, uid, wait_until

HIST = "simple_conversation_history"
DOWN_CODES = ("unavailable", "timeout")


def appname(tag):
    """A unique application_name: finds one convd's backends."""
    return f"convd-{tag}-{uuid.uuid4().hex[:8]}"


def add(c, user, content="x", provider="anthropic"):
    return c.call("add_message", user_id=user, provider=provider,
                  role="user", content=content)


def contents(pg, user):
    out = pg.psql(f"SELECT id, content FROM {HIST} WHERE user_id = {q(user)}")
    rows = {}
    for line in out.splitlines():
        i, c = line.split("|", 1)
        rows[c] = int(i)
    return rows


def pool_stats(d):
    with d.client() as c:
        return c.call("stats")["pool"]


def extra(app, pool, **sections):
    """A convd config: our pool settings, our application_name, retention
    off (its start-up run would take a connection at an odd moment)."""
    ex = {"pool": pool, "database": {"application_name": app},
          "retention": {"days_to_keep": 0}}
    for sec, kv in sections.items():
        ex.setdefault(sec, {}).update(kv)
    return ex


def wait_for_waiters(pg, n, timeout=10):
    """Waits until n sessions wait for a lock."""
    wait_until(lambda: int(pg.psql(
        "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")) >= n,
        timeout=timeout, what=f"{n} sessions waiting for a lock")


class Locker:
    """A psql session that holds a lock (in pg_sleep) until release().

    Locker(pg, user=U) locks user U's thread row (SELECT ... FOR UPDATE):
    save_thread(U, ...) then blocks on it while holding its connection,
    and nothing else is blocked.  A table lock is no good for that: the
    PREPAREs that set up a new pool connection take table locks too (an
    INSERT's parse analysis takes ROW EXCLUSIVE), so no overflow
    connection could be opened (test_overflow_under_table_lock).
    Locker(pg, table_mode=MODE) holds LOCK TABLE history IN MODE.
    """

    def __init__(self, pg, user=None, table_mode=None):
        self.pg = pg
        self.app = appname("locker")
        if table_mode:
            lock = f"LOCK TABLE {HIST} IN {table_mode} MODE"
        else:
            lock = (f"SELECT 1 FROM user_thread_table WHERE user_id = "
                    f"{q(user)} AND platform = 'line' FOR UPDATE")
        self.proc = pg.background_psql(
            f"BEGIN; {lock}; SELECT pg_sleep(120); COMMIT;", self.app)
        wait_until(lambda: pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            f"{q(self.app)} AND wait_event = 'PgSleep'") == "1",
            timeout=10, what="the locker to hold its lock")

    def release(self):
        if self.proc.poll() is None:
            self.pg.terminate_app(self.app)
            self.proc.wait(10)


def blocked_save_threads(d, user, n):
    """n clients whose save_thread(user) blocks on a Locker's row lock;
    returns (clients, msgids)."""
    clients = [d.client(timeout=30) for _ in range(n)]
    ids = [cl.request("save_thread", user, f"thread-{i}")
           for i, cl in enumerate(clients)]
    return clients, ids


# -------------------------------------------------- overflow, first half

@pytest.fixture(scope="module")
def overflow_convd(schema):
    """A convd with size 2 + max_overflow 2 for the overflow tests, kept
    for the whole module (see test_overflow_idle_connections_close)."""
    app = appname("overflow")
    d = convdtest.Convd(schema, extra=extra(app, {
        "size": 2, "max_overflow": 2, "timeout": 20,
        "overflow_idle_timeout": 3})).start()
    d.app = app
    d.idle_since = None
    yield d
    d.stop()
    shutil.rmtree(d.tmp, ignore_errors=True)


def overflow_load(pg, d):
    """Five save_thread requests blocked behind a row lock: the pool opens
    4 connections (never more), one request waits; then the lock goes and
    all five succeed.  Sets d.idle_since."""
    user = uid()
    with d.client() as c:
        assert c.call("save_thread", user, "t") is True
    wait_until(lambda: len(pg.backend_pids(d.app)) == 2, timeout=10,
               what="two connections")
    clients = []
    locker = None
    try:
        locker = Locker(pg, user=user)
        clients, ids = blocked_save_threads(d, user, 5)
        wait_for_waiters(pg, 4)
        st = wait_until(lambda: (lambda s: s if s["waiting"] == 1 else None)(
            pool_stats(d)), timeout=5, what="one request waiting")
        assert st["open"] == 4 and st["busy"] == 4, st
        assert len(pg.backend_pids(d.app)) == 4
        locker.release()
        for cl, msgid in zip(clients, ids):
            m = cl.recv()
            assert m[1] == msgid and m[2] is None and m[3] is True, m
    finally:
        if locker:
            locker.release()
        for cl in clients:
            cl.close()
    d.idle_since = time.monotonic()
    st = pool_stats(d)
    assert st["open"] == 4 and st["busy"] == 0 and st["idle"] == 4, st
    assert len(pg.backend_pids(d.app)) == 4


def test_overflow_opens_under_load(schema, overflow_convd):
    """size 2 + max_overflow 2: under load the pool opens up to 4
    connections, never more, and they stay open right after the load."""
    overflow_load(schema, overflow_convd)


# --------------------------------------------------- restart under load

def test_restart_under_write_load(pg_factory, convd_factory):
    """pg_ctl stop -m immediate and start again while four clients write:
    convd neither crashes nor hangs, every acknowledged message is stored,
    every other one got unavailable/timeout within the pool timeout, and
    writes resume within seconds of the restart."""
    own = pg_factory()
    timeout = 2
    d = convd_factory(own, extra=extra(appname("restart"), {
        "size": 4, "max_overflow": 4, "timeout": timeout}))
    user = uid()
    results = []            # (content, kind, value, t0, t1)
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n):
        with d.client(timeout=timeout + 20) as c:
            i = 0
            while not stop.is_set():
                content = f"w{n}-{i}"
                i += 1
                t0 = time.monotonic()
                try:
                    kind, value = "ok", add(c, user, content)["id"]
                except RpcError as e:
                    kind, value = "error", e.code
                except OSError as e:   # hang (socket timeout) or crash
                    kind, value = "io", repr(e)
                t1 = time.monotonic()
                with lock:
                    results.append((content, kind, value, t0, t1))
                if kind == "io":
                    return
                if kind == "error":
                    time.sleep(0.02)    # do not spin while it is down

    def count(kind, after=0.0):
        with lock:
            return sum(1 for r in results if r[1] == kind and r[3] >= after)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True)
               for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: count("ok") >= 40, timeout=15,
                   what="writes before the crash")
        t_crash = time.monotonic()
        own.stop("immediate")
        wait_until(lambda: count("error", t_crash) >= 4, timeout=15,
                   what="errors while the database is down")
        # Stay down until convd has retried a few times (with backoff).
        wait_until(lambda: pool_stats(d)["connect_failures"] >= 3,
                   timeout=15, what="reconnection attempts")
        own.start()
        t_up = time.monotonic()
        wait_until(lambda: count("ok", t_up) >= 1, timeout=20,
                   what="writes to resume after the restart")
        resumed = min(r[3] for r in results if r[1] == "ok" and r[3] >= t_up)
        n_ok = count("ok")
        wait_until(lambda: count("ok") >= n_ok + 40, timeout=15,
                   what="steady writes after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout + 25)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert d.proc.poll() is None, "convd died:\n" + d.log()

    io = [r for r in results if r[1] == "io"]
    assert not io, f"requests without an answer: {io[:5]}"
    errors = [r for r in results if r[1] == "error"]
    assert {r[2] for r in errors} <= set(DOWN_CODES), \
        {r[2] for r in errors}
    slow = [r for r in results if r[4] - r[3] > timeout + 1.5]
    assert not slow, f"answered later than the pool timeout: {slow[:5]}"
    assert resumed - t_up < 5, f"resumed {resumed - t_up:.1f} s after start"

    stored = contents(own, user)
    acked = {r[0]: r[2] for r in results if r[1] == "ok"}
    missing = sorted(set(acked) - set(stored))
    assert not missing, f"acknowledged but not stored: {missing[:10]}"
    assert all(stored[c] == i for c, i in acked.items()), "ids differ"
    # A request that failed may have committed just before the crash (the
    # answer was lost), but nothing is stored that was never sent.
    sent = {r[0] for r in results}
    assert set(stored) <= sent
    with d.client() as c:
        st = c.call("stats")["pool"]
        assert c.call("health")["database"] == "up"
    assert st["lost"] + st["connect_failures"] >= 1, st
    assert st["database_up"] is True, st


# ------------------------------------------------------------- failover

def test_failover_to_promoted_standby(pg_factory, convd_factory):
    """A multi-host URL with target_session_attrs=read-write: convd writes
    to the primary only; after the primary stops and the standby is
    promoted, writes go to the new primary without restarting convd."""
    primary = pg_factory()
    standby = primary.make_standby(port=primary.port + 1)
    try:
        standby.start()
        wait_until(lambda: primary.psql(
            "SELECT count(*) FROM pg_stat_replication WHERE state = "
            "'streaming'") == "1", timeout=20, what="streaming replication")
        app = appname("failover")
        url = (f"postgresql://{primary.user}@/{primary.dbname}"
               f"?host={primary.sockdir},{standby.sockdir}"
               f"&port={primary.port},{standby.port}"
               f"&target_session_attrs=read-write")
        d = convd_factory(primary, extra=extra(app, {
            "size": 2, "max_overflow": 2, "timeout": 2}),
            env={"DATABASE_URL": url})
        pid = d.proc.pid
        user = uid()
        with d.client(timeout=30) as c:
            before = [add(c, user, f"before-{i}")["id"] for i in range(5)]
            # Every connection is on the primary, none on the standby.
            assert len(primary.backend_pids(app)) >= 1
            assert standby.backend_pids(app) == set()
            wait_until(lambda: standby.psql(
                f"SELECT count(*) FROM {HIST} WHERE user_id = {q(user)}")
                == "5", timeout=20, what="the standby to replay the rows")

            primary.stop("fast")
            t0 = time.monotonic()
            e = None
            try:
                add(c, user, "during")
            except RpcError as ex:
                e = ex
            assert e is not None and e.code in DOWN_CODES, e
            assert time.monotonic() - t0 < convdtest.scaled(5)
            assert c.call("ping") == "pong"

            standby.promote()
            t_promoted = time.monotonic()

            def works():
                try:
                    return add(c, user, "after")
                except RpcError as ex:
                    assert ex.code in DOWN_CODES, ex
                    return None
            r = wait_until(works, timeout=20, interval=0.1,
                           what="writes on the promoted standby")
            assert time.monotonic() - t_promoted < convdtest.scaled(10)
            assert c.call("get_conversation_count", user) == 6
            wait_until(lambda: c.call("health")["ok"], timeout=10,
                       what="health ok after the failover")
        assert d.proc.pid == pid and d.proc.poll() is None
        rows = standby.psql(f"SELECT id, content FROM {HIST} WHERE user_id"
                            f" = {q(user)} ORDER BY id").splitlines()
        assert [int(x.split("|")[0]) for x in rows] == before + [r["id"]]
        assert rows[-1].endswith("|after")
        assert standby.psql("SELECT pg_is_in_recovery()") == "f"
        assert len(standby.backend_pids(app)) >= 1
    finally:
        standby.destroy()


# ------------------------------------------------ servers that hang up

def test_terminated_backends_are_replaced(schema, convd_factory):
    """pg_terminate_backend on every convd connection: the pool notices at
    once, the next request succeeds, stats count the lost connections."""
    app = appname("term")
    d = convd_factory(schema, extra=extra(app, {
        "size": 3, "max_overflow": 0, "timeout": 5}))
    user = uid()
    with d.client() as c:
        add(c, user, "one")
        wait_until(lambda: len(schema.backend_pids(app)) == 3, timeout=10,
                   what="three connections")
        old = schema.backend_pids(app)
        lost0 = c.call("stats")["pool"]["lost"]
        assert schema.terminate_app(app) == 3
        wait_until(lambda: not (schema.backend_pids(app) & old), timeout=10,
                   what="the backends to end")
        for i in range(5):
            add(c, user, f"after-{i}")
        assert c.call("get_conversation_count", user) == 6
        wait_until(lambda: len(schema.backend_pids(app)) == 3, timeout=10,
                   what="the pool to be refilled")
        assert not (schema.backend_pids(app) & old)
        st = c.call("stats")["pool"]
        assert st["lost"] - lost0 == 3, st
        assert st["open"] == 3, st


def test_idle_session_timeout(schema, convd_factory):
    """A server that closes idle sessions after 1 s (idle_session_timeout,
    set for one database): requests keep succeeding, stats count the lost
    connections and the replacements."""
    db = "idle_" + uuid.uuid4().hex[:8]
    schema.createdb(db)
    try:
        convdtest.setup_schema(schema, db)
        schema.psql(f"ALTER DATABASE {db} SET idle_session_timeout = '1s'",
                    db="postgres")
        app = appname("idle")
        d = convd_factory(schema, extra=extra(app, {
            "size": 2, "max_overflow": 0, "timeout": 5},
            database={"name": db}))
        user = uid()
        with d.client() as c:
            add(c, user, "first")
            st0 = c.call("stats")["pool"]
            wait_until(lambda: c.call("stats")["pool"]["lost"] >=
                       st0["lost"] + 4, timeout=15,
                       what="the server to close idle connections")
            for i in range(3):
                add(c, user, f"later-{i}")
                assert c.call("get_conversation_count", user) == 2 + i
            # Every lost connection was replaced.
            st = wait_until(lambda: (lambda s: s if s["connects"] - st0[
                "connects"] >= s["lost"] - st0["lost"] >= 4 else None)(
                c.call("stats")["pool"]), timeout=10,
                what="replacement connections")
            assert st["database_up"] is True
    finally:
        schema.dropdb(db)


# ------------------------------------------------------ pool exhaustion

def test_pool_exhaustion_times_out_excess(schema, convd_factory):
    """size 2 + max_overflow 1, timeout 2: three requests blocked behind a
    row lock hold every connection; two more wait and fail with timeout
    after about 2 s; ping is served meanwhile; once the lock goes,
    everything succeeds."""
    app = appname("exhaust")
    d = convd_factory(schema, extra=extra(app, {
        "size": 2, "max_overflow": 1, "timeout": 2}))
    user = uid()
    waiting = [d.client(timeout=30) for _ in range(2)]
    blocked = []
    locker = None
    try:
        with d.client() as c:
            add(c, user, "warm-up")
            assert c.call("save_thread", user, "thread-0") is True
            timeouts0 = c.call("stats")["pool"]["timeouts"]
        locker = Locker(schema, user=user)
        blocked, ids = blocked_save_threads(d, user, 3)
        wait_for_waiters(schema, 3)
        t0 = time.monotonic()
        wids = [w.request("get_conversation_count", user) for w in waiting]
        with d.client() as c:
            def two_waiting():
                st = c.call("stats")["pool"]
                return st if st["waiting"] == 2 else None
            # a request that needs no connection is answered while two
            # wait for one: this stats answer saw them waiting (an order
            # of events, not a latency figure)
            st = wait_until(two_waiting, timeout=1.4, interval=0.02,
                            what="two requests waiting for a connection")
            assert st["open"] == 3 and st["busy"] == 3, st
            assert c.call("ping") == "pong"
        for w, msgid in zip(waiting, wids):
            m = w.recv()
            elapsed = time.monotonic() - t0
            assert m[1] == msgid and m[2] is not None, m
            assert m[2]["code"] == "timeout", m
            assert 1.5 < elapsed < convdtest.scaled(4), elapsed
        # The blocked ones are still waiting on the lock, not failed.
        with d.client() as c:
            assert c.call("ping") == "pong"
            st = c.call("stats")["pool"]
            assert st["timeouts"] - timeouts0 == 2, st
            assert st["waiting"] == 0 and st["busy"] == 3, st
        locker.release()
        for b, msgid in zip(blocked, ids):
            m = b.recv()
            assert m[1] == msgid and m[2] is None and m[3] is True, m
        for w in waiting:
            assert w.call("get_conversation_count", user) == 1
            assert w.call("get_thread", user) in (
                "thread-0", "thread-1", "thread-2")
        st = pool_stats(d)
        assert st["open"] <= 3 and st["busy"] == 0, st
    finally:
        if locker:
            locker.release()
        for cl in blocked + waiting:
            cl.close()


@pytest.mark.parametrize("held,mode", [
    ("add_message", "SHARE"),
    ("get_recent_conversations", "ACCESS EXCLUSIVE")])
def test_exhaustion_times_out_batched_methods(schema, convd_factory, held,
                                              mode):
    """The same with the methods convd batches (add_message,
    get_recent_conversations): size 2 + max_overflow 0, timeout 2, both
    connections held by batches of `held` blocked behind a table lock
    (taken once the connections are set up); a further add_message,
    get_recent_conversations and get_conversation_count all wait, and
    all fail with timeout after about 2 s.

    Regression: once max_batches batches of a method were in flight, a
    further request of that method waited in the batcher's queue with no
    deadline at all, so it hung until a blocked batch finished (here:
    until the lock goes) instead of failing with timeout."""
    app = appname("batchx")
    d = convd_factory(schema, extra=extra(app, {
        "size": 2, "max_overflow": 0, "timeout": 2}))
    user = uid()
    with d.client() as c:
        add(c, user, "warm-up")
    wait_until(lambda: (lambda s: s["open"] == 2 and s["connecting"] == 0)(
        pool_stats(d)), timeout=10, what="two ready connections")
    clients = [d.client(timeout=30) for _ in range(5)]
    locker = None
    try:
        locker = Locker(schema, table_mode=mode)
        ids = []
        for i in range(2):      # two batches, one at a time
            if held == "add_message":
                # two conversations: one of them would wait for its own
                # batch in flight (arrival order), not hold a connection
                ids.append(clients[i].request(
                    "add_message", f"{user}-{i}", "anthropic", "user",
                    f"held-{i}"))
            else:
                ids.append(clients[i].request(
                    "get_recent_conversations", user, "anthropic"))
            wait_for_waiters(schema, i + 1)
        assert pool_stats(d)["busy"] == 2
        t0 = time.monotonic()
        excess = [
            clients[2].request("add_message", user, "anthropic", "user",
                               "excess"),
            clients[3].request("get_recent_conversations", user,
                               "anthropic"),
            clients[4].request("get_conversation_count", user)]
        answers = {}

        def collect(i, cl, msgid):
            m = cl.recv()
            answers[i] = (time.monotonic() - t0, m)
        ths = [threading.Thread(target=collect, args=(i, clients[2 + i],
                                                      excess[i]),
                                daemon=True) for i in range(3)]
        for t in ths:
            t.start()
        deadline = t0 + 4.5
        for t in ths:
            t.join(max(0.0, deadline - time.monotonic()))
        names = ["add_message", "get_recent_conversations",
                 "get_conversation_count"]
        late = [names[i] for i in range(3) if i not in answers]
        assert not late, f"no answer within 4.5 s (pool " \
            f"timeout 2 s) for {late}: they wait in the batch queue"
        for i in range(3):
            elapsed, m = answers[i]
            assert m[1] == excess[i] and m[2] and \
                m[2]["code"] == "timeout", (names[i], m)
            assert 1.5 < elapsed < convdtest.scaled(4), (names[i], elapsed)
        locker.release()
        for i in range(2):
            m = clients[i].recv()
            assert m[1] == ids[i] and m[2] is None, m
    finally:
        if locker:
            locker.release()
        for cl in clients:
            cl.close()


def test_batch_timeout_fails_only_requests_that_waited(schema,
                                                      convd_factory):
    """size 1 + max_overflow 0, timeout 2; the only connection is held by
    a save_thread blocked behind a row lock.  Two add_message wait from
    t=0, a third from t=1.  The first two fail with timeout at about
    t=2; the lock then goes, and the third, whose own deadline is t=3,
    is stored.  Regression: when a batch's wait for a connection timed
    out, every add_message queued behind it failed with it, even one
    that had waited a single second."""
    app = appname("btime")
    d = convd_factory(schema, extra=extra(app, {
        "size": 1, "max_overflow": 0, "timeout": 2}))
    user = uid()
    locker = None
    clients = [d.client(timeout=30) for _ in range(3)]
    try:
        with d.client() as c:
            assert c.call("save_thread", user, "thread-0") is True
        locker = Locker(schema, user=user)
        blocked, ids = blocked_save_threads(d, user, 1)
        clients += blocked
        wait_for_waiters(schema, 1)
        t0 = time.monotonic()
        early = [cl.request("add_message", user, "anthropic", "user",
                            f"early-{i}") for i, cl in
                 enumerate(clients[:2])]
        time.sleep(1)
        late = clients[2].request("add_message", user, "anthropic", "user",
                                  "late")
        for cl, msgid in zip(clients[:2], early):
            m = cl.recv()
            assert m[1] == msgid and m[2] and m[2]["code"] == "timeout", m
        assert 1.5 < time.monotonic() - t0 < convdtest.scaled(2.9)
        locker.release()
        m = clients[2].recv()
        assert m[1] == late and m[2] is None, \
            f"the add_message that had waited 1 s failed with the " \
            f"batch that had waited 2 s: {m}"
        m = blocked[0].recv()
        assert m[1] == ids[0] and m[2] is None, m
        assert list(contents(schema, user)) == ["late"]
    finally:
        if locker:
            locker.release()
        for cl in clients:
            cl.close()


def test_pre_ping_after(schema, convd_factory):
    """[pool] pre_ping_after: 0 checks the connection before every use;
    a long one not at all between quick requests; a reload changes it."""
    app = appname("ppa")
    d = convd_factory(schema, extra=extra(app, {
        "size": 1, "max_overflow": 0, "pre_ping": True,
        "pre_ping_after": 0}))
    user = uid()
    with d.client() as c:
        assert c.call("get_thread", user) is None     # connects
        pings = c.call("stats")["pool"]["pings"]
        for _ in range(5):
            assert c.call("get_thread", user) is None
        assert c.call("stats")["pool"]["pings"] - pings == 5
    with open(d.config) as f:
        text = f.read()
    assert "pre_ping_after = 0\n" in text, text
    with open(d.config, "w") as f:
        f.write(text.replace("pre_ping_after = 0\n",
                             "pre_ping_after = 3600\n"))
    d.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in d.log(), 10,
               what="the reload")
    with d.client() as c:
        pings = c.call("stats")["pool"]["pings"]
        for _ in range(5):
            assert c.call("get_thread", user) is None
        assert c.call("stats")["pool"]["pings"] == pings


def test_overflow_under_table_lock(schema, convd_factory):
    """The scenario of the issue with a table lock: size 2 + max_overflow
    1, LOCK TABLE history IN ACCESS EXCLUSIVE MODE held by psql, three
    unbatched requests: all three get a connection (two open, one
    overflow, whose set-up touches no table and so does not wait on the
    lock) and wait on the lock; only the excess gets timeout.
    (add_message and get_recent_conversations are batched: at most two
    add_message and four get_recent_conversations batches are in flight,
    see test_exhaustion_times_out_batched_methods.)  Regression: the
    set-up once PREPAREd every statement and waited on the lock, with no
    time limit."""
    app = appname("tlock")
    d = convd_factory(schema, extra=extra(app, {
        "size": 2, "max_overflow": 1, "timeout": 2}))
    user = uid()
    locker = None
    clients = [d.client(timeout=30) for _ in range(4)]
    try:
        with d.client() as c:
            add(c, user, "warm-up")
        locker = Locker(schema, table_mode="ACCESS EXCLUSIVE")
        ids = [cl.request("get_conversation_count", user)
               for cl in clients[:3]]
        t0 = time.monotonic()
        excess = clients[3].request("get_user_statistics", user)
        m = clients[3].recv()
        assert m[1] == excess and m[2] and m[2]["code"] == "timeout", m
        assert 1.5 < time.monotonic() - t0 < convdtest.scaled(4)
        st = pool_stats(d)
        assert st["open"] == 3 and st["busy"] == 3 and \
            st["connecting"] == 0, \
            f"the overflow connection is stuck in set-up " \
            f"behind the table lock: {st}"
        locker.release()
        for cl, msgid in zip(clients, ids):
            m = cl.recv()
            assert m[1] == msgid and m[2] is None, \
                f"a request that should have had the " \
                f"overflow connection failed: {m}"
    finally:
        if locker:
            locker.release()
        for cl in clients:
            cl.close()


# ------------------------------------------- database missing at start

def test_start_before_the_database(pg_factory, convd_factory):
    """The cluster is not running when convd starts: convd starts, says
    why in its log, keeps retrying, answers ping/stats/health, fails
    database methods with unavailable, and serves soon after the cluster
    comes up."""
    own = pg_factory()
    own.stop("fast")
    d = convd_factory(own, extra=extra(appname("late"), {
        "size": 2, "max_overflow": 0, "timeout": 2}))
    user = uid()
    with d.client(timeout=30) as c:
        assert c.call("ping") == "pong"
        wait_until(lambda: c.call("stats")["pool"]["connect_failures"] >= 3,
                   timeout=10, what="convd to retry")
        st = c.call("stats")["pool"]
        assert st["database_up"] is False and st["open"] == 0, st
        assert "No such file or directory" in (st["last_error"] or ""), st
        h = c.call("health")
        assert h["ok"] is False and h["database"] == "down", h
        t0 = time.monotonic()
        with pytest.raises(RpcError) as ei:
            add(c, user, "too early")
        assert ei.value.code == "unavailable", ei.value
        assert time.monotonic() - t0 < convdtest.scaled(1)
        log = d.log()
        assert own.sockdir in log and "No such file or directory" in log, log
        own.start()
        t_up = time.monotonic()

        def works():
            try:
                return add(c, user, "in time")
            except RpcError as e:
                assert e.code in DOWN_CODES, e
                return None
        wait_until(works, timeout=20, interval=0.1, what="the database")
        assert time.monotonic() - t_up < convdtest.scaled(6)
        wait_until(lambda: c.call("health")["ok"], timeout=10,
                   what="health ok")
    assert d.proc.poll() is None
    assert set(contents(own, user)) == {"in time"}


def test_wrong_password_then_fixed(schema, convd_factory):
    """A wrong password: convd starts, logs the authentication failure,
    keeps retrying, and serves once the server accepts the password."""
    role = "pw_" + uuid.uuid4().hex[:8]
    pw = "s3cret-" + uuid.uuid4().hex[:8]
    schema.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'not-what-convd-has'; "
                f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; "
                f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    schema.hba_prepend(f"local all {role} scram-sha-256")
    d = convd_factory(schema, extra=extra(appname("pw"), {
        "size": 2, "max_overflow": 0, "timeout": 2},
        database={"user": role, "password": pw}))
    user = uid()
    with d.client(timeout=30) as c:
        wait_until(lambda: c.call("stats")["pool"]["connect_failures"] >= 2,
                   timeout=10, what="convd to retry")
        with pytest.raises(RpcError) as ei:
            add(c, user, "refused")
        assert ei.value.code == "unavailable", ei.value
        assert c.call("health")["database"] == "down"
        assert "password authentication failed" in d.log(), d.log()
        assert pw not in d.log()
        schema.psql(f"ALTER ROLE {role} PASSWORD {q(pw)}")
        t_fixed = time.monotonic()

        def works():
            try:
                return add(c, user, "accepted")
            except RpcError as e:
                assert e.code in DOWN_CODES, e
                return None
        wait_until(works, timeout=20, interval=0.1, what="the new password")
        assert time.monotonic() - t_fixed < convdtest.scaled(6)
    assert set(contents(schema, user)) == {"accepted"}


# ------------------------------------------------ settings reach libpq

def test_application_name(schema, convd_factory):
    app = appname("name")
    d = convd_factory(schema, extra=extra(app, {
        "size": 3, "max_overflow": 0, "timeout": 5}))
    wait_until(lambda: len(schema.backend_pids(app)) == 3, timeout=10,
               what="three connections named " + app)
    # A backend is in pg_stat_activity before convd has finished setting
    # its connection up (prepared statements): wait for the pool's count.
    wait_until(lambda: pool_stats(d)["open"] == 3, timeout=10,
               what="the pool to count its three connections open")
    # The default is "convd".
    d2 = convd_factory(schema, extra={"pool": {"size": 1, "max_overflow": 0},
                                      "retention": {"days_to_keep": 0}})
    wait_until(lambda: pool_stats(d2)["open"] == 1, timeout=10,
               what="d2's connection")
    assert len(schema.backend_pids("convd")) >= 1


def test_statement_timeout(schema, convd_factory):
    """[database] statement_timeout is set on every connection: a request
    blocked by a lock is cancelled by the server after that long (a lock
    wait counts) and answered with timeout."""
    app = appname("stmt")
    d = convd_factory(schema, extra=extra(app, {
        "size": 1, "max_overflow": 0, "timeout": 10},
        database={"statement_timeout": 500}))
    user = uid()
    locker = None
    with d.client(timeout=30) as c:
        add(c, user, "before")
        assert c.call("save_thread", user, "t0") is True
        try:
            locker = Locker(schema, user=user)
            t0 = time.monotonic()
            with pytest.raises(RpcError) as ei:
                c.call("save_thread", user, "cancelled")
            elapsed = time.monotonic() - t0
            assert ei.value.code == "timeout", ei.value
            assert "statement_timeout" in ei.value.message
            assert 0.4 < elapsed < convdtest.scaled(2.5), elapsed
        finally:
            if locker:
                locker.release()
        add(c, user, "after")   # the connection is still usable
        assert c.call("get_conversation_count", user) == 2
        assert c.call("get_thread", user) == "t0"


def test_connect_timeout(schema, convd_factory):
    """[database] connect_timeout bounds a connection attempt to a server
    that accepts but never answers (the postmaster stopped with SIGSTOP)."""
    app = appname("ctimeout")
    pm = schema.postmaster_pid()
    os.kill(pm, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        d = convd_factory(schema, extra=extra(app, {
            "size": 1, "max_overflow": 0, "timeout": 5},
            database={"connect_timeout": 2}))
        st = wait_until(
            lambda: (lambda s: s if s["connect_failures"] >= 1 else None)(
                pool_stats(d)), timeout=10, what="a connect timeout")
        elapsed = time.monotonic() - t0
        assert 1.5 < elapsed < convdtest.scaled(4.5), elapsed
        assert "timeout" in (st["last_error"] or ""), st
        assert "timed out after 2 s" in d.log(), d.log()
    finally:
        os.kill(pm, signal.SIGCONT)
    user = uid()
    with d.client(timeout=30) as c:
        def works():
            try:
                return add(c, user, "after")
            except RpcError as e:
                assert e.code in DOWN_CODES, e
                return None
        wait_until(works, timeout=20, interval=0.1, what="the database")


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_cluster(pg_factory):
    """A cluster that also listens on 127.0.0.1 (on a free port), with a
    server certificate in place but ssl = off."""
    own = pg_factory()
    own.stop("fast")
    crt = os.path.join(own.datadir, "server.crt")
    key = os.path.join(own.datadir, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    if own.as_user:
        pw = pwd.getpwnam(own.as_user)
        for f in (crt, key):
            os.chown(f, pw.pw_uid, pw.pw_gid)
    # The Unix socket's name follows the port.
    own.port = free_tcp_port()
    with open(os.path.join(own.datadir, "postgresql.conf"), "a") as f:
        f.write(f"listen_addresses = '127.0.0.1'\nport = {own.port}\n"
                f"ssl = off\n")
    own.start()
    return own


def ssl_of(pg, app):
    return pg.psql("SELECT string_agg(DISTINCT s.ssl::text, ',') FROM "
                   "pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                   "WHERE a.application_name = " + q(app), db="postgres")


def keepalive_timers(pid, port):
    """Remaining keepalive timers (seconds) of pid's TCP sockets to port."""
    out = subprocess.run(["ss", "-tnpo", "state", "established",
                          f"dport = :{port}"], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    timers = []
    for line in out.splitlines():
        if f"pid={pid}," not in line or "timer:(keepalive," not in line:
            continue
        spec = line.split("timer:(keepalive,", 1)[1].split(",", 1)[0]
        secs = 0.0
        if "min" in spec:
            m, spec = spec.split("min", 1)
            secs += 60 * int(m)
        if spec.endswith("ms"):
            secs += int(spec[:-2]) / 1000
        elif spec.endswith("sec"):
            secs += float(spec[:-3])
        timers.append(secs)
    return timers


def test_tcp_sslmode_and_keepalives(tcp_cluster, convd_factory):
    """Over TCP an empty sslmode means require: against a server without
    SSL convd refuses to connect and says why, while a convd with
    sslmode=disable works; once the server turns SSL on, the first convd
    connects with SSL (pg_stat_ssl), and keepalives_idle is set on its
    sockets (ss shows the keepalive timer).  keepalives_interval,
    keepalives_count and tcp_user_timeout cannot be observed from outside
    the process and are not checked."""
    pg = tcp_cluster
    tcp = {"host": "127.0.0.1", "port": pg.port}
    app_ssl, app_plain = appname("ssl"), appname("plain")
    d1 = convd_factory(pg, extra=extra(app_ssl, {
        "size": 2, "max_overflow": 0, "timeout": 2},
        database=dict(tcp, keepalives_idle=77, keepalives_interval=13,
                      keepalives_count=4)))
    d2 = convd_factory(pg, extra=extra(app_plain, {
        "size": 1, "max_overflow": 0, "timeout": 5},
        database=dict(tcp, sslmode="disable")))
    user = uid()
    with d2.client() as c:
        add(c, user, "plain tcp")
    assert ssl_of(pg, app_plain) == "false"
    with d1.client() as c:
        wait_until(lambda: c.call("stats")["pool"]["connect_failures"] >= 1,
                   timeout=10, what="a refused connection")
        with pytest.raises(RpcError) as ei:
            add(c, user, "refused")
        assert ei.value.code == "unavailable", ei.value
        assert "SSL" in c.call("stats")["pool"]["last_error"]
        assert "SSL" in d1.log()
        assert pg.backend_pids(app_ssl) == set()
        pg.psql("ALTER SYSTEM SET ssl = on")
        pg.psql("SELECT pg_reload_conf()")

        def works():
            try:
                return add(c, user, "ssl tcp")
            except RpcError as e:
                assert e.code in DOWN_CODES, e
                return None
        wait_until(works, timeout=convdtest.scaled(20), interval=0.1,
                   what="an SSL connection")
    wait_until(lambda: len(pg.backend_pids(app_ssl)) == 2, timeout=10,
               what="d1's connections")
    assert ssl_of(pg, app_ssl) == "true"
    timers = keepalive_timers(d1.proc.pid, pg.port)
    assert len(timers) == 2, timers
    assert all(60 < t <= 77 for t in timers), timers


# ------------------------------------------------------------ recycling

def test_recycle_replaces_connections_gradually(schema, convd_factory):
    """[pool] recycle = 2: backend pids change over time while requests
    keep succeeding, stats pool.recycled grows, and the connections are
    replaced one at a time, not all at once."""
    app = appname("recycle")
    d = convd_factory(schema, extra=extra(app, {
        "size": 3, "max_overflow": 0, "timeout": 5, "recycle": 2}))
    user = uid()
    wait_until(lambda: len(schema.backend_pids(app)) == 3, timeout=10,
               what="three connections")
    first = schema.backend_pids(app)
    samples = [(time.monotonic(), first)]
    n = 0
    with d.client() as c:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            add(c, user, f"m{n}")
            n += 1
            pids = schema.backend_pids(app)
            samples.append((time.monotonic(), pids))
            if not (pids & first) and len(samples) > 10 and \
                    c.call("stats")["pool"]["recycled"] >= 3:
                break
        assert c.call("get_conversation_count", user) == n
        st = c.call("stats")["pool"]
    assert st["recycled"] >= 3, st
    assert not (samples[-1][1] & first), "not every connection was replaced"
    # When each of the first connections disappeared: not all at once.
    gone_at = {}
    for t, pids in samples:
        for p in first - pids:
            gone_at.setdefault(p, t)
    assert len(gone_at) == 3
    assert max(gone_at.values()) - min(gone_at.values()) >= 0.3, gone_at
    for (t0, a), (t1, b) in zip(samples, samples[1:]):
        assert a & b, f"every connection replaced between {t0} and {t1}"
    assert st["open"] <= 3


# ------------------------------------------------- overflow, second half

def test_overflow_idle_connections_close(schema, overflow_convd):
    """Once the load of test_overflow_opens_under_load (the first test of
    this file) is gone, the overflow connections are closed again, after
    [pool] overflow_idle_timeout seconds (3 here)."""
    d = overflow_convd
    if d.idle_since is None:    # run on its own (-k)
        overflow_load(schema, d)
    waited = time.monotonic() - d.idle_since
    wait_until(lambda: pool_stats(d)["open"] == 2,
               timeout=max(5.0, 15 - waited), interval=0.5,
               what="the idle overflow connections to close")
    wait_until(lambda: len(schema.backend_pids(d.app)) == 2, timeout=5,
               what="two backends")
    with d.client() as c:
        add(c, uid(), "later")
        st = c.call("stats")["pool"]
    assert st["open"] == 2 and st["lost"] == 0, st
