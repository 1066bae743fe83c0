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
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import msgpack

BUILDDIR = os.environ.get("CONVD_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("CONVD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CONVD = os.path.join(BUILDDIR, "convd")
CONVCTL = os.path.join(BUILDDIR, "convctl")
MIGRATIONS = os.path.join(SRCDIR, "migrations")


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

    def __init__(self, base=None, name="pg"):
        self.bindir = pg_bindir()
        self.tmp = base or tempfile.mkdtemp(prefix="convd-test-")
        os.chmod(self.tmp, 0o755)
        self.datadir = os.path.join(self.tmp, name)
        self.sockdir = os.path.join(self.tmp, name + "-sock")
        self.logfile = os.path.join(self.tmp, name + ".log")
        self.port = 5432
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

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)

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

    def start(self, wait=True, args=()):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([CONVD, "-c", self.config] + list(args),
                                     stdout=self.logf, stderr=self.logf,
                                     env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.time() + timeout
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

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
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
