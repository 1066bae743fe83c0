"""Regression tests: one test per bug found in review, each against the
real convd, the real convctl and a private PostgreSQL.  Every docstring
names the bug the test guards against and the behaviour that replaced it.

Not repeated here: a second convd started on the socket path of a running
one must exit 1 with a clear message while the first keeps serving; that is
test_security.py::test_live_socket_never_stolen."""

import json
import os
import signal
import socket
import subprocess
import time
import uuid

import msgpack
import pytest

import convdtest
from convdtest import RpcError, TableLock, scaled, stop_ok, uid, wait_until

HIST = "simple_conversation_history"


def appname(tag):
    """A unique application_name: finds one convd's backends."""
    return f"convd-{tag}-{uuid.uuid4().hex[:8]}"


def pool_stats(d):
    with d.client(timeout=scaled(5)) as c:
        return c.call("stats")["pool"]


def free_tcp_port():
    """A TCP port of 127.0.0.1 that nothing listens on (connects to it
    are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_all(sock, timeout):
    """Every message on sock until convd closes it; raises socket.timeout
    if the end does not come within timeout seconds of silence."""
    sock.settimeout(timeout)
    unp = msgpack.Unpacker(raw=False, timestamp=0)
    msgs = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return msgs
        unp.feed(data)
        msgs.extend(unp)


# ------------------------------------------------- 1. a pre-ping that hangs

def stop_backends(pg, app):
    """SIGSTOPs every backend of application_name app; returns the pids."""
    pids = pg.backend_pids(app)
    assert len(pids) == 1, pids
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    return pids


def cont_backends(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass


def idle_for_a_ping(d, app, pg):
    """Uses d's only connection once, then leaves it idle long enough
    (convd pre-pings a connection idle for pre_ping_after seconds: 1 in
    these tests) that the next request pre-pings it."""
    with d.client() as c:
        assert c.call("get_thread", uid()) is None
    wait_until(lambda: (lambda s: s["open"] == 1 and s["idle"] == 1)(
        pool_stats(d)), scaled(5), what="one idle connection")
    assert len(pg.backend_pids(app)) == 1
    time.sleep(1.5)


def test_hung_preping_times_out(schema, convd_factory):
    """Bug: the pre-ping of an idle connection whose backend had stopped
    answering (SIGSTOPped) was never timed out, so the request waiting for
    it hung for ever.  Now it fails with `timeout` after about [pool]
    timeout (2 s), the dead connection is replaced and requests work
    again."""
    app = appname("pingstall")
    d = convd_factory(schema, extra={
        "pool": {"size": 1, "max_overflow": 0, "timeout": 2,
                 "pre_ping": True, "pre_ping_after": 1},
        "database": {"application_name": app},
        "retention": {"days_to_keep": 0},
        "server": {"shutdown_timeout": 3}})
    idle_for_a_ping(d, app, schema)
    pings = pool_stats(d)["pings"]
    pids = stop_backends(schema, app)
    try:
        with d.client(timeout=scaled(10)) as c:
            t0 = time.monotonic()
            msgid = c.request("get_thread", uid())
            try:
                resp = c.recv()
            except socket.timeout:
                pytest.fail("no answer within %.0f s while the pre-ping "
                            "hangs (pool timeout 2 s)" % scaled(10))
            took = time.monotonic() - t0
            assert resp is not None, "convd closed the connection"
            assert resp[1] == msgid and resp[2] is not None, resp
            assert resp[2]["code"] == "timeout", resp
            assert 1.5 <= took <= scaled(4), took
            st = c.call("stats")["pool"]
            assert st["pings"] > pings, st      # it was the pre-ping
            assert st["timeouts"] >= 1, st
            # the stopped backend's connection is replaced
            wait_until(lambda: c.call("get_thread", uid()) is None,
                       scaled(5), what="a request to succeed again")
        assert "pre-ping" in d.log(), d.log()
    finally:
        cont_backends(pids)
    stop_ok(d)


def test_sigterm_while_preping_hangs(schema, convd_factory):
    """Bug: SIGTERM while a pre-ping hung: the request waiting for the
    ping was in no queue, so shutdown never ended it (the request leaked:
    under --enable-sanitizers LeakSanitizer made convd exit 1, which the
    exit status check below and convd_factory's sanitizer check catch).
    Now convd exits 0 soon after shutdown_timeout (1 s), the request is
    ended, and the client gets an answer or the end of its connection."""
    app = appname("pingterm")
    d = convd_factory(schema, extra={
        "pool": {"size": 1, "max_overflow": 0, "timeout": 30,
                 "pre_ping": True, "pre_ping_after": 1},
        "database": {"application_name": app},
        "retention": {"days_to_keep": 0},
        "server": {"shutdown_timeout": 1}})
    idle_for_a_ping(d, app, schema)
    pings = pool_stats(d)["pings"]
    pids = stop_backends(schema, app)
    try:
        c = d.client(timeout=scaled(10))
        try:
            msgid = c.request("get_thread", uid())
            wait_until(lambda: pool_stats(d)["pings"] > pings, scaled(5),
                       what="the pre-ping to start")
            d.signal(signal.SIGTERM)
            try:
                rc = d.wait_exit(scaled(10))
            except subprocess.TimeoutExpired:
                pytest.fail("convd did not exit while a pre-ping hung:\n"
                            + d.log()[-3000:])
            assert rc == 0, (rc, d.log()[-3000:])
            try:
                msgs = read_all(c.sock, scaled(5))
            except socket.timeout:
                pytest.fail("the client got neither an answer nor EOF")
            for m in msgs:      # an error answer to our request, if any
                assert m[0] == 1 and m[1] == msgid and m[2] is not None, m
        finally:
            c.close()
    finally:
        cont_backends(pids)


# ------------------------------------- 2. pipelining, then end of input

def test_pipelined_requests_then_shut_wr_all_answered(schema, convd_factory):
    """Bug: a client that pipelined more requests than [server]
    max_inflight and then shut down its write side lost the requests that
    were still in convd's input buffer (convd stopped reading at EOF and
    closed once the in-flight ones ended).  Now every request is
    answered, then the connection closes."""
    d = convd_factory(schema, extra={"server": {"max_inflight": 2}})
    n = 20
    for _ in range(3):
        users = [uid() for _ in range(n)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(d.socket)
            s.sendall(b"".join(msgpack.packb([0, i, "get_thread", [u]])
                               for i, u in enumerate(users)))
            s.shutdown(socket.SHUT_WR)
            try:
                msgs = read_all(s, scaled(10))
            except socket.timeout:
                pytest.fail("convd neither answered nor closed")
        assert sorted(m[1] for m in msgs) == list(range(n)), msgs
        assert all(m[0] == 1 and m[2] is None and m[3] is None
                   for m in msgs), msgs
    with d.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(d)


# -------------------------- 3. multi-host conninfo, first host refuses

@pytest.fixture
def tcp_pg():
    """A cluster with the schema that also listens on 127.0.0.1 (on a free
    port), trusting TCP connections from there."""
    cluster = convdtest.PgCluster(port=free_tcp_port()).initdb(
        extra_conf="listen_addresses = '127.0.0.1'\n")
    try:
        with open(os.path.join(cluster.datadir, "pg_hba.conf"), "a") as f:
            f.write("host all all 127.0.0.1/32 trust\n")
        cluster.start()
        cluster.createdb()
        convdtest.setup_schema(cluster)
        yield cluster
    finally:
        cluster.destroy()


def test_multihost_first_host_refuses(tcp_pg, convd_factory):
    """Bug: with a multi-host conninfo whose first host refuses, libpq
    closes that socket and opens the next one, which often gets the same
    descriptor number; convd kept its event on the old socket and never
    saw the new one progress, so it did not connect (not before the
    connect timeout).  Now it reaches the second host at once and
    serves."""
    pg = tcp_pg
    app = appname("multihost")
    closed = free_tcp_port()
    # connect_timeout is well above the time allowed below: a stalled
    # connection attempt cannot pass as a slow one.
    url = (f"postgresql://{pg.user}@/{pg.dbname}?host=127.0.0.1,127.0.0.1"
           f"&port={closed},{pg.port}&connect_timeout=15&sslmode=disable")
    t0 = time.monotonic()
    d = convd_factory(pg, extra={
        "database": {"url": url, "application_name": app},
        "pool": {"size": 1, "max_overflow": 0, "timeout": 10},
        "retention": {"days_to_keep": 0}})
    with d.client(timeout=scaled(15)) as c:
        user = uid()
        wait_until(lambda: c.call("get_thread", user) is None,
                   scaled(4), interval=0.1, what="a first request to work")
        took = time.monotonic() - t0
        assert took < scaled(5), took
        assert c.call("save_thread", user, "t-1") is True
        assert c.call("get_thread", user) == "t-1"
        st = c.call("stats")["pool"]
        assert st["open"] == 1 and st["database_up"], st
    # over TCP, to the second host
    assert pg.psql("SELECT string_agg(DISTINCT host(client_addr), ',') "
                   "FROM pg_stat_activity WHERE application_name = "
                   + convdtest.sql_literal(app), db="postgres") == \
        "127.0.0.1", "convd's connection is not the TCP one"
    stop_ok(d)


def test_multihost_first_host_hangs(tcp_pg, convd_factory):
    """Bug: with a multi-host conninfo whose first host accepts the TCP
    connection and then never answers (a hung server), convd's connect
    timer covered the whole attempt, so every attempt ended on the first
    host and the second was never tried: convd never connected.  Now
    each host gets connect_timeout of its own and convd moves on to the
    next one; and the connections opened in the next 30 s skip the host
    that hung rather than each wait on it again."""
    pg = tcp_pg
    app = appname("hung")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)             # the kernel accepts; nobody ever answers
    try:
        url = (f"postgresql://{pg.user}@/{pg.dbname}?host=127.0.0.1,"
               f"127.0.0.1&port={hung.getsockname()[1]},{pg.port}"
               f"&sslmode=disable")
        t0 = time.monotonic()
        d = convd_factory(pg, extra={
            "database": {"url": url, "application_name": app,
                         "connect_timeout": 2},
            "pool": {"size": 1, "max_overflow": 0, "timeout": 10},
            "retention": {"days_to_keep": 0}})
        with d.client(timeout=scaled(20)) as c:
            user = uid()
            wait_until(lambda: c.call("get_thread", user) is None,
                       scaled(10), interval=0.2,
                       what="a first request to work")
            assert time.monotonic() - t0 < scaled(10)
            assert c.call("save_thread", user, "t-1") is True
        assert "did not answer within connect_timeout (2 s); trying the " \
            "next host" in d.log(), d.log()
        assert pg.backend_pids(app), "convd is not connected to host 2"
        # The connection is lost; its replacement skips the host that
        # hung a moment ago instead of waiting 2 s on it again.
        pg.terminate_app(app)
        with d.client(timeout=scaled(20)) as c:
            wait_until(lambda: c.call("get_thread", user) == "t-1",
                       scaled(10), interval=0.05,
                       what="a request after the reconnect")
        # counted, not timed: the reconnect did not try the hung host
        # again (it would have logged a second connect_timeout)
        assert d.log().count("did not answer within connect_timeout") == 1
        assert pg.backend_pids(app), "no new connection to host 2"
        stop_ok(d)
    finally:
        hung.close()


def test_latency_does_not_count_the_idle_wait(schema, convd_factory):
    """Bug: the loop's cached clock was read before the wait for events,
    so a request that came after a quiet spell started "in the past":
    its latency in stats (and its pool deadline) counted the idle time
    (a 1 ms request after a 0.4 s pause showed as 0.4 s).  Now the clock
    is read at its first use after the wait."""
    d = convd_factory(schema)
    user = uid()
    with d.client() as c:
        for _ in range(5):
            time.sleep(0.4)
            assert c.call("get_thread", user) is None
        lat = c.call("stats")["methods"]["get_thread"]["latency_us"]
    assert lat["max"] < scaled(0.1) * 1e6, lat
    stop_ok(d)


# ---------------------------------------- 4. retention days_to_keep = 0

def test_cleanup_without_days_when_retention_off(schema, convd_factory):
    """Bug: with [retention] days_to_keep = 0 (periodic cleanup off),
    cleanup_old_conversations without days_to_keep took 0 as its default,
    "older than now", and deleted every message.  Now it is refused with
    invalid_params and deletes nothing; with days_to_keep given it
    works."""
    d = convd_factory(schema, extra={"retention": {"days_to_keep": 0}})
    user = uid()
    with d.client(timeout=scaled(30)) as c:
        for i in range(3):
            c.call("add_message", user, "openai", "user", f"recent {i}")
        old_us = 946684800 * 1000000        # 2000-01-01
        for i in range(2):
            r = c.call("import_message", user, "openai", "user", f"old {i}",
                       old_us + i)
            assert r["imported"] is True, r
        total = schema.psql(f"SELECT count(*) FROM {HIST}")
        for params in ((), ({},)):
            with pytest.raises(RpcError) as ei:
                c.call("cleanup_old_conversations", *params)
            assert ei.value.code == "invalid_params", ei.value
            assert "days_to_keep" in ei.value.message, ei.value
        assert schema.psql(f"SELECT count(*) FROM {HIST}") == total
        assert c.call("get_conversation_count", user) == 5
        # given, it works: only the old ones go
        r = c.call("cleanup_old_conversations", days_to_keep=30)
        assert r["deleted"] == 2, r
        assert c.call("get_conversation_count", user) == 3
        rows = schema.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                           f"{convdtest.sql_literal(user)} ORDER BY content")
        assert rows.split("\n") == ["recent 0", "recent 1", "recent 2"]
    stop_ok(d)


# ------------------------- 6. reload with a bad group and a new limit

NOBODY_CLIENT = r"""
import json, socket, sys
import msgpack
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[2]))
s.connect(sys.argv[1])
try:
    s.sendall(msgpack.packb([0, 1, "ping", []]))
except (BrokenPipeError, ConnectionResetError):
    pass    # refused at once: the answer may be waiting all the same
unp = msgpack.Unpacker(raw=False)
msgs, end = [], "open"
while end == "open":
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        break
    if not data:
        end = "closed"
    unp.feed(data)
    msgs.extend(unp)
    if msgs and msgs[0][2] is None:
        break
print(json.dumps({"msgs": msgs, "end": end}))
"""


def ping_as_nobody(path):
    """A ping from user nobody: {"msgs": [...], "end": "open"|"closed"}."""
    r = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3",
                        "-c", NOBODY_CLIENT, path, str(scaled(5))],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd="/", timeout=scaled(5) + 30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_nobody_refused(path):
    out = ping_as_nobody(path)
    assert out["msgs"] and out["msgs"][0][2] is not None, out
    assert out["msgs"][0][2]["code"] == "permission_denied", out
    assert out["end"] == "closed", out


def connect_outcome(path):
    """Connects and pings: "pong", or the error code convd answered
    before closing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        try:
            s.sendall(msgpack.packb([0, 1, "ping", []]))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass    # refused at once: its answer may be waiting all the same
        msgs = read_all(s, scaled(5))
    assert len(msgs) == 1, msgs
    m = msgs[0]
    return m[3] if m[2] is None else m[2]["code"]


def test_reload_bad_group_keeps_lists_applies_limits(schema, convd_factory):
    """Bug: a reload whose allow_groups named a group that does not exist
    failed half-way: the limits that came with it (max_clients) were not
    applied, or the access lists were changed in part.  Now the other
    settings take effect (max_clients 8 -> 2), the access lists stay as
    they were (all or nothing: nobody stays refused although the new
    allow_users lists it), and the log names the bad group."""
    d = convd_factory(schema, extra={
        "server": {"socket_mode": "0666", "allow_users": "root",
                   "max_clients": 8}}, start=False)
    os.chmod(d.tmp, 0o755)
    d.start()
    assert_nobody_refused(d.socket)
    held = [d.client() for _ in range(3)]
    try:
        for c in held:
            assert c.call("ping") == "pong"
        bad = f"no-such-group-{uuid.uuid4().hex[:8]}"
        with open(d.config) as f:
            text = f.read()
        assert "allow_users = root\n" in text and \
            "max_clients = 8\n" in text, text
        text = text.replace("allow_users = root\n",
                            f"allow_users = root, nobody\n"
                            f"allow_groups = {bad}\n")
        text = text.replace("max_clients = 8\n", "max_clients = 2\n")
        with open(d.config, "w") as f:
            f.write(text)
        d.signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in d.log(), scaled(5),
                   what="the reload")
        log = d.log()
        assert f"no such group '{bad}'" in log, log
        assert "allow_groups" in log, log
        # the clients already connected stay; a 4th is over the new limit
        for c in held:
            assert c.call("ping") == "pong"
        assert connect_outcome(d.socket) == "overloaded"
        # down to one client: one more fits, the next does not (limit 2)
        while len(held) > 1:
            held.pop().close()
        wait_until(lambda: held[0].call("stats")["clients"]["connected"]
                   == 1, scaled(5), what="the closed clients to be gone")
        with d.client() as second:
            assert second.call("ping") == "pong"
            assert connect_outcome(d.socket) == "overloaded"
        # the old access lists: root served, nobody still refused
        assert held[0].call("ping") == "pong"
        assert_nobody_refused(d.socket)
    finally:
        for c in held:
            c.close()
    stop_ok(d)


# ----------------------------------------- 7. a database without schema

def test_schema_missing_then_set_up_while_running(pg_factory, convd_factory):
    """Bug: convd started on a database without convd's schema did not
    recover once the schema was set up (its connections or statements
    stayed broken until a restart).  Now health says database "up",
    schema "missing", methods fail with `unavailable` naming `convctl db
    setup`, and after `convctl db setup` runs, with convd still running,
    requests succeed within a few seconds."""
    pg = pg_factory(schema=False)
    d = convd_factory(pg, extra={"retention": {"days_to_keep": 0},
                                 "pool": {"size": 2, "max_overflow": 0}})
    user = uid()
    with d.client(timeout=scaled(10)) as c:
        h = wait_until(lambda: (lambda h: h if h["schema"] != "unknown"
                                else None)(c.call("health")), scaled(5),
                       what="the first schema check")
        assert h["ok"] is False and h["database"] == "up" and \
            h["schema"] == "missing", h
        for method, params in (("get_thread", (user,)),
                               ("add_message", (user, "openai", "user",
                                                "hi"))):
            with pytest.raises(RpcError) as ei:
                c.call(method, *params)
            assert ei.value.code == "unavailable", ei.value
            assert "convctl db setup" in ei.value.message, ei.value
        convdtest.setup_schema(pg)
        t0 = time.monotonic()

        def works():
            try:
                return c.call("get_thread", user) is None
            except RpcError as e:
                assert e.code == "unavailable", e
                return False
        wait_until(works, scaled(5), interval=0.1,
                   what="requests to work after convctl db setup")
        assert time.monotonic() - t0 < scaled(5)
        r = c.call("add_message", user, "openai", "user", "after setup")
        assert isinstance(r["id"], int), r
        assert c.call("get_conversation_count", user) == 1
        h = c.call("health")
        assert h["ok"] is True and h["schema"] == "ok", h
    stop_ok(d)


def test_backend_replaced_under_table_lock_works_after(schema, convd_factory):
    """Bug: a connection opened (to replace a terminated one) while
    simple_conversation_history was locked prepared its statements at
    set-up; the PREPAREs hit statement_timeout behind the lock and left
    the connection without them, so later requests failed ("prepared
    statement does not exist").  Now statements are prepared on first
    use: the replacement opens under the lock and serves once it is
    gone."""
    app = appname("unprep")
    d = convd_factory(schema, extra={
        "pool": {"size": 1, "max_overflow": 0, "timeout": 5,
                 "pre_ping": False},
        "database": {"statement_timeout": 1000, "application_name": app},
        "retention": {"days_to_keep": 0}})
    user = uid()
    with d.client() as c:
        assert c.call("get_thread", user) is None
        assert c.call("get_conversation_count", user) == 0
    old = schema.backend_pids(app)
    assert len(old) == 1, old
    with TableLock(schema, HIST):
        assert schema.terminate_app(app) == 1
        new = wait_until(lambda: (lambda p: p if len(p) == 1 and p != old
                                  else None)(schema.backend_pids(app)),
                         scaled(5), what="a replacement connection")
        wait_until(lambda: (lambda s: s["open"] == 1 and s["idle"] == 1)(
            pool_stats(d)), scaled(5), what="the replacement to be ready")
        time.sleep(1.5)     # longer than statement_timeout
    with d.client() as c:
        for i in range(3):
            assert c.call("get_thread", user) is None
            c.call("add_message", user, "openai", "user", f"after {i}")
            assert c.call("get_conversation_count", user) == i + 1
    assert schema.backend_pids(app) == new
    stop_ok(d)


# ------------------------------------- 8. start while a table is locked

def test_start_under_table_lock_opens_connections(schema, convd_factory):
    """Bug: opening a pool connection prepared every statement, which
    waits for a table locked ACCESS EXCLUSIVE: a convd started while
    simple_conversation_history was locked opened no usable connection.
    Opening a connection touches no table now: pool.open reaches [pool]
    size under the lock, a method on another table works, and the
    locked table's methods work once the lock is gone."""
    app = appname("startlock")
    user = uid()
    with TableLock(schema, HIST):
        d = convd_factory(schema, extra={
            "pool": {"size": 3, "max_overflow": 0, "timeout": 10},
            "database": {"application_name": app},
            "retention": {"days_to_keep": 0}})
        st = wait_until(lambda: (lambda s: s if s["open"] == 3 and
                                 s["idle"] + s["busy"] == 3 else None)(
            pool_stats(d)), scaled(5), what="pool.open == size")
        assert st["connect_failures"] == 0, st
        assert len(schema.backend_pids(app)) == 3
        with d.client(timeout=scaled(5)) as c:
            assert c.call("save_thread", user, "t-locked") is True
            assert c.call("get_thread", user) == "t-locked"
            h = c.call("health")
            assert h["database"] == "up" and h["schema"] == "ok", h
    with d.client(timeout=scaled(10)) as c:
        c.call("add_message", user, "openai", "user", "after the lock")
        assert c.call("get_conversation_count", user) == 1
    stop_ok(d)
