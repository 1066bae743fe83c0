"""Hard faults and hostile local users (issue 15): request deadlines under a
frozen database and a commit that never returns, the memory budget under
hostile clients, passwords masked by --check-config, the socket path race,
export_history's plans, access lists reloaded onto open connections, the
fuzz harness under UBSan, rate-limited warnings and batch retries.

Loads are bounded and short (seconds); the tests run as root, another user
is played by `nobody` through runuser(1)."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid

import msgpack
import pytest

import convdtest
from convdtest import Client, RpcError, scaled, uid, wait_until

HIST = "simple_conversation_history"


def at_socket(convd_factory, pg, path, extra=None, start=True):
    """A convd listening on path (instead of its private directory)."""
    extra = {k: dict(v) for k, v in (extra or {}).items()}
    extra.setdefault("server", {})["socket"] = path
    cv = convd_factory(pg, extra=extra, start=False)
    cv.socket = path
    if start:
        cv.start()
    return cv


def run_convd(*args, env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME",
                      "DB_USER", "DB_PASSWORD")}
    e.update(env or {})
    return subprocess.run([convdtest.CONVD] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e, timeout=60)


# ------------------------------------------- 3. --check-config masks passwords

SECRET = "Zq9-s3cr3t-W0rd"


@pytest.mark.parametrize("url", [
    f"postgresql://bob:{SECRET}@localhost:5432/convd",
    f"postgres://bob:{SECRET}@h1:5432,h2:5433/convd?sslmode=disable",
    f"postgresql://bob@localhost/convd?password={SECRET}&sslmode=disable",
    f"postgresql://bob@localhost/convd?pass%77ord={SECRET}",
    f"postgresql://bob:{SECRET}@localhost/convd?password={SECRET}x",
    f"host=localhost user=bob password={SECRET} dbname=convd",
    f"host=localhost password = '{SECRET} with \\' quote' dbname=convd",
    f"password={SECRET}",
])
@pytest.mark.parametrize("where", ["file", "DATABASE_URL"])
def test_check_config_masks_password_in_every_form(tmp_path, url, where):
    path = tmp_path / "c.conf"
    env = {}
    if where == "file":
        quoted = url.replace("\\", "\\\\").replace('"', '\\"')
        path.write_text(f'[database]\nurl = "{quoted}"\n')
    else:
        path.write_text("[database]\n")
        env["DATABASE_URL"] = url
    r = run_convd("--check-config", "-c", str(path), env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert SECRET not in out, out
    assert "***" in out, out
    # what is not secret is still shown
    for word in ("bob", "localhost", "h2:5433", "sslmode=disable"):
        if word in url:
            assert word in out, (word, out)


def test_check_config_unparsable_url_not_shown(tmp_path):
    # A connection string convd cannot read (an unterminated quote) is
    # refused; nothing of it is printed.
    path = tmp_path / "c.conf"
    path.write_text(f"[database]\nurl = \"host=x password='{SECRET}\"\n")
    r = run_convd("--check-config", "-c", str(path))
    assert SECRET not in r.stdout + r.stderr


# ------------------------------------------------- 4. the socket path race

def test_socket_dir_writable_by_others_refused(schema, convd_factory):
    d = tempfile.mkdtemp(prefix="cvf-")
    try:
        os.chmod(d, 0o777)		# no sticky bit
        cv = convd_factory(schema, start=False,
                           extra={"server": {"socket": d + "/s.sock"}})
        cv.start(wait=False)
        assert cv.wait_exit(scaled(15)) != 0
        assert "writable by others" in cv.log(), cv.log()
        assert not os.path.exists(d + "/s.sock")
        # with the sticky bit (as /tmp) it is fine
        os.chmod(d, 0o1777)
        cv2 = at_socket(convd_factory, schema, d + "/t.sock",
                        {"server": {"socket_mode": "0660"}})
        st = os.lstat(d + "/t.sock")
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        cv2.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_socket_swapped_for_symlink_never_chmods_target(schema,
                                                        convd_factory):
    """A racer swaps the fresh socket for a symlink to a root-owned 0600
    file, over and over, while convd starts again and again: the file's
    mode and group never change (before the fix: 0666 within ~25 starts)."""
    d = tempfile.mkdtemp(prefix="cvf-")
    os.chmod(d, 0o1777)
    target = os.path.join(d, "target")
    with open(target, "w") as f:
        f.write("precious\n")
    os.chmod(target, 0o600)
    before = os.stat(target)
    sock = os.path.join(d, "r.sock")
    stop = threading.Event()
    swaps = [0]

    def racer():
        link = os.path.join(d, "l")
        while not stop.is_set():
            try:
                os.symlink(target, link)
            except FileExistsError:
                pass
            try:
                st = os.lstat(sock)
                if stat.S_ISSOCK(st.st_mode):
                    os.rename(link, sock)
                    swaps[0] += 1
            except OSError:
                pass

    t = threading.Thread(target=racer, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + scaled(20)
        starts = 0
        while starts < 30 and time.monotonic() < deadline:
            starts += 1
            cv = convd_factory(schema, start=False, extra={"server": {
                "socket": sock, "socket_mode": "0666",
                "socket_group": "nogroup"}})
            cv.start(wait=False)
            # until it listens (it won the race) or gave up (it lost it)
            wait_until(lambda: cv.proc.poll() is not None or
                       "listening on" in cv.log(), timeout=scaled(10),
                       what="convd to listen or exit")
            cv.stop()
            now = os.stat(target)
            assert stat.S_IMODE(now.st_mode) == 0o600, (starts, cv.log())
            assert now.st_gid == before.st_gid, (starts, cv.log())
            try:
                os.unlink(sock)
            except OSError:
                pass
        assert swaps[0] > 0, "the racer never swapped the socket"
    finally:
        stop.set()
        t.join()
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------- 6. a reload reaches open connections

PERSISTENT = r"""
import json, socket, sys
import msgpack
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
u = msgpack.Unpacker(raw=False, timestamp=0)
n = 0
def call(method, params):
    global n
    n += 1
    try:
        s.sendall(msgpack.packb([0, n, method, params], use_bin_type=True))
        while True:
            for m in u:
                return m
            data = s.recv(65536)
            if not data:
                return "eof"
            u.feed(data)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps(call(req[0], req[1]), default=str), flush=True)
"""


def reload_with(cv, old, new, nth):
    """Replaces a line of cv's config file and reloads (the nth reload)."""
    text = open(cv.config).read()
    assert old in text
    open(cv.config, "w").write(text.replace(old, new))
    cv.signal(signal.SIGHUP)
    wait_until(lambda: cv.log().count("configuration reloaded") >= nth,
               timeout=scaled(10), what=f"reload {nth}")


def test_reload_revokes_access_of_open_connections(schema, convd_factory):
    nobody = pwd.getpwnam("nobody").pw_uid
    d = tempfile.mkdtemp(prefix="cvf-")
    os.chmod(d, 0o755)
    try:
        cv = at_socket(convd_factory, schema, d + "/a.sock", {"server": {
            "socket_mode": "0666",
            "allow_users": "root,nobody", "admin_users": "root,nobody"}})
        p = subprocess.Popen(["runuser", "-u", "nobody", "--",
                              "/usr/bin/python3", "-c", PERSISTENT,
                              cv.socket],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd="/")

        def call(method, *params):
            p.stdin.write(json.dumps([method, list(params)]) + "\n")
            p.stdin.flush()
            return json.loads(p.stdout.readline())

        try:
            user = uid("rev")
            r = call("import_message", user, "openai", "user", "hi",
                     1_700_000_000_000_000)
            assert r[2] is None, r
            # admin rights only revoked: the connection stays, admin
            # methods are refused at once
            reload_with(cv, "admin_users = root,nobody",
                        "admin_users = root", 1)
            r = call("import_message", user, "openai", "user", "hi2",
                     1_700_000_000_000_001)
            assert r[2] and r[2]["code"] == "permission_denied", r
            assert call("ping")[3] == "pong"
            # access revoked: the open connection is closed
            reload_with(cv, "allow_users = root,nobody",
                        "allow_users = root", 2)
            r = call("ping")
            assert r in ("eof", "reset"), r
            assert f"uid {nobody}" in cv.log()
            assert "no longer in allow_users" in cv.log()
            n = schema.psql(f"SELECT count(*) FROM {HIST} "
                            f"WHERE user_id = '{user}'")
            assert n.strip() == "1", n
        finally:
            p.stdin.close()
            p.wait(timeout=10)
        # root's connections are unaffected
        with cv.client() as c:
            assert c.call("ping") == "pong"
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- 7. smaller

def test_fuzz_harness_clean_under_ubsan(tmp_path):
    """The libFuzzer target runs its own corpus without undefined
    behaviour (it stopped at memcmp with NULL for an empty string).  clang
    and libFuzzer (libclang-rt-14-dev) come from scripts/common.sh."""
    src, build = convdtest.SRCDIR, convdtest.BUILDDIR
    exe = str(tmp_path / "fuzz_request")
    r = subprocess.run(
        ["clang", "-D_GNU_SOURCE", "-I" + os.path.join(src, "include"),
         "-I" + build, "-fsanitize=fuzzer,address,undefined",
         "-fno-sanitize-recover=undefined",
         os.path.join(src, "tests/fuzz/fuzz_request.c"),
         os.path.join(src, "src/proto.c"), os.path.join(src, "src/validate.c"),
         # issue 17: structured content (validate.c checks it)
         os.path.join(src, "src/content.c"), os.path.join(src, "src/mpread.c"),
         # issue 16: the method table, UTF-8, error texts in their modules
         os.path.join(src, "src/method.c"), os.path.join(src, "src/utf8.c"),
         os.path.join(src, "src/errbuf.c"),
         os.path.join(src, "src/log.c"), "-lmsgpackc", "-o", exe],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)
    assert r.returncode == 0, r.stdout
    r = subprocess.run([exe, "-runs=0", os.path.join(src, "tests/fuzz/corpus")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120, cwd=str(tmp_path),
                       env=dict(os.environ, UBSAN_OPTIONS="halt_on_error=1"))
    assert r.returncode == 0 and "runtime error" not in r.stdout, r.stdout[-3000:]


def test_refusals_are_rate_limited_with_a_count(schema, convd_factory):
    """A burst of 300 connections over max_clients: a handful of warning
    lines, then one line with the count of the others (not one line per
    refusal)."""
    cv = convd_factory(schema, extra={"server": {"max_clients": 2}})
    held = [cv.client(), cv.client()]
    for c in held:
        assert c.call("ping") == "pong"
    refused = 0
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(cv.socket)
        # a request, as clients send: the refusal answers it at once
        s.sendall(msgpack.packb([0, 1, "ping", []]))
        data = s.recv(4096)
        s.close()
        if b"overloaded" in data:
            refused += 1
    assert refused == 300
    lines = [l for l in cv.log().splitlines()
             if "refusing a connection: max_clients" in l]
    assert 1 <= len(lines) <= 10, len(lines)
    # the count comes with the status timer (every 5 s) at the latest
    pat = r"(\d+) more refused connections \(max_clients\) suppressed"

    def counted():
        lines = [l for l in cv.log().splitlines()
                 if "refusing a connection: max_clients" in l]
        return len(lines) + sum(int(n) for n in re.findall(pat, cv.log()))

    wait_until(lambda: counted() == 300, timeout=scaled(15),
               what="every refusal logged or counted")
    for c in held:
        c.close()


# ------------------------------------- 5. export_history's generic plans

def test_export_history_generic_plans_use_the_index(schema, convd_factory):
    """Every statement convd runs for export_history (and the other reads)
    has a plan on the (user_id, platform, ...) index whatever the
    parameters: with plan_cache_mode=force_generic_plan and auto_explain
    logging every plan of convd's sessions, after six pages per form, no
    plan scans the primary key or the whole table (before: a primary key
    walk in id order filtered on the user)."""
    pg = schema
    db = "plans_" + uuid.uuid4().hex[:6]
    pg.createdb(db)
    convdtest.setup_schema(pg, db)
    # skewed: three users hold nearly every row, 2,000 users a few each
    pg.psql(f"""INSERT INTO {HIST} (user_id, platform, model_provider, role,
                content, created_at)
        SELECT CASE WHEN g % 50 = 0 THEN 'u' || (g % 2000)
                    ELSE 'big' || (g % 3) END,
               'line', CASE WHEN g % 2 = 0 THEN 'openai' ELSE 'claude' END,
               'user', 'x', now() - g * interval '1 second'
        FROM generate_series(1, 100000) g;
        ANALYZE {HIST};""", db=db)
    pg.psql(f"ALTER DATABASE {db} SET plan_cache_mode = force_generic_plan;"
            f"ALTER DATABASE {db} SET session_preload_libraries = "
            f"'auto_explain';"
            f"ALTER DATABASE {db} SET auto_explain.log_min_duration = 0;")
    start = os.path.getsize(pg.logfile)
    cv = convd_factory(pg, extra={"database": {"name": db},
                                  "pool": {"size": 1, "max_overflow": 0}})
    with cv.client() as c:
        for _ in range(6):
            rows = c.call("export_history", {"user_id": "u100",
                                             "after_id": 0, "limit": 1000})
            assert len(rows) == 50 and rows[0]["content"] == "x", rows
            rows = c.call("export_history", {"user_id": "u100",
                                             "provider": "openai",
                                             "after_id": 0, "limit": 1000})
            assert len(rows) == 50, rows
            c.call("get_recent_conversations", "u100", "openai", 10)
            c.call("get_conversation_count", "u100")
            c.call("get_user_statistics", "u100")
    cv.stop()
    with open(pg.logfile, errors="replace") as f:
        f.seek(start)
        log = f.read()
    plans = [p for p in log.split("plan:")[1:] if HIST in p.split("\n")[1]]
    exports = [p for p in plans if "ORDER BY id" in p.split("\n")[1]]
    assert len(exports) >= 12, log[-3000:]
    for p in plans:
        body = p.split("LOG:")[0]
        assert "Seq Scan on " + HIST not in body, body
        assert HIST + "_pkey" not in body, body
    for p in exports:
        # the history index (issue 17: with conversation_id)
        assert HIST + "_conversation_idx" in p.split("LOG:")[0], p


# ------------------------------------------ 1. deadlines under a hung database

def pg_pids(pg):
    """The postmaster and every process it started (by pid)."""
    top = pg.postmaster_pid()
    pids = [top]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == top:
            pids.append(int(d))
    return pids


class Load(threading.Thread):
    """A client that calls add_message (or get_recent_conversations) in a
    loop and records (start, end, outcome) of each call: outcome is the
    row id, or the error code."""

    def __init__(self, path, user, method="add_message"):
        super().__init__(daemon=True)
        self.path, self.user, self.method = path, user, method
        self.calls = []
        self.acked = {}
        self.stop = threading.Event()
        self.exc = None

    def run(self):
        try:
            with Client(self.path, timeout=60) as c:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    content = f"{self.user} #{n}"
                    t0 = time.monotonic()
                    try:
                        if self.method == "add_message":
                            r = c.call("add_message", self.user, "openai",
                                       "user", content)
                            self.acked[r["id"]] = content
                            out = r["id"]
                        else:
                            c.call("get_recent_conversations", self.user,
                                   "openai", 5)
                            out = "ok"
                    except RpcError as e:
                        out = e.code
                    self.calls.append((t0, time.monotonic(), out))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.exc = e


def pings(path, until):
    """ping every 50 ms until `until` (monotonic): (sent, answered) of
    each ping."""
    out = []
    with Client(path, timeout=scaled(10)) as c:
        while time.monotonic() < until:
            t0 = time.monotonic()
            assert c.call("ping") == "pong"
            out.append((t0, time.monotonic()))
            time.sleep(0.05)
    return out


def check_acked_stored(pg, loads):
    for ld in loads:
        if ld.method != "add_message":
            continue
        rows = pg.psql(f"SELECT id, content FROM {HIST} "
                       f"WHERE user_id = '{ld.user}'")
        db = dict(line.split("|", 1) for line in rows.splitlines())
        for rowid, content in ld.acked.items():
            assert db.get(str(rowid)) == content, (rowid, content)


DEADLINE_MS = 1500


@pytest.fixture(scope="module")
def fpg():
    """A private cluster of this module's own, for the tests that freeze
    it or change its settings."""
    cluster = convdtest.PgCluster().initdb()
    cluster.start()
    cluster.createdb()
    convdtest.setup_schema(cluster)
    yield cluster
    cluster.destroy()


def test_frozen_database_requests_end_at_their_deadline(fpg, convd_factory):
    """PostgreSQL frozen with SIGSTOP for 4 s under load: requests already
    sent to it end with `timeout` at request_timeout (1.5 s), not when it
    thaws; the loop keeps answering (ping); `health` says stalled; after
    SIGCONT everything works again and every acknowledged write is
    stored.  (Before: requests hung for the whole freeze and health said
    up.)"""
    pg = fpg
    cv = convd_factory(pg, extra={
        "server": {"request_timeout": DEADLINE_MS},
        "database": {"connect_timeout": 2},
        "pool": {"size": 3, "max_overflow": 2, "timeout": 30}})
    loads = [Load(cv.socket, uid("frz")) for _ in range(4)]
    loads += [Load(cv.socket, uid("frzr"), "get_recent_conversations")]
    for ld in loads:
        ld.start()
    time.sleep(1.0)
    pids = pg_pids(pg)
    t_stop = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        pinged = pings(cv.socket, t_stop + 2.5)
        with cv.client() as c:
            h = wait_until(lambda: (lambda h: h if h["database"] == "stalled"
                                    else None)(c.call("health")),
                           timeout=scaled(6), what="health: stalled")
        assert h["ok"] is False, h
        time.sleep(max(0.0, t_stop + 4 - time.monotonic()))
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    t_cont = time.monotonic()
    # back to normal: a fresh write succeeds, health is up again
    with cv.client() as c:
        wait_until(lambda: c.call("add_message", uid("after"), "openai",
                                  "user", "back") and True,
                   timeout=scaled(20), what="a write after the thaw")
        wait_until(lambda: c.call("health")["database"] == "up",
                   timeout=scaled(10), what="health: up")
    time.sleep(0.5)
    for ld in loads:
        ld.stop.set()
    for ld in loads:
        ld.join(30)
        assert ld.exc is None, ld.exc
    # every call that was running while frozen ended within the deadline
    # (plus slack), with `timeout`
    frozen = [c for ld in loads for c in ld.calls
              if c[0] < t_cont and c[1] > t_stop + 0.2]
    assert frozen, "no call ran during the freeze"
    late = [c for c in frozen
            if c[1] - c[0] > DEADLINE_MS / 1000 + scaled(1.0)]
    assert not late, late[:5]
    assert any(c[2] == "timeout" for c in frozen), frozen[:5]
    # the loop keeps answering: pings sent while a database call was
    # held were answered before that call ended (an order of events)
    held = [p for p in pinged if p[0] > t_stop + 0.2 and any(
        c[0] <= p[0] and p[1] <= c[1] for c in frozen)]
    assert len(held) >= 3, (pinged, frozen[:5])
    # and no ping waited out a connect_timeout (2 s) to the frozen server
    # in a blocking call: a generous bound, scaled
    assert max(b - a for a, b in pinged) < scaled(2.0), pinged
    check_acked_stored(pg, loads)
    st = cv.client().call("stats")
    assert st["pool"]["abandoned"] >= 1, st["pool"]
    assert "answered timeout" in cv.log()


def test_commit_that_never_returns_ends_at_the_deadline(fpg, convd_factory):
    """synchronous_standby_names names a standby that is not there (as
    Patroni's strict synchronous mode with no standby does): every commit
    waits for ever, outside statement_timeout.  add_message gets `timeout`
    at request_timeout, the wait is cancelled on the server (off convd's
    loop), health says stalled; once the setting is gone, writes work."""
    from test_systemd import NotifySocket
    pg = fpg
    nd = tempfile.mkdtemp(prefix="cvn-")
    notify = NotifySocket(nd)
    cv = convd_factory(pg, env={"NOTIFY_SOCKET": notify.path}, extra={
        "server": {"request_timeout": DEADLINE_MS},
        "database": {"statement_timeout": 1000},
        "pool": {"size": 2, "max_overflow": 2}})
    with cv.client() as c:
        c.call("add_message", uid("sync"), "openai", "user", "before")
    pg.psql("ALTER SYSTEM SET synchronous_standby_names = 'missing'",
            db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    time.sleep(0.3)
    user = uid("sync")
    with cv.client() as c:
        t0 = time.monotonic()
        with pytest.raises(RpcError) as e:
            c.call("add_message", user, "openai", "user", "stuck")
        took = time.monotonic() - t0
        assert e.value.code == "timeout", e.value
        assert DEADLINE_MS / 1000 - 0.1 <= took < DEADLINE_MS / 1000 + \
            scaled(1.0), took
        h = c.call("health")
        assert h["database"] == "stalled" and h["ok"] is False, h
        assert c.call("ping") == "pong"
    # the systemd status line says so too (sent again after a reload)
    notify.drain()
    cv.signal(signal.SIGHUP)
    _, st, _ = notify.wait_for(lambda f: "STATUS" in f, scaled(10),
                               "STATUS=")
    notify.close()
    shutil.rmtree(nd, ignore_errors=True)
    assert "database STALLED" in st["STATUS"], st
    # the backend was told to stop waiting (a cancel request): nothing is
    # left waiting for the standby
    wait_until(lambda: pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        db="postgres").strip() == "0", timeout=scaled(10),
        what="no backend waiting for the missing standby")
    pg.psql("ALTER SYSTEM RESET synchronous_standby_names", db="postgres")
    pg.psql("SELECT pg_reload_conf()", db="postgres")
    with cv.client() as c:
        wait_until(lambda: c.call("add_message", user, "openai", "user",
                                  "after"), timeout=scaled(15),
                   what="a write once the setting is gone")
        wait_until(lambda: c.call("health")["database"] == "up",
                   timeout=scaled(10), what="health: up")


def test_batch_statement_timeout_does_not_double_the_wait(schema,
                                                          convd_factory):
    """A batch of add_message that hits statement_timeout (1.5 s, the table
    locked) is not retried request by request (each would wait 1.5 s
    again): its requests get `timeout` when the batch does.  Counted in
    the server's log, not timed: every INSERT the server cancelled is a
    statement convd sent; a batch retried alone would make more cancelled
    INSERTs than requests (the batch's, then each one's again)."""
    cv = convd_factory(schema, extra={"database": {"statement_timeout": 1500},
                                      "pool": {"size": 4, "max_overflow": 4}})
    user = uid("retry")
    with open(schema.logfile, "rb") as f:
        log_start = f.seek(0, os.SEEK_END)
    with convdtest.TableLock(schema, HIST):
        with cv.client(timeout=scaled(30)) as c:
            ids = [c.request("add_message", user, "openai", "user",
                             f"m{i}") for i in range(12)]
            answers = {}
            while len(answers) < len(ids):
                m = c.recv()
                assert m is not None, (answers, cv.log()[-3000:])
                answers[m[1]] = m[2]
    codes = {a["code"] for a in answers.values() if a}
    assert codes == {"timeout"}, answers
    assert "retrying each alone" not in cv.log()
    with open(schema.logfile, "rb") as f:
        f.seek(log_start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    cancelled = [lines[i + 1] for i, ln in enumerate(lines[:-1])
                 if "canceling statement due to statement timeout" in ln
                 and f"INSERT INTO {HIST}" in lines[i + 1]]
    # at least one batch (fewer statements than requests), none run twice
    assert 1 <= len(cancelled) < len(ids), cancelled


# ---------------------------------------------------- 2. the memory budget

BUDGET = 32 << 20
MAX_OUT = 4 << 20
POOL = {"size": 4, "max_overflow": 4}


def budget_margin():
    """The margin documented in convd.conf(5) (memory_budget): the
    process's own 16 MiB, the response being packed (max_output_bytes),
    and one result per pool connection being read (max_output_bytes
    each)."""
    return (16 << 20) + MAX_OUT * (1 + POOL["size"] + POOL["max_overflow"])


def rss_peak(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class GoodClient(threading.Thread):
    """A well-behaved client: small calls one after the other, latencies
    recorded."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.lat = []		# ping: the loop
        self.lat_db = []	# get_thread: the loop and the database
        self.stop = threading.Event()
        self.exc = None
        self.user = uid("good")

    def run(self):
        try:
            with Client(self.path, timeout=30) as c:
                while not self.stop.is_set():
                    t0 = time.monotonic()
                    c.call("ping")
                    t1 = time.monotonic()
                    c.call("get_thread", self.user)
                    self.lat.append(t1 - t0)
                    self.lat_db.append(time.monotonic() - t1)
                    time.sleep(0.005)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.exc = e


def big_frame(n):
    """A valid add_message request of about n bytes."""
    return msgpack.packb([0, 1, "add_message",
                          [uid("big"), "openai", "user", "y" * (n - 200)]])


def hostile(path, count, payloads):
    """count connections that each send payloads (a list of bytes) and
    then nothing more, reading nothing; returns the sockets convd has not
    cut off yet."""
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(path)
            for p in payloads:
                s.sendall(p)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def stalled_frames(path, count, size=2 << 20):
    """count connections that each send a frame of size bytes but its last
    byte."""
    return hostile(path, count, [big_frame(size - 1024)[:-1]])


def non_readers(path, count, user, per=3):
    """count connections that ask for large answers and never read them."""
    return hostile(path, count, [
        msgpack.packb([0, i, "get_recent_conversations", [user, "openai", 10]])
        for i in range(per)])


def make_big_users(pg):
    """A user whose 20 newest messages are 150 KiB each (a 3 MiB answer for
    get_recent_conversations(limit=10)), and one whose 40 are 256 KiB (10
    MiB: over max_output_bytes)."""
    big, huge = uid("big"), uid("huge")
    pg.psql(f"""INSERT INTO {HIST} (user_id, platform, model_provider,
        role, content)
        SELECT '{big}', 'line', 'openai', 'user', repeat('b', 150 * 1024)
        FROM generate_series(1, 20);
        INSERT INTO {HIST} (user_id, platform, model_provider, role, content)
        SELECT '{huge}', 'line', 'openai', 'user',
               repeat(md5(g::text), 8 * 1024)
        FROM generate_series(1, 40) g;""")
    return big, huge


@pytest.fixture(scope="module")
def big_user(schema):
    return make_big_users(schema)


def budget_convd(convd_factory, pg, budget=BUDGET):
    # The good client's database calls queue (pool FIFO) behind the
    # hostile clients' large reads, which still run after their clients
    # are cut off: how long that queue takes to drain is the machine's
    # load (at load 25 it outlasted the default pool wait of 5 s, and the
    # good client got `timeout`), not the budget under test.  The pool
    # wait is a generous bound, scaled.
    return convd_factory(pg, extra={
        "server": {"memory_budget": budget, "max_output_bytes": MAX_OUT,
                   "max_request_bytes": "2M", "max_clients": 1000},
        "pool": dict(POOL, timeout=int(scaled(30)))})


def test_budget_stalled_frames_and_non_readers(schema, convd_factory,
                                               big_user):
    """150 connections stalled one byte short of a 2 MiB frame, then 30
    clients that never read their 3 MiB answers (two each), with a good
    client running throughout: convd's peak RSS stays under the budget
    (32 MiB) plus the documented margin, the good client is answered
    throughout, and the clients holding the most were cut off (before:
    about 300 MB and 360 MB held)."""
    big, _ = big_user
    cv = budget_convd(convd_factory, schema)
    pid = cv.proc.pid
    good = GoodClient(cv.socket)
    good.start()
    time.sleep(0.3)
    held = stalled_frames(cv.socket, 150)
    held += non_readers(cv.socket, 30, big, per=2)
    n0 = len(good.lat)
    time.sleep(2.0)
    # the good client is answered while the hostile ones hold on
    wait_until(lambda: len(good.lat) >= n0 + 20 or good.exc, scaled(10),
               what="the good client's calls")
    with cv.client() as c:
        st = c.call("stats")
    n_held = len(good.lat) - n0
    good.stop.set()
    good.join(30)
    assert good.exc is None, good.exc
    peak = rss_peak(pid)
    for s in held:
        s.close()
    assert st["budget"]["cutoffs"] > 0, st["budget"]
    assert st["budget"]["peak_bytes"] <= BUDGET, st["budget"]
    if convdtest.own_allocator():	# ASan and valgrind keep freed memory
        assert peak < BUDGET + budget_margin(), (peak >> 20, st["budget"])
    # the loop never waits on the hostile clients: the good client's
    # calls (a ping, then a database call) were answered while every
    # hostile socket was still open (an order of events; BENCHMARKS.md
    # has the latencies, p99 about 20 ms); its database calls wait their
    # turn for a connection behind the hostile clients' own reads (pool
    # FIFO), but never fail (good.exc above)
    assert n_held >= 20, n_held
    assert "cut off at the memory budget" in cv.log()
    with cv.client() as c:
        assert c.call("ping") == "pong"


def concurrent_large(path, user):
    """8 get_recent_conversations(limit=150) and 8 export_history of user
    at once; returns their outcomes ("ok" or the error code)."""
    out = []

    def ask(method, *params):
        with Client(path, timeout=60) as c:
            try:
                c.call(method, *params)
                out.append((method, "ok"))
            except RpcError as e:
                out.append((method, e.code))

    ts = [threading.Thread(target=ask, args=("get_recent_conversations",
                                             user, "openai", 150))
          for _ in range(8)]
    ts += [threading.Thread(target=ask, args=("export_history", user))
           for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def test_large_results_checked_while_read(schema, convd_factory, big_user):
    """8 concurrent get_recent_conversations and export_history whose
    answers (10 MiB) are over max_output_bytes (4 MiB): each history read
    gets result_too_large, each export a page that fits (pages are bounded
    by bytes), and convd never holds the results whole (peak RSS under the
    budget's margin; before: 8 x 10 MiB of results plus their packing)."""
    _, huge = big_user
    cv = budget_convd(convd_factory, schema)
    pid = cv.proc.pid
    base = rss_peak(pid)
    out = concurrent_large(cv.socket, huge)
    assert sorted(out) == sorted(
        [("get_recent_conversations", "result_too_large")] * 8 +
        [("export_history", "ok")] * 8), out
    peak = rss_peak(pid)
    if convdtest.own_allocator():	# ASan and valgrind keep freed memory
        # the export pages are answers (up to max_output_bytes each),
        # held in output buffers under the budget: the documented bound
        # is the budget plus the margin
        assert peak - base < BUDGET + budget_margin(), ((peak - base) >> 20)
