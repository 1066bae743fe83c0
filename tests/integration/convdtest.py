"""Test harness for convd's integration tests.

Everything here is real: a throwaway PostgreSQL cluster made with initdb and
pg_ctl (Unix socket in a temp dir, no TCP), the real convd binary, the real
convctl binary, and a plain MessagePack-RPC client over the Unix socket.

PostgreSQL refuses to run as root, so when the tests run as root the
cluster belongs to the unprivileged user `postgres` (runuser).
"""

import glob
import os
import pwd
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

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


def sql_literal(s):
    """An SQL string literal, for test data only."""
    return "'" + str(s).replace("'", "''") + "'"


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
            "pool": {"size": 4, "max_overflow": 4, "timeout": 5},
            "server": {"socket": self.socket, "socket_mode": "0600"},
            "log": {"level": "info"},
            "migrations": {"directory": MIGRATIONS},
        }
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
                       stderr=subprocess.PIPE, env=e, timeout=60,
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

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
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
