"""Running as a system service: sd_notify (READY, STATUS, RELOADING,
STOPPING, WATCHDOG), socket activation, reload on SIGHUP without dropping
clients, graceful shutdown under load, and the shipped systemd units and
man pages.

The notify socket is a Unix datagram socket bound by the test, exactly what
systemd gives a Type=notify service in NOTIFY_SOCKET."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

import convdtest
from convdtest import (Client, PipelinedWriter, TableLock,
                       assert_acked_stored, scaled, stop_ok, uid, wait_until)

HIST = "simple_conversation_history"


# ------------------------------------------------------------ notify socket

class NotifySocket:
    """Receives sd_notify datagrams on a path socket, as systemd does."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received = []          # (monotonic time, {key: value}, text)

    def close(self):
        self.sock.close()

    def _recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        text = data.decode("utf-8", "replace")
        fields = {}
        for line in text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        item = (time.monotonic(), fields, text)
        self.received.append(item)
        return item

    def wait_for(self, pred, timeout, what):
        """Returns the first message (time, fields, text) received from now
        on for which pred(fields) is true; fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no notify message {what} within "
                                     f"{timeout:.1f}s; got {seen!r}")
            item = self._recv(left)
            if item is None:
                continue
            seen.append(item[2])
            if pred(item[1]):
                return item

    def drain(self):
        while self._recv(0.001) is not None:
            pass


@pytest.fixture
def shortdir():
    """A short temp dir (socket paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix="cvsd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def notify(shortdir):
    n = NotifySocket(shortdir)
    yield n
    n.close()


def status_of(fields):
    return fields.get("STATUS")


# ------------------------------------------------------------------ notify

def test_notify_ready_status_reload_stopping(schema, convd_factory, notify):
    d = convd_factory(schema, env={"NOTIFY_SOCKET": notify.path},
                      start=False)
    d.start(wait=False)
    _, ready, text = notify.wait_for(lambda f: f.get("READY") == "1",
                                     scaled(15), "READY=1")
    # READY=1 means the socket listens: a ping works right away, no retry.
    with d.client(timeout=scaled(5)) as c:
        assert c.call("ping") == "pong"
    assert ready.get("MAINPID") in (None, str(d.proc.pid)), text
    _, st, text = notify.wait_for(lambda f: "STATUS" in f, scaled(10),
                                  "STATUS=")
    status = status_of(st)
    assert re.search(r"database (up|reachable)", status, re.I), status
    assert re.search(r"\bclients?\b", status), status
    assert re.search(r"\bpool\b", status), status

    # STATUS counts the clients: two connected -> "2 clients".
    with d.client() as c1, d.client() as c2:
        assert c1.call("ping") == "pong" and c2.call("ping") == "pong"
        notify.drain()
        t0 = time.monotonic()
        d.signal(signal.SIGHUP)
        t_rel, rel, text = notify.wait_for(lambda f: "RELOADING" in f,
                                           scaled(10), "RELOADING=1")
        assert rel["RELOADING"] == "1", text
        assert "MONOTONIC_USEC" in rel, \
            f"RELOADING=1 without MONOTONIC_USEC (systemd >= 253 needs it): {text}"
        mono = int(rel["MONOTONIC_USEC"])
        # CLOCK_MONOTONIC, the clock of Python's time.monotonic() on Linux
        assert abs(mono / 1e6 - t0) < scaled(5), (mono, t0)
        t_ready, _, _ = notify.wait_for(lambda f: f.get("READY") == "1",
                                        scaled(10), "READY=1 after reload")
        assert t_ready >= t_rel
        _, st, _ = notify.wait_for(lambda f: "STATUS" in f, scaled(10),
                                   "STATUS= after reload")
        assert re.search(r"\b2 clients\b", status_of(st)), status_of(st)
        assert c1.call("ping") == "pong"      # reload dropped no one

    notify.drain()
    d.signal(signal.SIGTERM)
    notify.wait_for(lambda f: f.get("STOPPING") == "1", scaled(10),
                    "STOPPING=1")
    assert d.wait_exit(scaled(20)) == 0, d.log()


def test_notify_status_database_down_then_up(schema, convd_factory, notify):
    """STATUS says whether the database is reachable."""
    dbname = "late_" + uuid.uuid4().hex[:8]
    d = convd_factory(schema, env={"NOTIFY_SOCKET": notify.path},
                      extra={"database": {"name": dbname},
                             "pool": {"size": 1, "max_overflow": 0,
                                      "timeout": 2}},
                      start=False)
    d.start(wait=False)
    notify.wait_for(lambda f: f.get("READY") == "1", scaled(15), "READY=1")
    with d.client() as c:
        wait_until(lambda: c.call("health")["database"] == "down",
                   scaled(10), what="health: database down")
        notify.drain()
        d.signal(signal.SIGHUP)     # STATUS is sent again after a reload
        _, st, _ = notify.wait_for(lambda f: "STATUS" in f, scaled(10),
                                   "STATUS=")
        assert re.search(r"database (down|unreachable)", status_of(st),
                         re.I), status_of(st)
        try:
            schema.createdb(dbname)
            convdtest.setup_schema(schema, dbname)
            wait_until(lambda: c.call("health")["database"] == "up",
                       scaled(30), what="health: database up")
            notify.drain()
            d.signal(signal.SIGHUP)
            _, st, _ = notify.wait_for(lambda f: "STATUS" in f, scaled(10),
                                       "STATUS=")
            assert re.search(r"database (up|reachable)", status_of(st),
                             re.I), status_of(st)
            stop_ok(d)
        finally:
            d.stop()
            schema.dropdb(dbname)


def test_watchdog_pings_every_half_interval(schema, convd_factory, notify):
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
    d = convd_factory(schema, env=env, start=False)
    d.env.pop("WATCHDOG_PID", None)
    d.start(wait=False)
    notify.wait_for(lambda f: f.get("READY") == "1", scaled(15), "READY=1")
    times = []
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        item = notify._recv(deadline - time.monotonic())
        if item and item[1].get("WATCHDOG") == "1":
            times.append(item[0])
    assert 4 <= len(times) <= 7, f"{len(times)} WATCHDOG=1 in 2.6 s: {times}"
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.3 <= g <= 0.8 for g in gaps), gaps
    stop_ok(d)


def test_no_watchdog_without_watchdog_usec(schema, convd_factory, notify):
    d = convd_factory(schema, env={"NOTIFY_SOCKET": notify.path},
                      start=False)
    d.start(wait=False)
    notify.wait_for(lambda f: f.get("READY") == "1", scaled(15), "READY=1")
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        item = notify._recv(deadline - time.monotonic())
        assert not (item and "WATCHDOG" in item[1]), item
    stop_ok(d)


# ------------------------------------------------------- socket activation

def test_socket_activation(schema, convd_factory, shortdir):
    tool = shutil.which("systemd-socket-activate") or \
        "/usr/bin/systemd-socket-activate"
    if not os.path.exists(tool):
        pytest.fail("systemd-socket-activate is missing (package systemd)")
    act = os.path.join(shortdir, "act.sock")
    own = os.path.join(shortdir, "own.sock")
    d = convd_factory(schema, extra={"server": {"socket": own}}, start=False)
    d.socket = act
    d.start(wait=False, prefix=[tool, "-l", act])
    # the path exists once bound, connect() works once it listens
    wait_until(lambda: Client(act, timeout=scaled(15)), scaled(10),
               what="systemd-socket-activate to listen").close()
    with Client(act, timeout=scaled(15)) as c:
        assert c.call("ping") == "pong"
        user = uid("act")
        r = c.call("add_message", user_id=user, provider="anthropic",
                   role="user", content="activated")
        assert r["id"] > 0
        wait_until(lambda: c.call("stats")["clients"]["connected"] == 1,
                   scaled(5), what="one client (the probe has gone)")
    # the process is convd itself now, started with LISTEN_FDS=1
    env = open(f"/proc/{d.proc.pid}/environ", "rb").read().split(b"\0")
    assert b"LISTEN_FDS=1" in env, env
    assert os.path.realpath(f"/proc/{d.proc.pid}/exe") == \
        os.path.realpath(convdtest.CONVD) or convdtest.WRAPPER
    # convd neither created its own socket nor touched the passed path
    assert not os.path.exists(own), "convd created [server] socket too"
    with Client(act) as c:
        assert c.call("ping") == "pong"
    ino = os.stat(act).st_ino
    d.signal(signal.SIGTERM)
    assert d.wait_exit(scaled(20)) == 0, d.log()
    assert os.path.exists(act) and os.stat(act).st_ino == ino, \
        "convd unlinked the socket that systemd owns"
    assert not os.path.exists(own)


# ------------------------------------------------------------------ reload

def stats(d):
    with d.client(timeout=scaled(5)) as c:
        return c.call("stats")


def rewrite(d, change):
    """Rewrites d's config file with change = {section: {key: value}}
    (value None deletes the key)."""
    sections = {}
    cur = None
    with open(d.config) as f:
        for line in f:
            m = re.match(r"^\[(\w+)\]", line)
            if m:
                cur = sections.setdefault(m.group(1), {})
                continue
            m = re.match(r"^(\w+) = (.*)$", line.rstrip("\n"))
            if m:
                cur[m.group(1)] = m.group(2)
    for sec, kv in change.items():
        for k, v in kv.items():
            if v is None:
                sections.get(sec, {}).pop(k, None)
            else:
                sections.setdefault(sec, {})[k] = v
    convdtest.write_config(d.config, sections)


def test_reload_pool_size_and_log_level_keep_clients(schema, convd_factory):
    d = convd_factory(schema, extra={"pool": {"size": 2, "max_overflow": 0},
                                     "log": {"level": "info"}})
    old = Client(d.socket, timeout=scaled(10))
    try:
        assert old.call("ping") == "pong"
        wait_until(lambda: stats(d)["pool"]["open"] == 2, scaled(10),
                   what="pool.open == 2")
        assert " debug: " not in d.log()

        # (connections open on demand: min_size is what stays open)
        rewrite(d, {"pool": {"size": 5, "min_size": 5},
                    "log": {"level": "debug"}})
        d.signal(signal.SIGHUP)
        wait_until(lambda: stats(d)["pool"]["open"] == 5, scaled(5),
                   what="pool.open == 5 after reload")
        # the client connected before the reload is still served
        user = uid("reload")
        r = old.call("add_message", user_id=user, provider="anthropic",
                     role="user", content="after reload")
        assert r["id"] > 0
        assert old.call("get_conversation_count", user_id=user) == 1
        # debug lines now appear (a new client's connection is one)
        with d.client() as c:
            assert c.call("ping") == "pong"
        wait_until(lambda: " debug: " in d.log(), scaled(5),
                   what="debug lines in the log")

        rewrite(d, {"pool": {"size": 1}, "log": {"level": "warning"}})
        d.signal(signal.SIGHUP)
        wait_until(lambda: stats(d)["pool"]["open"] == 1, scaled(8),
                   what="pool.open == 1 after shrinking the pool")
        assert old.call("ping") == "pong"
        assert d.proc.poll() is None
        assert stats(d)["clients"]["closed_on_error"] == 0
    finally:
        old.close()
    stop_ok(d)


def test_reload_nonreloadable_option_is_named(schema, convd_factory,
                                              shortdir):
    d = convd_factory(schema)
    with d.client() as c:
        assert c.call("ping") == "pong"
        moved = os.path.join(shortdir, "moved.sock")
        rewrite(d, {"server": {"socket": moved}})
        d.signal(signal.SIGHUP)
        line = wait_until(
            lambda: next((ln for ln in d.log().splitlines()
                          if "socket" in ln and re.search(
                              r"\b(warn|warning)\b", ln, re.I) and
                          re.search(r"restart|cannot|not reloadable|"
                                    r"ignored", ln)), None),
            scaled(5), what="a warning naming [server] socket")
        assert "[server] socket" in line or "server.socket" in line, line
        # still on the old socket, the same connection works
        assert c.call("ping") == "pong"
    assert not os.path.exists(moved)
    with d.client() as c2:
        assert c2.call("ping") == "pong"
    stop_ok(d)


def test_reload_broken_config_keeps_old(schema, convd_factory):
    d = convd_factory(schema, extra={"pool": {"size": 2, "max_overflow": 0},
                                     "log": {"level": "info"}})
    with d.client() as c:
        wait_until(lambda: stats(d)["pool"]["open"] == 2, scaled(10),
                   what="pool.open == 2")
        with open(d.config) as f:
            good = f.read()
        broken = good.replace("[pool]\n", "[pool]\nsize = 6\n", 1)
        broken = broken.replace("size = 2\n", "", 1)
        broken = broken.replace("level = info\n", "level = debug\n", 1)
        broken += "this line is not an option\n"
        lineno = broken.count("\n")
        with open(d.config, "w") as f:
            f.write(broken)
        d.signal(signal.SIGHUP)
        wait_until(lambda: f"{d.config}:{lineno}" in d.log(), scaled(5),
                   what=f"{d.config}:{lineno} in the log")
        assert re.search(r"reload.*(fail|keep|kept)", d.log(), re.I), d.log()
        # old configuration kept: pool size 2, level info, still serving
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            assert c.call("stats")["pool"]["open"] == 2
            time.sleep(0.1)
        assert " debug: " not in d.log()
        assert c.call("ping") == "pong"
        with d.client() as c2:
            assert c2.call("ping") == "pong"
        assert d.proc.poll() is None
    stop_ok(d)


# ---------------------------------------------------- graceful shutdown

def test_graceful_shutdown_under_load(schema, convd_factory):
    d = convd_factory(schema, extra={"pool": {"size": 4, "max_overflow": 2,
                                              "timeout": 20},
                                     "server": {"shutdown_timeout": 20}})
    writers = [PipelinedWriter(d.socket, f"gs-{uuid.uuid4().hex[:8]}-{i}")
               for i in range(4)]
    for w in writers:
        w.start()
        assert w.go.wait(scaled(10))
    wait_until(lambda: all(len(w.acked) >= 20 for w in writers), scaled(20),
               what="every writer to get 20 acknowledgements")
    # Hold the table: requests now stay in flight while convd stops.
    lock = TableLock(schema, HIST, mode="EXCLUSIVE").acquire()
    try:
        time.sleep(0.3)   # let more requests reach the (blocked) database
        d.signal(signal.SIGTERM)
        wait_until(lambda: not os.path.exists(d.socket), scaled(5),
                   what="the socket file to go away")
        assert d.proc.poll() is None, "convd did not wait for its requests"
        with pytest.raises(OSError):
            Client(d.socket, timeout=2)
        time.sleep(0.3)
    finally:
        lock.release()
    for w in writers:
        w.stop_sending.set()
    assert d.wait_exit(scaled(30)) == 0, d.log()
    for w in writers:
        w.join(scaled(30))
        assert not w.is_alive(), f"{w.user} hangs"
        assert w.exc is None, repr(w.exc)
        assert w.end in ("eof", "reset"), \
            f"{w.user}: {w.end}: a request was neither answered nor closed"
    assert_acked_stored(schema, writers)
    # requests in flight at SIGTERM were finished, not dropped
    total_acked = sum(len(w.acked) for w in writers)
    assert total_acked > 80
    assert "shutting down" in d.log()


# ------------------------------------------------- units and man pages

def render_units(dest):
    with open(os.path.join(convdtest.SRCDIR, "systemd",
                           "convd.service.in")) as f:
        text = f.read()
    assert "@sbindir@" in text, "ExecStart should use @sbindir@"
    text = text.replace("@sbindir@", convdtest.BUILDDIR)
    text = text.replace("@sysconfdir@", dest)
    with open(os.path.join(dest, "convd.service"), "w") as f:
        f.write(text)
    shutil.copy(os.path.join(convdtest.SRCDIR, "systemd", "convd.socket"),
                dest)
    with open(os.path.join(dest, "convd.conf"), "w") as f:
        f.write("[log]\nlevel = info\n")
    return text


def man_pages():
    return sorted(p for p in
                  (os.path.join(convdtest.SRCDIR, "man", n) for n in
                   os.listdir(os.path.join(convdtest.SRCDIR, "man")))
                  if re.search(r"\.[1-8]$", p))


def test_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    dest = str(tmp_path)
    text = render_units(dest)
    assert re.search(r"^Type=notify", text, re.M), text
    assert re.search(r"^ExecReload=.*HUP", text, re.M), text
    assert re.search(r"^WatchdogSec=", text, re.M), text
    # Documentation=man:... is checked against our own pages
    mandir = tmp_path / "man"
    for p in man_pages():
        sec = p.rsplit(".", 1)[1]
        (mandir / f"man{sec}").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, mandir / f"man{sec}")
    env = dict(os.environ)
    args = [analyze, "verify"]
    if shutil.which("man"):
        env["MANPATH"] = str(mandir)
    else:
        args.append("--man=no")
    r = subprocess.run(args + [os.path.join(dest, "convd.service"),
                               os.path.join(dest, "convd.socket")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env, timeout=60, cwd=dest)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout
    with open(os.path.join(dest, "convd.socket")) as f:
        sock = f.read()
    assert re.search(r"^ListenStream=/", sock, re.M), sock


def test_man_pages_lint():
    mandoc = shutil.which("mandoc")
    assert mandoc, "mandoc is missing"
    pages = man_pages()
    names = {os.path.basename(p) for p in pages}
    for want in ("convd.8", "convd.conf.5", "convctl.1",
                 "convd-protocol.7"):
        assert want in names, f"man/{want} is missing"
    for p in pages:
        # Run in man/ so that mandoc finds the pages our .Xr refer to.
        # Lint messages go to stdout; stderr only says things about the
        # system's mandoc.db.
        r = subprocess.run([mandoc, "-Tlint", os.path.basename(p)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60, cwd=os.path.dirname(p))
        assert r.returncode == 0 and not r.stdout.strip(), \
            f"{os.path.basename(p)}:\n{r.stdout}{r.stderr}"


def help_options():
    """(section, name) of every option `convd --help` lists, and those of
    etc/convd.conf."""
    r = subprocess.run([convdtest.CONVD, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    opts = re.findall(r"^\s+\[(\w+)\]\s+(\w+)\s*=", r.stdout, re.M)
    return sorted(set(opts + convdtest.sample_options()))


def man_macro_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith(".")]


def test_man_conf_documents_every_option():
    opts = help_options()
    assert len(opts) >= 30, opts
    path = os.path.join(convdtest.SRCDIR, "man", "convd.conf.5")
    assert os.path.exists(path), "man/convd.conf.5 is missing"
    with open(path) as f:
        text = f.read()
    missing = []
    for section, name in opts:
        # the option's entry (an .It line naming it) inside the part of
        # the page about its section, if the page has such parts
        m = re.search(rf"^\.S[sh] [^\n]*\[{section}\][^\n]*$(.*?)"
                      rf"(?=^\.S[sh] |\Z)",
                      text, re.M | re.S)
        block = m.group(1) if m else text
        if not re.search(rf"^\.It\b.*\b{name}\b", block, re.M):
            missing.append(f"[{section}] {name}")
    assert not missing, f"convd.conf(5) does not document: {missing}"


def convctl_commands():
    assert os.path.exists(convdtest.CONVCTL), \
        f"{convdtest.CONVCTL} was not built"
    r = subprocess.run([convdtest.CONVCTL, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    m = re.search(r"^Commands:\s*$(.*?)(?:^\S|\Z)", r.stdout, re.M | re.S)
    assert m, f"no 'Commands:' list in convctl --help:\n{r.stdout}"
    cmds = []
    for line in m.group(1).splitlines():
        w = re.match(r"^\s{1,4}([a-z][a-z-]*(?: [a-z][a-z-]*)*)", line)
        if w:
            words = [x for x in w.group(1).split() if x != x.upper()]
            cmds.append(" ".join(words))
    cmds = [c for c in cmds if c]
    if "db" in cmds:
        # and the subcommands of `convctl db`, from its own help
        r = subprocess.run([convdtest.CONVCTL, "db", "--help"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout
        for line in r.stdout.splitlines():
            m = re.match(r"^ {1,4}([a-z].*?)(?: {2,}|$)", line)
            if not m:
                continue
            for alt in m.group(1).split("|"):
                w = re.match(r"\s*([a-z][a-z-]*)", alt)
                if w:
                    cmds.append("db " + w.group(1))
    return cmds


def test_man_convctl_documents_every_command():
    cmds = convctl_commands()
    assert len(cmds) >= 10, cmds
    path = os.path.join(convdtest.SRCDIR, "man", "convctl.1")
    assert os.path.exists(path), "man/convctl.1 is missing"
    with open(path) as f:
        lines = man_macro_lines(f.read())
    missing = []
    for cmd in cmds:
        # `db X` may be documented as X under a heading about db commands
        words = cmd.split()[1:] if cmd.startswith("db ") else cmd.split()
        pat = r"\b" + r"\b.*\b".join(re.escape(w) for w in words) + r"\b"
        if not any(re.search(pat, ln) for ln in lines
                   if ln.startswith((".It", ".Cm", ".Nm", ".Ic", ".Sh",
                                     ".Ss"))):
            missing.append(cmd)
    assert not missing, f"convctl(1) does not document: {missing}"
