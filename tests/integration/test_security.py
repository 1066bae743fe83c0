"""Trust boundaries, limits and bad input: the socket's mode, group and
ownership (stale vs live), peer credentials (allow and admin lists, checked
as another user), secrets kept out of logs and stats, the resource limits
(clients, request size, nesting, output backpressure, requests in flight,
idle time), a barrage of malformed input, and kill -9 in the middle of a
write load.

The tests run as root; another user is played by `nobody` through
runuser(1)."""

import grp
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import msgpack
import pytest

import convdtest
from convdtest import (Client, PipelinedWriter, Raw, RpcError, TableLock,
                       assert_acked_stored, scaled, stop_ok, uid, wait_until)

HIST = "simple_conversation_history"
SECRET = "s3cr3t-P@ss"


@pytest.fixture
def shortdir():
    """A short temp dir that others may traverse (socket paths must stay
    under 108 bytes, and `nobody` must reach the socket)."""
    d = tempfile.mkdtemp(prefix="cvsec-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make(convd_factory, pg, extra=None, start=True, socket_path=None,
         public=False):
    """A convd; public: socket 0666 in a directory mode 0755."""
    extra = {k: dict(v) for k, v in (extra or {}).items()}
    if socket_path:
        extra.setdefault("server", {})["socket"] = socket_path
    if public:
        extra.setdefault("server", {}).setdefault("socket_mode", "0666")
    d = convd_factory(pg, extra=extra, start=False)
    if socket_path:
        d.socket = socket_path
    if public:
        os.chmod(d.tmp, 0o755)
    if start:
        d.start()
    return d


class RawStr:
    """A msgpack str holding any bytes (invalid UTF-8, NUL, ...)."""

    def __init__(self, data):
        self.data = bytes(data)


def _head(n, fix, fixmax, codes):
    if n <= fixmax:
        return bytes([fix | n])
    for code, fmt, top in codes:
        if code is not None and n < top:
            return bytes([code]) + struct.pack(fmt, n)
    raise ValueError(n)


def pack(o):
    """MessagePack with full control of types: str for str and RawStr,
    bin for bytes/bytearray, ints in their smallest encoding."""
    if isinstance(o, RawStr):
        return _head(len(o.data), 0xa0, 31, [(0xd9, ">B", 1 << 8),
                                              (0xda, ">H", 1 << 16),
                                              (0xdb, ">I", 1 << 32)]) + o.data
    if isinstance(o, (list, tuple)):
        return _head(len(o), 0x90, 15, [(0xdc, ">H", 1 << 16),
                                        (0xdd, ">I", 1 << 32)]) + \
            b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        return _head(len(o), 0x80, 15, [(0xde, ">H", 1 << 16),
                                        (0xdf, ">I", 1 << 32)]) + \
            b"".join(pack(k) + pack(v) for k, v in o.items())
    if isinstance(o, (bytes, bytearray)):
        return msgpack.packb(bytes(o), use_bin_type=True)
    return msgpack.packb(o, use_bin_type=True)


def err_code(m):
    assert m is not None and m[0] == 1 and isinstance(m[2], dict), m
    return m[2]["code"]


# ------------------------------------------------------------ the socket

def test_socket_mode_and_group(schema, convd_factory, shortdir):
    path = os.path.join(shortdir, "m.sock")
    d = make(convd_factory, schema, socket_path=path,
             extra={"server": {"socket_mode": "0660",
                               "socket_group": "nogroup"}})
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == grp.getgrnam("nogroup").gr_gid, st.st_gid
    with d.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(d)
    assert not os.path.exists(path), "convd left its socket behind"


def test_socket_mode_0600_is_private(schema, convd_factory, shortdir):
    path = os.path.join(shortdir, "p.sock")
    d = make(convd_factory, schema, socket_path=path,
             extra={"server": {"socket_mode": "0600"}})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    r = as_user("nobody", path, [["ping", []]])
    assert r["end"].startswith("connect:") and "ermission" in r["end"], r
    stop_ok(d)


def test_stale_socket_replaced(schema, convd_factory, shortdir):
    path = os.path.join(shortdir, "stale.sock")
    d = make(convd_factory, schema, socket_path=path)
    d.proc.kill()
    d.proc.wait()
    assert stat.S_ISSOCK(os.lstat(path).st_mode), "no stale socket left"
    with pytest.raises(OSError):
        Client(path, timeout=1)
    t0 = time.monotonic()
    d.start()
    assert time.monotonic() - t0 < scaled(5)
    with d.client() as c:
        assert c.call("ping") == "pong"
    assert re.search(r"stale", d.log()), d.log()
    stop_ok(d)


def test_live_socket_never_stolen(schema, convd_factory, shortdir):
    path = os.path.join(shortdir, "live.sock")
    first = make(convd_factory, schema, socket_path=path)
    ino = os.stat(path).st_ino
    with first.client() as held:
        assert held.call("ping") == "pong"
        second = make(convd_factory, schema, socket_path=path, start=False)
        second.start(wait=False)
        rc = second.wait_exit(scaled(15))
        # start-up failures exit 1 with the reason (not a crash)
        assert rc == 1, (rc, second.log())
        log = second.log()
        assert path in log and re.search(r"in use|already running", log), log
        # the first one keeps its socket and serves old and new clients
        assert os.stat(path).st_ino == ino
        assert held.call("ping") == "pong"
    with first.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(first)
    assert not os.path.exists(path)


def test_non_socket_file_not_replaced(schema, convd_factory, shortdir):
    path = os.path.join(shortdir, "file.sock")
    with open(path, "w") as f:
        f.write("precious\n")
    d = make(convd_factory, schema, socket_path=path, start=False)
    d.start(wait=False)
    rc = d.wait_exit(scaled(15))
    assert rc == 1, (rc, d.log())
    assert path in d.log() and "not a socket" in d.log(), d.log()
    with open(path) as f:
        assert f.read() == "precious\n"


# --------------------------------------------------- peer credentials

AS_USER = r"""
import json, os, socket, sys
import msgpack
path, reqs, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
out = {"pid": os.getpid(), "uid": os.getuid(), "responses": [], "end": None}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(timeout)
unp = msgpack.Unpacker(raw=False, timestamp=0)
def recv():
    for m in unp:
        return m
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            return "timeout"
        if not data:
            return "eof"
        unp.feed(data)
        for m in unp:
            return m
try:
    s.connect(path)
except OSError as e:
    out["end"] = "connect: " + str(e)
else:
    for i, (method, params) in enumerate(reqs):
        try:
            s.sendall(msgpack.packb([0, i + 1, method, params]))
        except OSError as e:
            out["end"] = "send: " + str(e)
            break
        m = recv()
        if isinstance(m, str):
            out["end"] = m
            break
        out["responses"].append(m)
    if reqs and out["end"] is None:
        out["end"] = "open"
    while out["end"] is None:
        m = recv()
        if isinstance(m, str):
            out["end"] = m
        else:
            out["responses"].append(m)
print(json.dumps(out, default=str))
"""


def as_user(user, path, reqs, timeout=3.0):
    """Runs a client as `user`: connects to path, sends each [method,
    params] of reqs and reads one message after each; with no reqs, reads
    every message until the end of the connection (or `timeout` seconds of
    silence).  Returns {pid, uid, responses, end}, end
    being "open" (all reqs answered), "eof", "reset", "timeout",
    "connect: ..." or "send: ..."."""
    r = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3",
                        "-c", AS_USER, path, json.dumps(reqs),
                        str(scaled(timeout))],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd="/", timeout=scaled(timeout) + 30)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == pwd.getpwnam(user).pw_uid
    return out


NOBODY = pwd.getpwnam("nobody").pw_uid


def assert_refused(out):
    """Connection got one permission_denied error, then was closed."""
    assert out["responses"], out
    first = out["responses"][0]
    assert first[0] == 1 and first[2]["code"] == "permission_denied", out
    assert out["end"] in ("eof", "reset"), out


def test_allow_users(schema, convd_factory):
    d = make(convd_factory, schema, public=True,
             extra={"server": {"allow_users": "root"}})
    out = as_user("nobody", d.socket, [])
    assert_refused(out)
    assert re.search(rf"uid {NOBODY}\b.*pid {out['pid']}\b", d.log()), \
        d.log()
    with d.client() as c:           # root is in the list
        assert c.call("ping") == "pong"
        assert c.call("stats")["clients"]["rejected"] >= 1
    # listed, nobody is served
    d2 = make(convd_factory, schema, public=True,
              extra={"server": {"allow_users": f"root, {NOBODY}"}})
    out = as_user("nobody", d2.socket, [["ping", []]])
    assert out["responses"][0][3] == "pong", out
    stop_ok(d, d2)


def test_allow_groups(schema, convd_factory):
    d = make(convd_factory, schema, public=True,
             extra={"server": {"allow_groups": "root"}})
    out = as_user("nobody", d.socket, [])
    assert_refused(out)
    assert re.search(rf"uid {NOBODY}\b.*pid {out['pid']}\b", d.log()), \
        d.log()
    with d.client() as c:           # root's group is root
        assert c.call("ping") == "pong"
    d2 = make(convd_factory, schema, public=True,
              extra={"server": {"allow_users": "root",
                                "allow_groups": "nogroup"}})
    out = as_user("nobody", d2.socket, [["ping", []]])
    assert out["responses"][0][3] == "pong", out
    stop_ok(d, d2)


def test_admin_method_refused_to_non_admin(schema, convd_factory):
    d = make(convd_factory, schema, public=True,
             extra={"server": {"allow_users": "root,nobody"}})
    out = as_user("nobody", d.socket,
                  [["cleanup_old_conversations", [{"days_to_keep": 30}]],
                   ["ping", []]])
    first = out["responses"][0]
    assert first[1] == 1 and first[2]["code"] == "permission_denied", out
    # the connection stays usable for ordinary methods
    assert out["responses"][1][1] == 2 and out["responses"][1][3] == "pong"
    line = next((ln for ln in d.log().splitlines()
                 if "cleanup_old_conversations" in ln and
                 "denied" in ln), None)
    assert line and f"uid {NOBODY}" in line and \
        re.search(rf"pid {out['pid']}\b", line), d.log()
    # root is an admin by default
    with d.client() as c:
        assert "deleted" in c.call("cleanup_old_conversations",
                                   days_to_keep=3650)
    stop_ok(d)


# ----------------------------------------------------------------- secrets

@pytest.fixture(scope="module")
def pwroles(schema):
    """Two roles that must log in with a password: convd_ok's password is
    SECRET, convd_bad's is another one (so SECRET fails for it)."""
    for role, pw in (("convd_ok", SECRET), ("convd_bad", "other-pw-9")):
        schema.psql(f"DROP ROLE IF EXISTS {role}", db="postgres")
        schema.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{pw}'",
                    db="postgres")
        schema.psql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};"
                    f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    schema.hba_prepend("local all convd_ok,convd_bad scram-sha-256")
    return schema


def no_secret(*texts):
    for t in texts:
        t = t if isinstance(t, str) else repr(t)
        assert "s3cr3t" not in t and "P@ss" not in t and \
            "P%40ss" not in t, t


def check_config_output(d):
    r = subprocess.run([convdtest.CONVD, "--check-config", "-c", d.config],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=d.env, timeout=30)
    return r


@pytest.mark.parametrize("source", ["password", "password_file"])
def test_password_never_shown(pwroles, convd_factory, tmp_path, source):
    def db(user):
        sec = {"user": user}
        if source == "password":
            sec["password"] = SECRET
        else:
            pf = tmp_path / "pw"
            pf.write_text(SECRET + "\n")
            os.chmod(pf, 0o600)
            sec["password_file"] = str(pf)
        return {"database": sec, "log": {"level": "debug"},
                "pool": {"size": 1, "max_overflow": 0, "timeout": 2}}

    # the right password: connects
    ok = make(convd_factory, pwroles, extra=db("convd_ok"))
    with ok.client() as c:
        wait_until(lambda: c.call("health")["database"] == "up",
                   scaled(10), what="database up")
        c.call("add_message", user_id=uid(), provider="p", role="user",
               content="hello")
        st, health = c.call("stats"), c.call("health")
    ok.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in ok.log(), scaled(5), what="reload")
    r = check_config_output(ok)
    assert r.returncode == 0, r.stdout
    stop_ok(ok)
    no_secret(ok.log(), st, health, r.stdout)

    # the wrong user for it: every connection fails, at debug level
    bad = make(convd_factory, pwroles, extra=db("convd_bad"))
    with bad.client() as c:
        wait_until(lambda: c.call("stats")["pool"]["connect_failures"] >= 1,
                   scaled(15), what="a failed connection attempt")
        with pytest.raises(RpcError):
            c.call("add_message", user_id=uid(), provider="p", role="user",
                   content="x")
        st, health = c.call("stats"), c.call("health")
    assert "password authentication failed" in st["pool"]["last_error"], st
    assert "password authentication failed" in bad.log()
    stop_ok(bad)
    no_secret(bad.log(), st, health)


def test_password_file_readable_by_others_refused(pwroles, convd_factory,
                                                   tmp_path):
    pf = tmp_path / "pw"
    pf.write_text(SECRET + "\n")
    os.chmod(pf, 0o644)
    d = make(convd_factory, pwroles, start=False,
             extra={"database": {"user": "convd_ok",
                                 "password_file": str(pf)}})
    d.start(wait=False)
    rc = d.wait_exit(scaled(15))
    assert rc == 1, (rc, d.log())
    log = d.log()
    assert str(pf) in log and "password_file" in log, log
    assert re.search(r"group|others|0644|permission|mode", log), log
    no_secret(log)
    assert not os.path.exists(d.socket)


# ------------------------------------------------------------------ limits

def test_max_clients(schema, convd_factory):
    d = make(convd_factory, schema, extra={"server": {"max_clients": 3}})
    clients = [d.client() for _ in range(3)]
    try:
        for c in clients:
            assert c.call("ping") == "pong"
        with Raw(d.socket) as fourth:
            msgs = fourth.read_until_closed()
            assert [err_code(m) for m in msgs] == ["overloaded"], msgs
        for c in clients:           # the others keep working
            assert c.call("ping") == "pong"
        assert clients[0].call("stats")["clients"]["rejected"] == 1
        clients.pop().close()
        # a freed slot is usable again
        wait_until(lambda: clients[0].call("stats")["clients"]["connected"]
                   == 2, scaled(5), what="the closed client to be gone")
        with d.client() as c:
            assert c.call("ping") == "pong"
    finally:
        for c in clients:
            c.close()
    stop_ok(d)


@pytest.mark.skipif(bool(convdtest.WRAPPER),
                    reason="valgrind keeps descriptors of its own and "
                    "closes what the program gets beyond its limit")
def test_out_of_descriptors_pauses_accepting(schema, convd_factory):
    """convd run with a hard limit of 48 open files (prlimit) and the
    default max_clients: at start it says that the limit is short of what
    max_clients needs; when the descriptors run out, accept fails with
    EMFILE and convd pauses accepting (instead of spinning on a listener
    it cannot serve), the clients already in keep working, and the
    waiting ones are served once descriptors are free again."""
    d = make(convd_factory, schema,
             extra={"pool": {"size": 2, "max_overflow": 0}}, start=False)
    d.start(prefix=["prlimit", "--nofile=48:48"])
    assert "need 1058 file descriptors, but the limit is 48 " in d.log(), \
        d.log()
    socks = []
    try:
        for _ in range(60):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)     # the listen backlog takes them all
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(msgpack.packb([0, i, "ping", []]))
        wait_until(lambda: "pausing new connections" in d.log(),
                   scaled(10), what="accept to pause on EMFILE")

        def answered(s, timeout):
            s.settimeout(timeout)
            try:
                return msgpack.unpackb(s.recv(64)) is not None
            except (socket.timeout, BlockingIOError):
                return False
        served = [s for s in socks if answered(s, 0.3)]
        waiting = [s for s in socks if s not in served]
        assert 10 < len(served) < 48 and waiting, len(served)
        assert d.proc.poll() is None, d.log()
        for s in served:
            s.close()
        # freed descriptors: the waiting clients are taken in and served
        for s in waiting:
            assert answered(s, scaled(10)), "a waiting client was never served"
    finally:
        for s in socks:
            s.close()
    with d.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(d)


def test_huge_declared_string_refused_after_header(schema, convd_factory):
    d = make(convd_factory, schema,
             extra={"server": {"max_request_bytes": 4096,
                               "max_content_bytes": 1024}})
    with Raw(d.socket) as r:
        head = (b"\x94\x00\x01\xabadd_message\x94" +
                msgpack.packb("u") + msgpack.packb("anthropic") +
                msgpack.packb("user") + b"\xdb" + struct.pack(">I", 1 << 30))
        t0 = time.monotonic()
        r.send(head)                # the body never follows
        msgs = r.read_until_closed()
        took = time.monotonic() - t0
        assert took < scaled(1.0), took
        assert [err_code(m) for m in msgs] == ["invalid_request"], msgs
        assert msgs[0][1] is None
    with d.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(d)


def nested(depth):
    v = []
    for _ in range(depth - 1):
        v = [v]
    return v


STRUCTURES = [
    # the envelope is one level: params nested k deep make k + 1
    # issue 17: only a frame nested beyond 1024 closes the connection
    # (test_protocol.py, test_content_limits.py); more values than the
    # decoder keeps as nodes are invalid_params
    ("depth 67", nested(66), False),
    ("depth 68", nested(67), False),
    ("array 500", list(range(500)), False),
    ("values 600", list(range(600)), False),
    ("map 250", [{f"k{i}": i for i in range(250)}], False),
    ("map 300", [{f"k{i}": i for i in range(300)}], False),
]


@pytest.mark.parametrize("name,params,closes", STRUCTURES,
                         ids=[s[0].replace(" ", "-") for s in STRUCTURES])
def test_structure_limits(convd, name, params, closes):
    with Raw(convd.socket) as r:
        r.send_obj([0, 7, "get_thread", params])
        if closes:
            msgs = r.read_until_closed()
            assert [err_code(m) for m in msgs] == ["invalid_request"], msgs
        else:
            m = r.recv()
            assert m[1] == 7 and err_code(m) == "invalid_params", m
            r.send_obj([0, 8, "ping", []])
            assert r.recv() == [1, 8, None, "pong"]


def test_backpressure_slow_reader_disconnected(schema, convd_factory):
    d = make(convd_factory, schema,
             extra={"server": {"max_output_bytes": "64K",
                               "max_request_bytes": "16K",
                               "max_content_bytes": "8K"}})
    n = 10000
    flood = Raw(d.socket, rcvbuf=4096, timeout=30)
    sent = {"n": 0, "exc": None}

    def send_all():
        try:
            req = msgpack.packb([0, 1, "stats", []])
            batch = req * 100
            for _ in range(n // 100):
                flood.send(batch)
                sent["n"] += 100
        except OSError as e:
            sent["exc"] = e

    lat = []
    t = threading.Thread(target=send_all, daemon=True)
    with d.client(timeout=scaled(5)) as other:
        t.start()
        while t.is_alive() or len(lat) < 20:
            t0 = time.monotonic()
            assert other.call("ping") == "pong"
            lat.append(time.monotonic() - t0)
            if len(lat) > 2000:
                break
        t.join(scaled(30))
        assert not t.is_alive()
        assert max(lat) < scaled(0.5), f"ping took {max(lat):.3f}s"
        wait_until(lambda: "max_output_bytes" in d.log(), scaled(10),
                   what="the slow reader to be disconnected")
        st = other.call("stats")
        assert st["clients"]["closed_on_error"] >= 1, st
        assert st["clients"]["connected"] == 1, st
    # it got what fit in the buffers, then the end of the connection
    got = flood.read_until_closed()
    flood.close()
    assert len(got) < n, len(got)
    with d.client() as c:
        assert c.call("ping") == "pong"
    stop_ok(d)


def test_result_larger_than_max_output_refused(schema, convd_factory):
    """A single answer may not be larger than max_output_bytes: an
    export_history page (or history) of 6 messages of 30 KB against a
    64 KB limit gets result_too_large, nothing of it is sent, and the
    connection goes on.  Regression: the whole result was packed in
    memory first, whatever its size, queued, and then the client was
    disconnected for the size of its output."""
    d = make(convd_factory, schema,
             extra={"server": {"max_output_bytes": "64K",
                               "max_request_bytes": "64K",
                               "max_content_bytes": "32K"}})
    user = uid("big")
    with d.client(timeout=scaled(10)) as c:
        for i in range(6):
            c.call("add_message", user, "anthropic", "user",
                   chr(ord("a") + i) * 30000)
        with pytest.raises(RpcError) as e:
            c.call("get_recent_conversations", user, "anthropic", 10)
        assert e.value.code == "result_too_large", e.value
        assert "max_output_bytes" in e.value.message, e.value
        # export pages are bounded by bytes instead (issue 14): fewer rows
        assert len(c.call("export_history", user)) == 2
        # the same connection goes on; a smaller page fits
        assert c.call("ping") == "pong"
        page = c.call("export_history", {"user_id": user, "limit": 2})
        assert [len(m["content"]) for m in page] == [30000, 30000]
        st = c.call("stats")
        assert st["clients"]["closed_on_error"] == 0, st
        errs = st["methods"]["get_recent_conversations"]["errors"]
        assert errs.get("result_too_large") == 1, errs
        assert not st["methods"]["export_history"]["errors"], st
    stop_ok(d)


def test_max_inflight_stops_reading(schema, convd_factory):
    d = make(convd_factory, schema, extra={"server": {"max_inflight": 2}})
    user = uid("inflight")
    add = [user, "anthropic", "user", "held"]
    with TableLock(schema, HIST, mode="EXCLUSIVE") as lock, \
            Raw(d.socket) as a, d.client(timeout=scaled(5)) as b:
        a.send(b"".join(msgpack.packb(m) for m in (
            [0, 1, "add_message", add], [0, 2, "add_message", add],
            [0, 3, "ping", []], [0, 4, "ping", []])))
        # a has 2 in flight: its pings are not even read
        assert a.is_open_after(1.0), "an answer came while adds were held"
        for _ in range(5):
            assert b.call("ping") == "pong"
        # b was answered while a's adds are held: a's two adds, and this
        # stats request itself, are still in flight
        assert b.call("stats")["clients"]["requests_in_flight"] == 3
        lock.release()
        msgs = [a.recv() for _ in range(4)]
    assert all(m[2] is None for m in msgs), msgs
    assert msgs[0][1] in (1, 2), msgs       # an add finished first
    assert sorted(m[1] for m in msgs) == [1, 2, 3, 4]
    assert schema.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                       f"'{user}'") == "2"
    stop_ok(d)


def test_idle_timeout(schema, convd_factory):
    d = make(convd_factory, schema, extra={"server": {"idle_timeout": 1}})
    with Raw(d.socket, timeout=10) as r:
        t0 = time.monotonic()
        assert r.read_until_closed() == []
        took = time.monotonic() - t0
    assert 0.9 <= took <= scaled(2.5), took
    # activity keeps a connection open
    with d.client() as c:
        for _ in range(4):
            assert c.call("ping") == "pong"
            time.sleep(0.5)
    stop_ok(d)


def test_idle_timeout_off_by_default(convd):
    with Raw(convd.socket) as r:
        assert r.is_open_after(2.5)
        r.send_obj([0, 1, "ping", []])
        assert r.recv() == [1, 1, None, "pong"]


# ------------------------------------------------------ bad input barrage

# The parameter table of include/validate.h / src/validate.c.
ID, NAME, ROLE, CONTENT, INT = "id", "name", "role", "content", "int"
METHODS = {
    "ping": [],
    "add_message": [("user_id", ID, True), ("provider", NAME, True),
                    ("role", ROLE, True), ("content", CONTENT, True),
                    ("platform", NAME, False)],
    "get_recent_conversations": [("user_id", ID, True),
                                 ("provider", NAME, True),
                                 ("limit", INT, False),
                                 ("platform", NAME, False)],
    "clear_user_history": [("user_id", ID, True), ("provider", NAME, True),
                           ("platform", NAME, False)],
    "get_conversation_count": [("user_id", ID, True),
                               ("provider", NAME, False),
                               ("platform", NAME, False)],
    "get_user_statistics": [("user_id", ID, True), ("platform", NAME, False)],
    "get_thread": [("user_id", ID, True), ("platform", NAME, False)],
    "save_thread": [("user_id", ID, True), ("thread_id", ID, True),
                    ("platform", NAME, False)],
    "delete_thread": [("user_id", ID, True), ("platform", NAME, False)],
    "cleanup_old_conversations": [("days_to_keep", INT, False)],
    "stats": [],
    "health": [],
}
INT_RANGE = {"limit": (1, 1000), "days_to_keep": (0, 36500)}
MAX_CONTENT = 1000
VALID = {ID: "bar-user", NAME: "anthropic", ROLE: "user", CONTENT: "hi"}


def bad_values(name, kind):
    """(label, value) pairs that must give invalid_params for a
    parameter."""
    wrong_types = [("int", 5), ("float", 1.5), ("bool", True),
                   ("bin", b"abc"), ("array", ["a"]), ("map", {"a": 1}),
                   ("ext", msgpack.ExtType(5, b"abc"))]
    if kind == INT:
        lo, hi = INT_RANGE[name]
        return [("below", lo - 1), ("above", hi + 1), ("-1", -1),
                ("2^63", 2 ** 63), ("-2^63", -2 ** 63),
                ("2^64-1", 2 ** 64 - 1), ("2^32", 2 ** 32),
                ("float", 10.0), ("string", "10"), ("bool", True),
                ("empty string", ""), ("array", [10]), ("bin", b"1"),
                ("nil-like string", "nil")]
    maxlen = {ID: 255, NAME: 50, CONTENT: MAX_CONTENT, ROLE: 9}[kind]
    if kind == CONTENT:     # issue 17: an array or a map is content too
        # (pack() sends the ExtType, a tuple, as an array)
        wrong_types = [w for w in wrong_types
                       if w[0] not in ("array", "map", "ext")]
    vals = wrong_types + [
        ("empty", ""), ("too long", "a" * (maxlen + 1)),
        ("too long utf8", "\u00e9" * (maxlen // 2 + 1)),
        ("invalid utf8", RawStr(b"ab\xff\xfe")),
        ("overlong utf8", RawStr(b"\xc0\xaf")),
        ("surrogate", RawStr(b"\xed\xa0\x80")),
        ("truncated utf8", RawStr(b"ab\xe2\x82")),
        ("beyond U+10FFFF", RawStr(b"\xf4\x90\x80\x80")),
        ("NUL", "a\x00b"), ("only NUL", "\x00"),
        ("2^63", 2 ** 63), ("-2^63", -2 ** 63), ("2^64-1", 2 ** 64 - 1)]
    if kind == ROLE:
        vals += [("unknown role", "admin"), ("case", "User"),
                 ("padded", "user "), ("role+NUL", "user\x00")]
    return vals


def param_cases():
    """(method, params, label, param name) that must give invalid_params."""
    cases = []
    for method, spec in METHODS.items():
        base = {n: VALID[k] for n, k, req in spec if req}
        if not spec:
            cases.append((method, [1], "extra positional", None))
            cases.append((method, [{"foo": 1}], "unknown named", "foo"))
            continue
        for name, kind, req in spec:
            for label, v in bad_values(name, kind):
                p = dict(base)
                p[name] = v
                cases.append((method, [p], f"{name} {label}", name))
            if req:
                p = dict(base)
                p[name] = None          # nil counts as absent
                cases.append((method, [p], f"{name} nil", name))
                p = dict(base)
                del p[name]
                cases.append((method, [p], f"{name} missing", name))
        # positional: one bad value in the right place
        pos = [VALID.get(k, 5) if k != INT else INT_RANGE[n][0]
               for n, k, _ in spec]
        name, kind, _ = spec[0]
        pos[0] = "" if kind != INT else -1
        cases.append((method, pos, f"{name} positional empty", name))
        cases.append((method, pos[:1] * (len(spec) + 1),
                      "too many positional", None))
        p = dict(base)
        p["no_such_param"] = "x"
        cases.append((method, [p], "unknown named", "no_such_param"))
        cases.append((method, [dict(base), dict(base)], "two maps", None))
        cases.append((method, [{1: "x"}], "non-string key", None))
    return cases


def envelope_cases():
    """(obj, msgid expected in the error or None)."""
    return [
        ([0, 11, 123, []], 11), ([0, 12, "ping"], 12),
        ([0, 13, "ping", [], "extra"], 13), ([0, 14, "ping", "x"], 14),
        ([0, 15, "ping", 5], 15), ([0, 16, "", []], 16),
        ([0, 17, RawStr(b"pi\xffng"), []], 17), ([0, 18, "pi\x00ng", []], 18),
        ([0, 19, None, []], 19),
        # an unknown type with a request's shape keeps its msgid; a
        # response sent to convd is never answered (test_rpc_spec.py)
        ([3, 21, "ping", []], 21), (["0", 22, "ping", []], 22),
        ([-1, 23, "ping", []], 23), ([None, 24, "ping", []], 24),
        (42, None), ("hello", None), ({"a": 1}, None), ([], None),
        (None, None), (1.5, None), (True, None), ([0], None),
        # msgid of the wrong type or out of range
        ([0, -1, "ping", []], None), ([0, 2 ** 32, "ping", []], None),
        ([0, 2 ** 64 - 1, "ping", []], None), ([0, 1.0, "ping", []], None),
        ([0, "1", "ping", []], None), ([0, None, "ping", []], None),
        ([0, True, "ping", []], None), ([0, [1], "ping", []], None),
        ([0, -2 ** 63, "ping", []], None),
    ]


def closing_cases(rng):
    """(label, bytes, half_close): convd must close these connections."""
    req = msgpack.packb([0, 1, "add_message",
                         ["u", "anthropic", "user", "some content"]])
    cases = [("0xc1", b"\xc1", False),
             ("0xc1 after a good request", req + b"\xc1", False)]
    for cut in (1, 2, 5, len(req) // 2, len(req) - 1):
        cases.append((f"truncated at {cut}", req[:cut], True))
    for name, hdr in (("str32", b"\xdb"), ("bin32", b"\xc6"),
                      ("array32", b"\xdd"), ("map32", b"\xdf")):
        cases.append((f"huge {name}", hdr + b"\xff\xff\xff\xff", False))
        cases.append((f"huge {name} in params",
                      b"\x94\x00\x01\xa4ping\x91" + hdr + b"\xff\xff\xff\xff",
                      False))
    cases.append(("huge ext32", b"\xc9\xff\xff\xff\xff\x01", False))
    cases.append(("huge str16 over limit", b"\xda\xff\xff", False))
    cases.append(("deep nesting", b"\x91" * 1100, False))
    cases.append(("deep maps", b"\x81\xa1k" * 1100, False))  # > 1024 deep
    for i in range(20):
        n = rng.randint(1, 300)
        cases.append((f"random {i}", bytes(rng.getrandbits(8)
                                           for _ in range(n)), True))
    return cases


class GoodClient(threading.Thread):
    """add_message then get_recent_conversations, in a loop, checked."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.user = uid("good")
        self.stop = threading.Event()
        self.rounds = 0
        self.errors = []

    def run(self):
        try:
            with Client(self.path, timeout=scaled(10)) as c:
                while not self.stop.is_set():
                    text = f"good {self.rounds} \u00e9\U0001f600"
                    c.call("add_message", user_id=self.user,
                           provider="anthropic", role="user", content=text)
                    got = c.call("get_recent_conversations",
                                 user_id=self.user, provider="anthropic",
                                 limit=1)
                    if got[-1]["content"] != text:
                        self.errors.append(("mismatch", got, text))
                    self.rounds += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))


def test_bad_input_barrage(schema, convd_factory):
    d = make(convd_factory, schema,
             extra={"server": {"max_content_bytes": MAX_CONTENT,
                               "max_request_bytes": "64K"}})
    rng = random.Random(20261124)
    good = GoodClient(d.socket)
    good.start()
    got_invalid_request = 0
    want_invalid_params = {}
    unknown = 0
    try:
        wait_until(lambda: good.rounds >= 3 or good.errors, scaled(10),
                   what="the good client to run")
        with Raw(d.socket) as r:
            # 1. broken envelopes and msgids: one connection, all answered
            for obj, msgid in envelope_cases():
                r.send(pack(obj))
                m = r.recv()
                assert err_code(m) == "invalid_request", (obj, m)
                assert m[1] == msgid, (obj, m)
                got_invalid_request += 1
            r.send_obj([0, 2 ** 32 - 1, "ping", []])
            assert r.recv() == [1, 2 ** 32 - 1, None, "pong"]

            # 2. unknown methods and notifications
            for name in ("nope", "PING", "ping ", "add_message2", "x" * 300,
                         "\u00e9t\u00e9", "ping\x01", "__proto__"):
                unknown += 1
                r.send_obj([0, 100 + unknown, name, []])
                m = r.recv()
                assert m[1] == 100 + unknown and \
                    err_code(m) == "no_such_method", (name, m)
            for name in ("nope", "ping", "add_message", "stats"):
                r.send_obj([2, name, []])
                r.send_obj([2, name, ["garbage", 1, None]])
            r.send_obj([0, 999, "ping", []])
            assert r.recv() == [1, 999, None, "pong"], \
                "a notification was answered"

            # 3. every parameter of every method, wrongly
            cases = param_cases()
            assert len(cases) > 300
            for i, (method, params, label, pname) in enumerate(cases):
                r.send(pack([0, 1000 + i, method, params]))
                m = r.recv()
                assert m is not None and m[1] == 1000 + i, (method, label, m)
                assert m[2] is not None and \
                    m[2]["code"] == "invalid_params", (method, label, m)
                if pname:
                    assert pname in m[2]["message"], (method, label, m)
                want_invalid_params[method] = \
                    want_invalid_params.get(method, 0) + 1
            r.send_obj([0, 5, "ping", []])
            assert r.recv() == [1, 5, None, "pong"]

        # 4. what cannot be resynchronised: that connection is closed
        closing = closing_cases(rng)
        for label, data, half_close in closing:
            with Raw(d.socket) as r:
                r.send(data)
                if half_close:
                    r.sock.shutdown(socket.SHUT_WR)
                try:
                    msgs = r.read_until_closed()
                except socket.timeout:
                    pytest.fail(f"{label}: convd neither answered nor "
                                f"closed the connection")
            if label.startswith("0xc1 after"):
                # the good request is answered, the bad byte refused
                ok = [m for m in msgs if m[1] == 1 and m[2] is None]
                bad = [m for m in msgs if m not in ok]
                assert len(ok) == 1 and len(bad) == 1, (label, msgs)
                assert err_code(bad[0]) == "invalid_request", msgs
                assert bad[0][1] is None, msgs
                continue
            codes = [err_code(m) for m in msgs]
            if label.startswith("random"):
                assert set(codes) <= {"invalid_request", "no_such_method",
                                      "invalid_params"}, (label, msgs)
            elif label.startswith("truncated"):
                assert codes == [], (label, msgs)
            else:
                assert codes == ["invalid_request"], (label, msgs)
                assert msgs[0][1] is None, (label, msgs)
            got_invalid_request += codes.count("invalid_request")
            assert d.proc.poll() is None, f"convd died on {label}"
        # the good client's one connection still serves it (a count of
        # rounds, not a rate: how many fit in the barrage is up to the
        # machine)
        after = good.rounds
        wait_until(lambda: good.rounds >= after + 2 or good.errors,
                   scaled(10), what="the good client to go on")
    finally:
        good.stop.set()
        good.join(scaled(20))
    assert not good.errors, good.errors
    assert good.rounds >= 5, good.rounds

    # convd is alive and its counters add up
    assert d.proc.poll() is None
    with d.client() as c:
        assert c.call("ping") == "pong"
        wait_until(lambda: c.call("stats")["clients"]["connected"] == 1,
                   scaled(5), what="the barrage connections to be gone")
        st = c.call("stats")
    # in flight: only this stats request itself
    assert st["clients"]["requests_in_flight"] == 1, st
    assert st["pool"]["waiting"] == 0 and st["pool"]["busy"] == 0, st
    for method, n in want_invalid_params.items():
        errs = st["methods"].get(method, {}).get("errors", {})
        assert errs.get("invalid_params") == n, (method, n, st["methods"])
    pe = st["protocol_errors"]
    assert pe.get("no_such_method") == unknown, pe
    assert pe.get("invalid_request", 0) >= got_invalid_request, pe
    assert st["methods"]["add_message"]["requests"] >= good.rounds
    assert st["clients"]["closed_on_error"] >= \
        len([c for c in closing if not c[2]]), st["clients"]
    stop_ok(d)


# -------------------------------------------------------------- kill -9

def test_kill_9_during_writes(schema, convd_factory):
    d = make(convd_factory, schema,
             extra={"pool": {"size": 4, "max_overflow": 0}})
    tag = uuid.uuid4().hex[:8]
    writers = [PipelinedWriter(d.socket, f"k9-{tag}-{i}") for i in range(4)]
    for w in writers:
        w.start()
        assert w.go.wait(scaled(10))
    wait_until(lambda: all(len(w.acked) >= 25 for w in writers), scaled(20),
               what="every writer to get 25 acknowledgements")
    d.proc.kill()
    d.proc.wait()
    for w in writers:
        w.join(scaled(10))
        assert not w.is_alive() and w.exc is None, (w.user, w.exc)
        assert w.end in ("eof", "reset"), (w.user, w.end)
    assert stat.S_ISSOCK(os.lstat(d.socket).st_mode)
    # every acknowledged message is stored, with its content
    assert_acked_stored(schema, writers)
    # a restarted convd replaces the stale socket and serves at once
    t0 = time.monotonic()
    d.start()
    assert time.monotonic() - t0 < scaled(5)
    with d.client() as c:
        for w in writers:
            n = c.call("get_conversation_count", user_id=w.user)
            assert n >= len(w.acked), (n, len(w.acked))
        c.call("add_message", user_id=writers[0].user, provider="anthropic",
               role="user", content="after restart")
    stop_ok(d)
