"""Test harness for convd's integration tests.

Everything here is real: a throwaway PostgreSQL cluster made with initdb and
pg_ctl (Unix socket in a temp dir, no TCP), the real convd binary, the real
convctl binary, and a plain MessagePack-RPC client over the Unix socket.

PostgreSQL refuses to run as root, so when the tests run as root the
cluster belongs to the unprivileged user `postgres` (runuser).
"""

import glob
import http.client
import json
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import msgpack

BUILDDIR = os.environ.get("CONVD_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("CONVD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CONVD = os.path.join(BUILDDIR, "convd")
CONVCTL = os.path.join(BUILDDIR, "convctl")
MIGRATIONS = os.path.join(SRCDIR, "migrations")
# A command that convd runs under, e.g. CONVD_WRAPPER="valgrind
# --error-exitcode=99" (scripts/sanitize.sh): Convd.start() puts it in front
# of the convd binary.  Under a slow wrapper every time limit of the tests
# is multiplied by TIME_FACTOR (CONVD_TIME_FACTOR, default 10 with a
# wrapper, else 1): use scaled() for the time limits a test asserts.
WRAPPER = shlex.split(os.environ.get("CONVD_WRAPPER", ""))
TIME_FACTOR = float(os.environ.get("CONVD_TIME_FACTOR") or
                    (10 if WRAPPER else 1))


def scaled(seconds):
    """A time limit in seconds, stretched under a slow CONVD_WRAPPER."""
    return seconds * TIME_FACTOR


def pg_bindir():
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if cands:
        return os.path.dirname(cands[-1])
    path = shutil.which("pg_ctl")
    if path:
        return os.path.dirname(path)
    raise RuntimeError("PostgreSQL server binaries (pg_ctl) not found")


class PgCluster:
    """A private PostgreSQL cluster; start() / stop() / destroy()."""

    def __init__(self, base=None, name="pg", port=5432):
        self.bindir = pg_bindir()
        # A cluster made inside another one's temp dir (base given, e.g. a
        # standby) removes only its own files in destroy().
        self.shared_base = base is not None
        self.tmp = base or tempfile.mkdtemp(prefix="convd-test-")
        os.chmod(self.tmp, 0o755)
        self.datadir = os.path.join(self.tmp, name)
        self.sockdir = os.path.join(self.tmp, name + "-sock")
        self.logfile = os.path.join(self.tmp, name + ".log")
        self.port = port
        self.user = "postgres"
        self.dbname = "convd"
        self.as_user = None
        if os.geteuid() == 0:
            self.as_user = "postgres"
            pw = pwd.getpwnam(self.as_user)
        os.makedirs(self.sockdir, exist_ok=True)
        if self.as_user:
            os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
            open(self.logfile, "a").close()
            os.chown(self.logfile, pw.pw_uid, pw.pw_gid)

    def _run(self, argv, check=True, **kw):
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--"] + argv
        return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **kw)

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def initdb(self, extra_conf=""):
        if self.as_user:
            pw = pwd.getpwnam(self.as_user)
            os.makedirs(self.datadir, exist_ok=True)
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
        self._run([self.bin("initdb"), "-D", self.datadir, "-U", self.user,
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = (
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{self.sockdir}'\n"
            f"port = {self.port}\n"
            "fsync = off\n"
            "synchronous_commit = on\n"
            "full_page_writes = off\n"
            "max_connections = 200\n"
            "log_min_messages = warning\n"
            + extra_conf)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(conf)
        return self

    def start(self):
        self._run([self.bin("pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", "60", "start"])
        return self

    def stop(self, mode="fast"):
        self._run([self.bin("pg_ctl"), "-D", self.datadir, "-m", mode, "-w",
                   "stop"], check=False)

    def restart(self):
        self.stop()
        self.start()

    def reload(self):
        """pg_ctl reload (re-reads postgresql.conf and pg_hba.conf)."""
        self._run([self.bin("pg_ctl"), "-D", self.datadir, "reload"])

    def hba_prepend(self, line):
        """Puts line first in pg_hba.conf (first match wins) and reloads."""
        path = os.path.join(self.datadir, "pg_hba.conf")
        with open(path) as f:
            old = f.read()
        with open(path, "w") as f:
            f.write(line.rstrip("\n") + "\n" + old)
        self.reload()

    def is_running(self):
        r = self._run([self.bin("pg_ctl"), "-D", self.datadir, "status"],
                      check=False)
        return r.returncode == 0

    def destroy(self):
        self.stop("immediate")
        if self.shared_base:
            for path in (self.datadir, self.sockdir):
                shutil.rmtree(path, ignore_errors=True)
            try:
                os.unlink(self.logfile)
            except OSError:
                pass
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def postmaster_pid(self):
        """The pid of the running postmaster (first line of postmaster.pid)."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def promote(self):
        """pg_ctl promote: a standby becomes a primary (waits for it)."""
        self._run([self.bin("pg_ctl"), "-D", self.datadir, "-w", "-t", "60",
                   "promote"])

    def make_standby(self, name="standby", port=None):
        """A streaming standby of this running cluster, not started yet:
        pg_basebackup -R into a new cluster in the same temp dir, with its
        own socket directory and port (default: ours + 1).  initdb
        --auth=trust already allows local replication connections."""
        sb = PgCluster(base=self.tmp, name=name,
                       port=port or self.port + 1)
        os.makedirs(sb.datadir, mode=0o700, exist_ok=True)
        os.chmod(sb.datadir, 0o700)
        if sb.as_user:
            pw = pwd.getpwnam(sb.as_user)
            os.chown(sb.datadir, pw.pw_uid, pw.pw_gid)
        self._run([self.bin("pg_basebackup"), "-h", self.sockdir, "-p",
                   str(self.port), "-U", self.user, "-D", sb.datadir, "-R",
                   "-X", "stream", "-c", "fast", "--no-sync"])
        # The copied postgresql.conf names our socket dir and port: the
        # last setting of a name wins.
        with open(os.path.join(sb.datadir, "postgresql.conf"), "a") as f:
            f.write(f"\nunix_socket_directories = '{sb.sockdir}'\n"
                    f"port = {sb.port}\n")
        return sb

    def background_psql(self, sql, appname, db=None):
        """Runs sql in a psql session in the background (e.g. a lock held
        with pg_sleep) with application_name appname; returns the Popen.
        End it with terminate_app(appname), then wait() on it."""
        return subprocess.Popen(
            [self.bin("psql"), "-h", self.sockdir, "-p", str(self.port),
             "-U", self.user, "-d", db or self.dbname, "-X", "-q", "-c", sql],
            env=dict(os.environ, PGAPPNAME=appname),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def terminate_app(self, appname):
        """pg_terminate_backend() on every session named appname; returns
        how many there were."""
        out = self.psql("SELECT count(pg_terminate_backend(pid)) FROM "
                        "pg_stat_activity WHERE application_name = "
                        + sql_literal(appname), db="postgres")
        return int(out)

    def backend_pids(self, appname):
        """Pids of the client backends whose application_name is appname."""
        out = self.psql("SELECT pid FROM pg_stat_activity WHERE "
                        "backend_type = 'client backend' AND "
                        "application_name = " + sql_literal(appname),
                        db="postgres")
        return {int(x) for x in out.split()}

    def psql(self, sql, db=None, check=True):
        """Runs SQL with psql; returns stdout (unaligned, tuples only)."""
        r = subprocess.run(
            [self.bin("psql"), "-h", self.sockdir, "-p", str(self.port),
             "-U", self.user, "-d", db or self.dbname, "-X", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def createdb(self, name=None):
        self.psql(f'CREATE DATABASE "{name or self.dbname}"', db="postgres")

    def dropdb(self, name=None):
        self.psql(f'DROP DATABASE IF EXISTS "{name or self.dbname}" WITH (FORCE)',
                  db="postgres")

    def env(self):
        """Environment for libpq programs (convd, convctl) reaching us."""
        return {"PGHOST": self.sockdir, "PGPORT": str(self.port),
                "PGUSER": self.user, "PGDATABASE": self.dbname}

    def url(self, db=None):
        return (f"postgresql://{self.user}@/{db or self.dbname}"
                f"?host={self.sockdir}&port={self.port}")


def own_allocator():
    """False when malloc is not glibc's: convd under valgrind, or built
    with AddressSanitizer (both bring their own allocator, and RSS figures
    mean nothing then)."""
    if WRAPPER:
        return False
    with open(CONVD, "rb") as f:
        return b"__asan_init" not in f.read()


def sql_literal(s):
    """An SQL string literal, for test data only."""
    return "'" + str(s).replace("'", "''") + "'"


def uid(tag="u"):
    """A fresh id for test data (a user id, ...): TAG-<16 hex digits>."""
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def write_config(path, sections):
    """sections: {"database": {"host": ...}, ...} -> an INI file."""
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write(f"[{sec}]\n")
            for k, v in kv.items():
                if isinstance(v, bool):
                    v = "yes" if v else "no"
                f.write(f"{k} = {v}\n")
            f.write("\n")
    return path



def sample_options():
    """(section, key) pairs of etc/convd.conf, commented out or not."""
    path = os.path.join(SRCDIR, "etc", "convd.conf")
    opts = []
    section = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*\[(\w+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^[#;]?\s*(\w+)\s*=", line)
            if m and section:
                opts.append((section, m.group(1)))
    return opts

class Convd:
    """A running convd process on a private socket."""

    def __init__(self, pg, tmp=None, extra=None, env=None):
        self.pg = pg
        self.tmp = tmp or tempfile.mkdtemp(prefix="convd-d-")
        self.socket = os.path.join(self.tmp, "convd.sock")
        self.logpath = os.path.join(self.tmp, "convd.log")
        sections = {
            "database": {"host": pg.sockdir, "port": pg.port,
                         "name": pg.dbname, "user": pg.user},
            "pool": {"size": 4, "min_size": 4, "max_overflow": 4,
                     "timeout": 5},
            "server": {"socket": self.socket, "socket_mode": "0600"},
            "log": {"level": "info"},
            "migrations": {"directory": MIGRATIONS},
        }
        if WRAPPER:
            # convd's own waits stretch like the tests' time limits (its
            # defaults otherwise: a pool wait of 5 s, shutdown_timeout 10,
            # connect_timeout 10).  Under valgrind on a busy machine the
            # pool's first connections (a SCRAM proof each, computed in
            # the loop) took over 10 s: every one timed out and requests
            # were answered `unavailable` (test_daemon's
            # test_password_from_db_password).  A request's deadline
            # (request_timeout, 30 s) too: test_faults'
            # test_large_results_checked_while_read (16 reads of 10 MiB on
            # 8 connections) got `timeout` under valgrind.
            sections["pool"]["timeout"] = int(scaled(5))
            sections["server"]["request_timeout"] = int(scaled(30000))
            sections["server"]["shutdown_timeout"] = int(scaled(10))
            sections["database"]["connect_timeout"] = int(scaled(10))
        for sec, kv in (extra or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.config = write_config(os.path.join(self.tmp, "convd.conf"),
                                   sections)
        self.env = dict(os.environ)
        for k in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
                  "DB_PASSWORD", "JOURNAL_STREAM", "NOTIFY_SOCKET",
                  "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.proc = None

    def start(self, wait=True, args=(), prefix=()):
        """prefix: a command convd runs under (e.g. systemd-socket-activate
        -l PATH); CONVD_WRAPPER comes after it, just before convd."""
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(list(prefix) + WRAPPER +
                                     [CONVD, "-c", self.config] + list(args),
                                     stdout=self.logf, stderr=self.logf,
                                     env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.time() + scaled(timeout)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"convd exited with {self.proc.returncode}:\n"
                                   + self.log())
            try:
                with Client(self.socket, timeout=2) as c:
                    if c.call("ping") == "pong":
                        return
            except (OSError, RpcError):
                pass
            time.sleep(0.05)
        raise RuntimeError("convd did not become ready:\n" + self.log())

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def sanitizer_report(self):
        """The AddressSanitizer / UBSan report in the log, or None (for
        builds made with ./configure --enable-sanitizers)."""
        log = self.log()
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:"):
            i = log.find(mark)
            if i >= 0:
                return log[max(0, i - 200):i + 3000]
        return None

    def wait_exit(self, timeout=20):
        """Waits for the process to end; returns its exit status."""
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.returncode is not None and not self.logf.closed:
                self.logf.close()

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self.logf.closed:
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def convctl(self, *args, input=None, env=None, check=False):
        return convctl(*args, socket_path=self.socket, input=input,
                       env=env, check=check)

    def client(self, **kw):
        return Client(self.socket, **kw)


def convctl(*args, socket_path=None, input=None, env=None, check=False,
            config=None):
    argv = [CONVCTL]
    if socket_path:
        argv += ["-s", socket_path]
    if config:
        argv += ["-c", config]
    argv += list(args)
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=scaled(60),
                       text=isinstance(input, str) or input is None)
    if check and r.returncode != 0:
        raise RuntimeError(f"convctl {args} failed ({r.returncode}): "
                           f"{r.stdout}{r.stderr}")
    return r


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def ext_hook(code, data):
    if code == -1:
        return msgpack.Timestamp.from_bytes(data)
    return msgpack.ExtType(code, data)


class Client:
    """A minimal blocking MessagePack-RPC client (no convd code in it)."""

    def __init__(self, path, timeout=None):
        """timeout: seconds an answer may take (default 10, scaled)."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(10.0) if timeout is None else timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False, ext_hook=ext_hook,
                                         timestamp=0)
        self.msgid = 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, method, *params, msgid=None):
        if msgid is None:
            self.msgid += 1
            msgid = self.msgid
        self.sock.sendall(msgpack.packb([0, msgid, method, list(params)],
                                        use_bin_type=True))
        return msgid

    def recv(self):
        """Next message from the socket; None on EOF."""
        for obj in self.unpacker:
            return obj
        while True:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.unpacker.feed(data)
            for obj in self.unpacker:
                return obj

    def call(self, method, *params, **named):
        if named:
            params = (named,)
        msgid = self.request(method, *params)
        resp = self.recv()
        if resp is None:
            raise OSError("connection closed by convd")
        assert resp[0] == 1 and resp[1] == msgid, resp
        if resp[2] is not None:
            raise RpcError(resp[2]["code"], resp[2]["message"])
        return resp[3]


class Raw:
    """A raw connection to convd's socket speaking plain msgpack (no client
    code, no framing help): send bytes or objects, read whole messages, see
    the end of the connection.  timeout (scaled) bounds each wait for a
    message; raw=True leaves str as bytes; rcvbuf sets SO_RCVBUF (a small
    one fills up soon: backpressure tests)."""

    def __init__(self, path, timeout=10.0, raw=False, rcvbuf=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.timeout = scaled(timeout)
        self.sock.settimeout(self.timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=raw, timestamp=0,
                                         strict_map_key=False)
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_obj(self, obj):
        self.send(msgpack.packb(obj, use_bin_type=True))

    def req(self, msgid, method, params=()):
        self.send(msgpack.packb([0, msgid, method, list(params)]))

    def recv(self, timeout=None):
        """The next message; None on EOF (or a reset); socket.timeout if
        none comes within timeout (seconds, not scaled; default: the
        connection's)."""
        for obj in self.unpacker:
            return obj
        if self.eof:
            return None
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    self.eof = True
                    return None
                self.unpacker.feed(data)
                for obj in self.unpacker:
                    return obj
        finally:
            self.sock.settimeout(self.timeout)

    def recv_n(self, n, timeout=None):
        out = []
        for _ in range(n):
            m = self.recv(timeout)
            assert m is not None, f"EOF after {len(out)} of {n} responses"
            out.append(m)
        return out

    def read_until_closed(self):
        """Every message until convd closes the connection; socket.timeout
        if a wait for the next one takes longer than the connection's
        timeout."""
        msgs = []
        while True:
            m = self.recv()
            if m is None:
                return msgs
            msgs.append(m)

    def until_eof(self, timeout):
        """Messages received before EOF, which must come within timeout
        (scaled): an AssertionError otherwise."""
        timeout = scaled(timeout)
        msgs = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"connection not closed within {timeout}s " \
                             f"(got {msgs!r})"
            try:
                m = self.recv(timeout=left)
            except socket.timeout:
                raise AssertionError(f"connection not closed within "
                                     f"{timeout}s (got {msgs!r})")
            if m is None:
                return msgs
            msgs.append(m)

    def nothing_within(self, seconds):
        """True if no message (and no EOF) arrives within seconds; an
        AssertionError otherwise (the message is consumed)."""
        try:
            m = self.recv(timeout=seconds)
        except socket.timeout:
            return True
        raise AssertionError(f"unexpected message or EOF: {m!r}")

    def is_open_after(self, seconds):
        """True if nothing arrives and the connection stays open for
        seconds; False otherwise (nothing is consumed)."""
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        return False

    def ping(self, msgid=4242):
        self.req(msgid, "ping")
        m = self.recv()
        assert m == [1, msgid, None, "pong"], m



def pinged_client(path, timeout=5.0):
    """A Client on path that convd has answered a ping on (closed again
    if not): for wait_until, to take a slot once convd has one free."""
    c = Client(path, timeout=scaled(timeout))
    try:
        assert c.call("ping") == "pong"
    except BaseException:
        c.close()
        raise
    return c

def layout_args():
    """`convctl db setup`'s layout for the fixtures: CONVD_TEST_LAYOUT=
    partitioned runs a suite on the partitioned history (test_partition.py
    does so for the suites of every history method)."""
    layout = os.environ.get("CONVD_TEST_LAYOUT")
    return ("--layout", layout) if layout else ()


def setup_schema(pg, dbname=None, layout=None):
    """Runs `convctl db setup` against database dbname of cluster pg."""
    cfg = write_config(os.path.join(pg.tmp, f"setup-{dbname or pg.dbname}.conf"), {
        "database": {"host": pg.sockdir, "port": pg.port,
                     "name": dbname or pg.dbname, "user": pg.user},
        "migrations": {"directory": MIGRATIONS},
    })
    args = ("--layout", layout) if layout else layout_args()
    r = convctl("db", "setup", *args, config=cfg)
    if r.returncode != 0:
        raise RuntimeError(f"convctl db setup failed ({r.returncode}): "
                           f"{r.stdout}{r.stderr}")
    return pg


def wait_until(fn, timeout=10.0, interval=0.05, what="condition"):
    """Calls fn until it returns a true value (returned); exceptions count
    as false.  Raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - polling
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what} (last: {last!r})")
        time.sleep(interval)


def in_threads(fn, args, timeout=None):
    """Runs fn(a) for every a of args, each in a thread of its own, all at
    once, and waits for them (timeout: seconds, scaled, for each; None:
    as long as they take).  Returns what went wrong, as text: the
    exceptions raised and the threads still running; [] when nothing
    did."""
    errors = []

    def run(a):
        try:
            fn(a)
        except Exception as e:  # noqa: BLE001 - returned to the test
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(a,), daemon=True)
               for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if timeout is None else scaled(timeout))
    errors += [f"{t.name} still running" for t in threads if t.is_alive()]
    return errors


def packb_raw(obj):
    """Packs obj with bytes objects encoded as msgpack *str* (not bin), as
    old msgpack-rpc libraries do: lets a test send a str holding any bytes,
    e.g. invalid UTF-8."""
    return msgpack.packb(obj, use_bin_type=False)


def ts_usec(ts):
    """msgpack.Timestamp -> microseconds since the epoch."""
    assert isinstance(ts, msgpack.Timestamp), ts
    return ts.to_unix_nano() // 1000


class TableLock:
    """Holds `LOCK TABLE table IN mode MODE` in an open transaction of a
    psql session, so that statements on the table wait: a way to keep
    requests in flight for as long as a test needs.  Use as a context
    manager, or acquire() / release()."""

    def __init__(self, pg, table, mode="ACCESS EXCLUSIVE", db=None):
        self.pg = pg
        self.table = table
        self.mode = mode
        self.db = db or pg.dbname
        self.proc = None

    def acquire(self, timeout=20.0):
        self.proc = subprocess.Popen(
            [self.pg.bin("psql"), "-h", self.pg.sockdir, "-p",
             str(self.pg.port), "-U", self.pg.user, "-d", self.db, "-X",
             "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write(f'BEGIN;\nLOCK TABLE "{self.table}" IN '
                              f'{self.mode} MODE;\nSELECT \'locked\';\n')
        self.proc.stdin.flush()
        # psql prints 'locked' once the lock is held.
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                out += line
                if line.strip() == "locked":
                    return self
        self.release()
        raise RuntimeError(f"could not lock {self.table}: {out}")

    def release(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *a):
        self.release()


class PipelinedWriter(threading.Thread):
    """A client thread that pipelines add_message for user `user` (up to
    `window` requests unanswered) until stop_sending is set or convd closes
    the connection.  Records every request sent (sent: msgid -> content),
    every acknowledgement (acked: msgid -> row id), error answers, and how
    the connection ended (end: "eof", "reset", or "timeout" when an answer
    never came)."""

    def __init__(self, path, user, window=16, timeout=30.0):
        super().__init__(daemon=True)
        self.path = path
        self.user = user
        self.window = window
        self.timeout = scaled(timeout)
        self.sent = {}
        self.acked = {}
        self.errors = []
        self.end = None
        self.exc = None
        self.go = threading.Event()
        self.stop_sending = threading.Event()

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.exc = e
        finally:
            self.go.set()

    def _run(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        unp = msgpack.Unpacker(raw=False, timestamp=0)
        msgid = 0
        outstanding = 0
        self.go.set()
        try:
            while True:
                while outstanding < self.window and \
                        not self.stop_sending.is_set():
                    msgid += 1
                    # (no trailing blank: PgCluster.psql() strips output)
                    content = f"{self.user} #{msgid} {'x' * (msgid % 50)}."
                    self.sent[msgid] = content
                    try:
                        sock.sendall(msgpack.packb(
                            [0, msgid, "add_message",
                             [self.user, "anthropic", "user", content]]))
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    outstanding += 1
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    self.end = "timeout"
                    return
                except ConnectionResetError:
                    self.end = "reset"
                    return
                if not data:
                    self.end = "eof"
                    return
                unp.feed(data)
                for m in unp:
                    if not (m[0] == 1 and m[1] in self.sent):
                        raise AssertionError(f"unexpected message {m!r}")
                    outstanding -= 1
                    if m[2] is None:
                        self.acked[m[1]] = m[3]["id"]
                    else:
                        self.errors.append((m[1], m[2]))
        finally:
            sock.close()


def assert_acked_stored(pg, writers, table="simple_conversation_history"):
    """Every add_message a PipelinedWriter saw acknowledged is in the
    database with its content, and nothing it did not send is there."""
    for w in writers:
        rows = pg.psql(f"SELECT id, content FROM {table} WHERE user_id = "
                       f"'{w.user}' ORDER BY id")
        db = {}
        for line in rows.splitlines():
            i, content = line.split("|", 1)
            db[int(i)] = content
        for msgid, rowid in w.acked.items():
            assert rowid in db, (f"acknowledged add_message (msgid {msgid}, "
                                 f"row {rowid}) of {w.user} is not in the "
                                 f"database")
            assert db[rowid] == w.sent[msgid], (db[rowid], w.sent[msgid])
        unsent = set(db.values()) - set(w.sent.values())
        assert not unsent, f"rows nobody sent: {sorted(unsent)[:5]}"
        assert len(db) >= len(w.acked), (len(db), len(w.acked))


def stop_ok(*daemons):
    """Stops each Convd and checks that it exited 0: a clean shutdown, and,
    under CONVD_WRAPPER="valgrind --error-exitcode=99 ...", no memory
    error."""
    for d in daemons:
        rc = d.stop()
        why = " (valgrind found errors: see its log)" if rc == 99 else ""
        assert rc == 0, f"convd exited with {rc}{why}\n{d.log()[-4000:]}"


# The Python client's source (clients/python): tests put it first in
# sys.path to import convd_client.
PYCLIENT = os.path.join(SRCDIR, "clients", "python")


def history_contents(pg, user, table="simple_conversation_history"):
    """The content of a user's stored messages (any platform), in id
    order."""
    return pg.psql(f"SELECT content FROM {table} WHERE user_id = "
                   f"{sql_literal(user)} ORDER BY id").splitlines()


def run_python_example(name, *args, timeout=60):
    """Runs clients/python/examples/NAME with args under this Python;
    returns the CompletedProcess (text stdout and stderr)."""
    return subprocess.run([sys.executable,
                           os.path.join(PYCLIENT, "examples", name)]
                          + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def restart(d, sig=signal.SIGTERM, timeout=20):
    """Stops convd with sig and starts it again on the same socket and
    config (waiting until it answers).  SIGTERM must be a clean shutdown
    (exit 0); SIGKILL is a crash."""
    d.proc.send_signal(sig)
    rc = d.proc.wait(scaled(timeout))
    d.logf.close()
    if sig == signal.SIGTERM:
        assert rc == 0, f"convd exited with {rc} on SIGTERM\n{d.log()[-4000:]}"
    d.start()


class DroppingProxy(threading.Thread):
    """A Unix-socket proxy in front of convd that breaks connections the
    way a crash does, at the worst moment: the first `drops` requests of
    `method` are passed to convd, convd's answer is awaited (so the
    request ran), and then the client's connection is closed without that
    answer.  Everything else is passed on unchanged.  seen[method] counts
    the requests of each method that went through; dropped counts the
    connections broken."""

    def __init__(self, upstream, path, method, drops=1):
        super().__init__(daemon=True)
        self.upstream = upstream
        self.path = path
        self.method = method
        self.drops = drops
        self.dropped = 0
        self.seen = {}
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.stopping = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stopping = True
        self.listener.close()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _take_drop(self, msg):
        """True if request msg is one whose answer is to be dropped."""
        if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == 0):
            return False
        name = msg[2].decode() if isinstance(msg[2], bytes) else msg[2]
        with self.lock:
            self.seen[name] = self.seen.get(name, 0) + 1
            if name == self.method and self.drops > 0:
                self.drops -= 1
                return True
        return False

    def _serve(self, c):
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
        except OSError:
            c.close()
            up.close()
            return
        creq = msgpack.Unpacker(raw=False, timestamp=0)
        uans = msgpack.Unpacker(raw=False, ext_hook=ext_hook, timestamp=0)
        ubuf, ubase, uprev = bytearray(), 0, 0
        doomed = set()
        try:
            while True:
                r, _, _ = select.select([c, up], [], [], 30)
                if not r:
                    return
                if c in r:
                    data = c.recv(65536)
                    if not data:
                        return
                    up.sendall(data)
                    creq.feed(data)
                    for msg in creq:
                        if self._take_drop(msg):
                            doomed.add(msg[1])
                if up in r:
                    data = up.recv(65536)
                    if not data:
                        return
                    ubuf += data
                    uans.feed(data)
                    for msg in uans:
                        end = uans.tell()
                        raw = bytes(ubuf[uprev - ubase:end - ubase])
                        uprev = end
                        if isinstance(msg, list) and len(msg) == 4 and \
                                msg[1] in doomed:
                            with self.lock:
                                self.dropped += 1
                            return  # convd ran it; the client never hears
                        c.sendall(raw)
                    del ubuf[:uprev - ubase]
                    ubase = uprev
        except OSError:
            return
        finally:
            c.close()
            up.close()

# ------------------------------------------ Prometheus exposition and HTTP

PROM_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
PROM_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
PROM_SAMPLE = re.compile(
    rf"({PROM_NAME})(?:\{{((?:{PROM_LABEL})(?:,{PROM_LABEL})*)\}})? (\S+)")
PROM_HELP = re.compile(rf"# HELP ({PROM_NAME}) (.+)")
PROM_TYPE = re.compile(rf"# TYPE ({PROM_NAME}) (counter|gauge|histogram)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def prom_unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), s)


def parse_prometheus(text):
    """The text exposition format as convd writes it, checked line by line:
    {family: {"help", "type", "samples": [(labels, value)]}} in order.  Each
    family is one HELP line, one TYPE line, then its samples, all together;
    no family twice, no sample name and label set twice.  A histogram's
    samples carry their name's suffix as the label "__name__" (_bucket,
    _sum, _count) and are checked: buckets cumulative, +Inf equal to
    _count, one _sum."""
    fams = {}
    cur = None
    assert text.endswith("\n"), text
    for line in text.splitlines():
        if line.startswith("# HELP "):
            m = PROM_HELP.fullmatch(line)
            assert m, line
            assert m[1] not in fams, f"family {m[1]} twice:\n{text}"
            cur = fams[m[1]] = {"help": m[2], "type": None, "samples": []}
            last = m[1]
            continue
        if line.startswith("# TYPE "):
            m = PROM_TYPE.fullmatch(line)
            assert m and cur and m[1] == last and cur["type"] is None, line
            cur["type"] = m[2]
            continue
        m = PROM_SAMPLE.fullmatch(line)
        assert m, f"not a sample: {line!r}"
        assert cur and cur["type"], f"{line!r} before its HELP and TYPE"
        labels = {}
        if cur["type"] == "histogram":
            suffix = m[1][len(last):]
            assert m[1].startswith(last) and suffix in HISTOGRAM_SUFFIXES, \
                f"{line!r} not under its own HELP and TYPE:\n{text}"
            labels["__name__"] = suffix
        else:
            assert m[1] == last, \
                f"{line!r} not under its own HELP and TYPE:\n{text}"
        for pair in re.findall(PROM_LABEL, m[2] or ""):
            k, v = pair.split("=", 1)
            assert k not in labels, line
            labels[k] = prom_unescape(v[1:-1])
        assert all(labels != seen for seen, _ in cur["samples"]), line
        cur["samples"].append((labels, float(m[3])))
    for name, fam in fams.items():
        assert fam["samples"], f"{name}: no samples"
        assert fam["type"] != "counter" or name.endswith("_total"), name
        if fam["type"] == "histogram":
            for series in prom_histograms(fams, name).values():
                counts = [v for _, v in series["buckets"]]
                assert counts == sorted(counts), (name, series)
                les = [le for le, _ in series["buckets"]]
                assert les == sorted(les) and les[-1] == float("inf"), \
                    (name, series)
                assert counts[-1] == series["count"], (name, series)
                assert series["sum"] >= 0, (name, series)
    return fams


def prom_value(fams, name, **labels):
    """The one sample of family `name` with exactly these labels."""
    vals = [v for ls, v in fams[name]["samples"] if ls == labels]
    assert len(vals) == 1, (name, labels, fams.get(name))
    return vals[0]


def prom_histograms(fams, name):
    """A histogram family's series: {labels (without le) as a sorted tuple:
    {"buckets": [(le, count)] by le, "sum": s, "count": n}}."""
    out = {}
    for labels, v in fams[name]["samples"]:
        ls = dict(labels)
        suffix = ls.pop("__name__")
        le = ls.pop("le", None)
        s = out.setdefault(tuple(sorted(ls.items())),
                           {"buckets": [], "sum": None, "count": None})
        if suffix == "_bucket":
            s["buckets"].append((float(le), v))
        else:
            assert s[suffix[1:]] is None, (name, labels)
            s[suffix[1:]] = v
    for s in out.values():
        s["buckets"].sort()
        assert s["sum"] is not None and s["count"] is not None, s
    return out


def http_address(d, timeout=15.0):
    """The address convd's log says its HTTP endpoint listens on: (host,
    port) for TCP (convd picks the port: [http] listen = 127.0.0.1:0), or a
    socket path."""
    def found():
        m = re.search(r"http: listening on (?:\[([^\]]+)\]|([^\s:]+)):"
                      r"(\d+)$|http: listening on (/\S+)$", d.log(), re.M)
        if not m:
            return None
        if m[4]:
            return m[4]
        return (m[1] or m[2], int(m[3]))
    return wait_until(found, timeout=scaled(timeout),
                      what="convd to log its HTTP address")


def http_get(addr, path, method="GET", timeout=10.0, headers=None):
    """One HTTP/1.1 request to a (host, port) or a Unix socket path:
    (status, headers dict with lower-case names, body bytes)."""
    if isinstance(addr, str):
        class UnixConnection(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(addr)
        conn = UnixConnection("localhost", timeout=scaled(timeout))
    else:
        conn = http.client.HTTPConnection(addr[0], addr[1],
                                          timeout=scaled(timeout))
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()

# ----------------------------------------------- beyond one server (issue 19)

def free_tcp_port():
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """A real PgBouncer (Debian's) in front of PgCluster pg, listening on
    127.0.0.1 at a free port, run as the cluster's user (PgBouncer refuses
    root).  pool_mode "transaction" by default."""

    def __init__(self, pg, pool_mode="transaction", pool_size=10,
                 max_client_conn=500, extra=""):
        self.pg = pg
        self.bin = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.tmp = tempfile.mkdtemp(prefix="convd-bouncer-")
        os.chmod(self.tmp, 0o755)
        self.port = free_tcp_port()
        self.config = os.path.join(self.tmp, "pgbouncer.ini")
        self.pidfile = os.path.join(self.tmp, "pgbouncer.pid")
        self.logfile = os.path.join(self.tmp, "pgbouncer.log")
        users = os.path.join(self.tmp, "userlist.txt")
        with open(users, "w") as f:
            f.write(f'"{pg.user}" ""\n')
        with open(self.config, "w") as f:
            f.write(
                "[databases]\n"
                f"{pg.dbname} = host={pg.sockdir} port={pg.port} "
                f"dbname={pg.dbname} user={pg.user}\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {self.port}\n"
                f"unix_socket_dir = {self.tmp}\n"
                "auth_type = trust\n"
                f"auth_file = {users}\n"
                f"pool_mode = {pool_mode}\n"
                f"default_pool_size = {pool_size}\n"
                f"max_client_conn = {max_client_conn}\n"
                f"logfile = {self.logfile}\n"
                f"pidfile = {self.pidfile}\n"
                f"admin_users = {pg.user}\n"
                + extra)
        if pg.as_user:
            pw = pwd.getpwnam(pg.as_user)
            for p in (self.tmp, self.config, users):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def _run(self, *args):
        argv = [self.bin] + list(args) + [self.config]
        if self.pg.as_user:
            argv = ["runuser", "-u", self.pg.as_user, "--"] + argv
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"pgbouncer {args}: {r.stdout}\n{self.log()}")

    def start(self):
        self._run("-d")
        wait_until(self.accepts, timeout=10, what="pgbouncer to listen")
        return self

    def accepts(self):
        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, sig=signal.SIGINT, timeout=20):
        """SIGINT: safe shutdown (waits for transactions); SIGTERM: at once."""
        pid = self.pid()
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def restart(self, sig=signal.SIGINT):
        self.stop(sig)
        self.start()

    def log(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ""

    def destroy(self):
        self.stop(signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def database(self, **kw):
        """A [database] section for a convd that connects through us."""
        return dict({"host": "127.0.0.1", "port": self.port,
                     "name": self.pg.dbname, "user": self.pg.user,
                     "sslmode": "disable"}, **kw)


class Writers:
    """n threads calling add_message one at a time through convd's socket
    (a socket path, or a callable that returns the current one) with
    unique contents, until stop().  A writer whose convd is gone (restart)
    reconnects.  results: (content, outcome, value, t0, t1) with outcome
    "ok" (value: row id), "error" (value: the error code) or "io" (the
    connection broke before an answer: value None)."""

    def __init__(self, path, n=4, user=None, timeout=30.0, pause=0.0):
        self.path = path if callable(path) else (lambda: path)
        self.user = user or f"w-{os.getpid()}-{time.monotonic_ns()}"
        self.timeout = scaled(timeout)
        self.pause = pause
        self.results = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, n):
        i = 0
        c = None
        while not self.halt.is_set():
            if c is None:
                try:
                    c = Client(self.path(), timeout=self.timeout)
                except OSError:
                    time.sleep(0.02)
                    continue
            content = f"{self.user}/{n}/{i}"
            i += 1
            t0 = time.monotonic()
            try:
                out = ("ok", c.call("add_message", self.user, "anthropic",
                                    "user", content)["id"])
            except RpcError as e:
                out = ("error", e.code)
            except OSError:
                out = ("io", None)
                c.close()
                c = None
            with self.lock:
                self.results.append((content,) + out + (t0, time.monotonic()))
            if out[0] != "ok" or self.pause:
                time.sleep(self.pause or 0.01)
        if c:
            c.close()

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(self.timeout + 10)
        return self

    def count(self, outcome, after=0.0):
        with self.lock:
            return sum(1 for r in self.results
                       if r[1] == outcome and r[3] >= after)

    def outcomes(self, after=0.0):
        with self.lock:
            return [r for r in self.results if r[3] >= after]

    def lost(self, pg):
        """Acknowledged writes that the database pg does not hold."""
        rows = pg.psql("SELECT id, content FROM simple_conversation_history "
                       f"WHERE user_id = {sql_literal(self.user)}")
        db = dict(line.split("|", 1)[::-1] for line in rows.splitlines())
        return [r for r in self.results
                if r[1] == "ok" and db.get(r[0]) != str(r[2])]


class PatroniCluster:
    """A real Patroni cluster (Debian's patroni and etcd-server): one etcd
    and `n` members, everything on 127.0.0.1 at free ports, run as the
    postgres user, in one temp dir.  destroy() always kills every process
    it started (by pid) and removes the dir."""

    def __init__(self, n=3, synchronous_mode=True, ttl=10):
        self.tmp = tempfile.mkdtemp(prefix="convd-patroni-")
        os.chmod(self.tmp, 0o755)
        self.as_user = "postgres" if os.geteuid() == 0 else None
        self.procs = []                 # Popen of etcd and each patroni
        self.etcd_port = free_tcp_port()
        self.etcd_peer = free_tcp_port()
        self.members = []
        for i in range(n):
            name = f"m{i}"
            self.members.append({
                "name": name, "port": free_tcp_port(),
                "api": free_tcp_port(),
                "dir": os.path.join(self.tmp, name)})
        self.scope = f"convd{os.getpid()}"
        self.synchronous_mode = synchronous_mode
        self.ttl = ttl
        self.patroni = {}               # name -> Popen

    def _chown(self, path):
        if self.as_user:
            pw = pwd.getpwnam(self.as_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _spawn(self, argv, log):
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--"] + argv
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=f, cwd=self.tmp,
                             start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    def member_config(self, m):
        os.makedirs(m["dir"], exist_ok=True)
        os.chmod(m["dir"], 0o700)
        self._chown(m["dir"])
        conf = {
            "scope": self.scope, "name": m["name"],
            "log": {"level": "WARNING"},
            "restapi": {"listen": f"127.0.0.1:{m['api']}",
                        "connect_address": f"127.0.0.1:{m['api']}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {"ttl": self.ttl, "loop_wait": 1, "retry_timeout": 3,
                        "maximum_lag_on_failover": 1048576,
                        "synchronous_mode": self.synchronous_mode,
                        # a member left behind a failover rejoins
                        "postgresql": {"use_pg_rewind": True,
                                       "remove_data_directory_on_rewind_failure": True,
                                       "remove_data_directory_on_diverged_timelines": True,
                                       "parameters": {
                                           "wal_log_hints": "on",
                                           "max_connections": 60,
                                           "fsync": "off",
                                           "full_page_writes": "off",
                                           "synchronous_commit": "on"}}},
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": ["local all all trust",
                           "host all all 127.0.0.1/32 trust",
                           "local replication all trust",
                           "host replication all 127.0.0.1/32 trust"]},
            "postgresql": {
                "listen": f"127.0.0.1:{m['port']}",
                "connect_address": f"127.0.0.1:{m['port']}",
                "data_dir": os.path.join(m["dir"], "data"),
                "bin_dir": pg_bindir(),
                "pgpass": os.path.join(m["dir"], "pgpass"),
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "postgres"}},
                "parameters": {"unix_socket_directories": m["dir"]}},
        }
        path = os.path.join(m["dir"], "patroni.yml")
        with open(path, "w") as f:
            json.dump(conf, f)      # JSON is YAML
        self._chown(path)
        return path

    def start(self, timeout=90):
        etcd_dir = os.path.join(self.tmp, "etcd")
        os.makedirs(etcd_dir, mode=0o700)
        self._chown(etcd_dir)
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer}"
        self._spawn([shutil.which("etcd") or "/usr/bin/etcd",
                     "--name", "e0", "--data-dir", etcd_dir,
                     "--listen-client-urls", client,
                     "--advertise-client-urls", client,
                     "--listen-peer-urls", peer,
                     "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", f"e0={peer}",
                     "--log-level", "warn"],
                    os.path.join(self.tmp, "etcd.log"))
        for m in self.members:
            self.start_member(m)
        wait_until(lambda: self.leader() and len(self.streaming()) ==
                   len(self.members) - 1, timeout=scaled(timeout),
                   interval=0.5, what="the Patroni cluster")
        return self

    def start_member(self, m):
        cfg = self.member_config(m)
        self.patroni[m["name"]] = self._spawn(
            [shutil.which("patroni") or "/usr/bin/patroni", cfg],
            os.path.join(self.tmp, m["name"] + ".log"))

    def api(self, m, path="patroni"):
        import urllib.request
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{m['api']}/{path}", timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - down, or not a leader (503)
            return None

    def cluster(self):
        for m in self.members:
            c = self.api(m, "cluster")
            if c:
                return c
        return None

    def leader(self):
        """The member that is the running leader, or None."""
        c = self.cluster() or {}
        for x in c.get("members", []):
            if x.get("role") == "leader" and x.get("state") == "running":
                return next(m for m in self.members
                            if m["name"] == x["name"])
        return None

    def streaming(self):
        c = self.cluster() or {}
        return [x["name"] for x in c.get("members", [])
                if x.get("role") in ("replica", "sync_standby") and
                x.get("state") in ("streaming", "running")]

    def url(self, dbname="convd", **params):
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m["port"]) for m in self.members)
        extra = "".join(f" {k}={v}" for k, v in params.items())
        return (f"host={hosts} port={ports} dbname={dbname} user=postgres "
                f"sslmode=disable{extra}")

    def psql(self, m, sql, db="convd", check=True):
        r = subprocess.run(
            [os.path.join(pg_bindir(), "psql"), "-h", "127.0.0.1", "-p",
             str(m["port"]), "-U", "postgres", "-d", db, "-X", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def postmaster_pid(self, m):
        try:
            with open(os.path.join(m["dir"], "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill_member(self, m):
        """The node dies: its Patroni and its PostgreSQL, SIGKILL."""
        p = self.patroni.pop(m["name"], None)
        pids = []
        if p:
            pids.append(-p.pid)     # runuser's session: patroni in it
        pm = self.postmaster_pid(m)
        if pm:
            pids.append(pm)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL) if pid > 0 else \
                    os.killpg(-pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pm:
            # its backends end when they see their postmaster gone
            for _ in range(200):
                try:
                    os.kill(pm, 0)
                    time.sleep(0.01)
                except ProcessLookupError:
                    break

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, name + ".log")) as f:
                return f.read()
        except OSError:
            return ""

    def destroy(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for m in self.members:
            pm = self.postmaster_pid(m)
            if pm:
                try:
                    # the postmaster's process group: it and its children
                    pg = os.getpgid(pm)
                    if pg != os.getpgrp():
                        os.killpg(pg, signal.SIGKILL)
                    else:
                        os.kill(pm, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
