"""The convd program: options, configuration checking, secrets, where the
database settings come from (file, DB_*, DATABASE_URL), passwords that need
escaping, starting without a database, and SIGTERM."""

import os
import re
import signal
import subprocess
import time
import urllib.parse

import pytest

import convdtest
from convdtest import (Client, RpcError, sample_options, scaled,
                       sql_literal as q, uid, wait_until)

HIST = "simple_conversation_history"
# Every character that broke the seed's URL pasting.
PASSWORD = "p@s s/w'r%d#1:x?y=z&"
PWUSER = "convd_pw_user"


def run_convd(*args, env=None, timeout=30):
    e = dict(os.environ)
    for k in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
              "DB_PASSWORD"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([convdtest.CONVD] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e, timeout=timeout)


def add(c, user, content="x"):
    return c.call("add_message", user_id=user, provider="anthropic",
                  role="user", content=content)


def rows_in(pg, db, user):
    return int(pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                       f"{q(user)}", db=db))


def base_sections(pg, sock):
    return {
        "database": {"host": pg.sockdir, "port": pg.port, "name": pg.dbname,
                     "user": pg.user},
        "pool": {"size": 2, "max_overflow": 2, "timeout": 5},
        "server": {"socket": sock},
        "log": {"level": "info"},
    }


# ------------------------------------------------------- version and help

def test_version():
    with open(os.path.join(convdtest.SRCDIR, "configure.ac")) as f:
        version = re.search(r"AC_INIT\(\[convd\],\s*\[([^\]]+)\]",
                            f.read()).group(1)
    r = run_convd("--version")
    assert r.returncode == 0, r.stderr
    assert "convd" in r.stdout and version in r.stdout, r.stdout


def test_help_lists_every_option():
    r = run_convd("--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for opt in ("--check-config", "--version", "--help", "-c"):
        assert opt in text, opt
    opts = sample_options()
    assert len(opts) >= 30, opts     # the sample documents every option
    sections = sorted({s for s, _ in opts})
    assert sections == sorted(["database", "pool", "server", "retention",
                               "http", "log", "migrations"]), sections
    missing = []
    for section, key in opts:
        # "[section] key = ...", "section.key", or the key under a
        # "[section]" heading of its own.
        if re.search(rf"\[{section}\]\s+{key}\b", text) or \
                re.search(rf"\b{section}\.{key}\b", text):
            continue
        m = re.search(rf"^\s*\[{section}\]\s*$(.*?)(?=^\s*\[|\Z)", text,
                      re.M | re.S)
        if m and re.search(rf"^\s*{key}\b", m.group(1), re.M):
            continue
        missing.append(f"{section}.{key}")
    assert not missing, f"--help does not list: {missing}\n{text}"


# ----------------------------------------------------------- check-config

def test_check_config_ok(tmp_path, pg):
    cfg = convdtest.write_config(str(tmp_path / "ok.conf"),
                                 base_sections(pg, str(tmp_path / "s")))
    r = run_convd("--check-config", "-c", cfg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # The sample configuration shipped in etc/ is valid as it is.
    sample = os.path.join(convdtest.SRCDIR, "etc", "convd.conf")
    r = run_convd("--check-config", "-c", sample)
    assert r.returncode == 0, (r.stdout, r.stderr)


BROKEN = [
    ("not-a-number", "[pool]\nsize = banana\n", 2, "size"),
    ("negative", "[database]\nhost = /tmp\n[pool]\nsize = -5\n", 4, "size"),
    ("unknown-key", "[database]\nhost = /tmp\n\n[server]\nno_such_key = 1\n",
     5, "no_such_key"),
    ("unknown-section", "# comment\n[no_such_section]\nfoo = 1\n", 2,
     "no_such_section"),
    ("no-equals", "[pool]\nsize = 3\ntimeout\n", 3, None),
    ("bad-level", "[log]\nlevel = loud\n", 2, "level"),
    ("bad-bool", "[pool]\npre_ping = maybe\n", 2, "pre_ping"),
    ("bad-mode", "[server]\nsocket_mode = 0999\n", 2, "socket_mode"),
    ("bad-port", "[database]\nport = 70000\n", 2, "port"),
    ("bad-size", "[server]\nmax_request_bytes = 12Q\n", 2,
     "max_request_bytes"),
    ("unterminated-quote", "[database]\nhost = \"/tmp\n", 2, "host"),
    ("key-outside-section", "size = 3\n", 1, None),
]


@pytest.mark.parametrize("name,text,line,key", BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_check_config_broken(tmp_path, name, text, line, key):
    path = tmp_path / "broken.conf"
    path.write_text(text)
    r = run_convd("--check-config", "-c", str(path))
    assert r.returncode != 0, (r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert f"{path}:{line}" in out, out
    if key:     # (a line that is not "key = value" has no key to name)
        assert key in out, out


def test_broken_config_stops_start(tmp_path):
    path = tmp_path / "broken.conf"
    path.write_text("[server]\nmax_clients = lots\n")
    r = run_convd("-c", str(path), timeout=10)
    assert r.returncode != 0
    assert f"{path}:2" in r.stdout + r.stderr
    assert "max_clients" in r.stdout + r.stderr


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.conf"
    r = run_convd("--check-config", "-c", str(path))
    assert r.returncode != 0
    assert str(path) in r.stdout + r.stderr


# ---------------------------------------------------------------- secrets

def test_check_config_never_prints_password(tmp_path, pg):
    secret = "Sup3r-S3cret-Pa55"
    sections = base_sections(pg, str(tmp_path / "s"))
    sections["database"]["password"] = secret
    cfg = convdtest.write_config(str(tmp_path / "secret.conf"), sections)
    r = run_convd("--check-config", "-c", cfg)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert secret not in r.stdout + r.stderr
    # Nor from the environment, nor when the password line is broken.
    r = run_convd("--check-config", "-c", cfg, env={
        "DB_PASSWORD": secret + "-env",
        "DATABASE_URL": f"postgresql://u:{secret}-url@/db?host=/tmp"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert secret not in r.stdout + r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text(f"[database]\npassword = \"{secret}\n")
    r = run_convd("--check-config", "-c", str(bad))
    assert r.returncode != 0
    assert secret not in r.stdout + r.stderr


def test_running_convd_never_logs_or_reports_password(schema, convd_factory):
    pg = schema
    secret = "Zz-NotInLogs-9876"
    d = convd_factory(pg, extra={"database": {"password": secret}},
                      env={"DB_PASSWORD": secret + "-env"})
    with d.client() as c:
        add(c, uid())
        stats = c.call("stats")
        c.call("health")
    assert secret not in repr(stats)
    url = pg.url().replace(f"{pg.user}@", f"{pg.user}:{secret}-url@")
    d2 = convd_factory(pg, env={"DATABASE_URL": url})
    with d2.client() as c:
        add(c, uid())
        assert secret not in repr(c.call("stats"))
    d.stop()
    d2.stop()
    assert secret not in d.log() + d2.log()


# ------------------------------------------------------------ environment

@pytest.fixture(scope="module")
def dbs(schema):
    """Two more set-up databases in the module's cluster."""
    for name in ("convd_b", "convd_url"):
        schema.createdb(name)
        convdtest.setup_schema(schema, name)
    return schema


def test_db_host_beats_file(dbs, convd_factory):
    d = convd_factory(dbs, extra={"database": {
        "host": "/nonexistent/convd-test", "port": 1, "user": "nobody_here"}},
        env={"DB_HOST": dbs.sockdir, "DB_PORT": str(dbs.port),
             "DB_USER": dbs.user})
    user = uid()
    with d.client() as c:
        add(c, user)
    assert rows_in(dbs, "convd", user) == 1


def test_db_name_beats_file(dbs, convd_factory):
    d = convd_factory(dbs, env={"DB_NAME": "convd_b"})   # file: convd
    user = uid()
    with d.client() as c:
        add(c, user)
        assert c.call("get_conversation_count", user) == 1
    assert rows_in(dbs, "convd_b", user) == 1
    assert rows_in(dbs, "convd", user) == 0


def test_database_url_beats_db_vars_and_file(dbs, convd_factory):
    d = convd_factory(dbs, extra={"database": {"host": "/nonexistent/x"}},
                      env={"DATABASE_URL": dbs.url("convd_url"),
                           "DB_NAME": "convd_b", "DB_HOST": "/nonexistent/y"})
    user = uid()
    with d.client() as c:
        add(c, user)
    assert rows_in(dbs, "convd_url", user) == 1
    assert rows_in(dbs, "convd_b", user) == 0
    assert rows_in(dbs, "convd", user) == 0


def test_file_url_used_without_environment(dbs, convd_factory):
    d = convd_factory(dbs, extra={"database": {"url": dbs.url("convd_b")}})
    user = uid()
    with d.client() as c:
        add(c, user)
    assert rows_in(dbs, "convd_b", user) == 1
    assert rows_in(dbs, "convd", user) == 0


# -------------------------------------------- passwords that need escaping

@pytest.fixture(scope="module")
def pwdb(schema):
    """A role with PASSWORD that must use scram-sha-256 over the socket."""
    schema.psql(f"CREATE ROLE {PWUSER} LOGIN PASSWORD {q(PASSWORD)}")
    schema.psql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {PWUSER}; "
                f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {PWUSER}")
    schema.hba_prepend(f"local all {PWUSER} scram-sha-256")
    # The password really is needed now.
    r = subprocess.run([schema.bin("psql"), "-w", "-h", schema.sockdir, "-p",
                        str(schema.port), "-U", PWUSER, "-d", schema.dbname,
                        "-c", "SELECT 1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, PGPASSWORD=""))
    assert r.returncode != 0, "pg_hba.conf change not in effect"
    return schema


def _works_as_pwuser(pg, d):
    user = uid("pw")
    with d.client() as c:
        r = add(c, user, content="secret-ok")
    assert pg.psql(f"SELECT content FROM {HIST} WHERE id = {r['id']}") == \
        "secret-ok"
    assert PASSWORD not in d.log()


def test_password_from_db_password(pwdb, convd_factory):
    d = convd_factory(pwdb, extra={"database": {"user": PWUSER}},
                      env={"DB_PASSWORD": PASSWORD})
    _works_as_pwuser(pwdb, d)


def test_password_from_config_file(pwdb, convd_factory):
    d = convd_factory(pwdb, extra={"database": {
        "user": PWUSER, "password": '"' + PASSWORD + '"'}})
    _works_as_pwuser(pwdb, d)


def test_password_from_database_url(pwdb, convd_factory):
    url = (f"postgresql://{PWUSER}:{urllib.parse.quote(PASSWORD, safe='')}"
           f"@/{pwdb.dbname}?host={pwdb.sockdir}&port={pwdb.port}")
    d = convd_factory(pwdb, env={"DATABASE_URL": url})
    _works_as_pwuser(pwdb, d)


def test_password_file(pwdb, convd_factory, tmp_path):
    pwfile = tmp_path / "db.password"
    pwfile.write_text(PASSWORD)
    os.chmod(pwfile, 0o600)
    d = convd_factory(pwdb, extra={"database": {
        "user": PWUSER, "password_file": str(pwfile)}})
    _works_as_pwuser(pwdb, d)


def test_password_file_readable_by_others_refused(pwdb, convd_factory,
                                                  tmp_path):
    pwfile = tmp_path / "db.password"
    pwfile.write_text(PASSWORD)
    os.chmod(pwfile, 0o644)
    d = convd_factory(pwdb, extra={"database": {
        "user": PWUSER, "password_file": str(pwfile)}}, start=False)
    d.start(wait=False)
    try:
        status = d.wait_exit(scaled(15))
    except subprocess.TimeoutExpired:
        raise AssertionError("convd started with a world-readable "
                             "password_file:\n" + d.log())
    assert status != 0
    log = d.log()
    assert str(pwfile) in log, log
    assert PASSWORD not in log


def test_wrong_password_fails(pwdb, convd_factory):
    d = convd_factory(pwdb, extra={"database": {"user": PWUSER},
                                   "pool": {"timeout": 2}},
                      env={"DB_PASSWORD": PASSWORD + "-wrong"})
    with d.client(timeout=scaled(30)) as c:
        with pytest.raises(RpcError) as ei:
            add(c, uid())
        assert ei.value.code in ("unavailable", "timeout"), ei.value
    assert PASSWORD not in d.log()


# ------------------------------------------------------ start-up and stop

def test_starts_without_database_and_serves_once_it_is_up(pg_factory,
                                                          convd_factory):
    own = pg_factory()
    own.stop("fast")
    d = convd_factory(own, extra={"pool": {"size": 2, "max_overflow": 0,
                                           "timeout": 2}})
    user = uid()
    with d.client(timeout=scaled(30)) as c:
        assert c.call("ping") == "pong"
        with pytest.raises(RpcError) as ei:
            add(c, user, "too early")
        assert ei.value.code in ("unavailable", "timeout"), ei.value
        assert c.call("ping") == "pong"
        own.start()

        def works():
            try:
                return add(c, user, "in time")
            except RpcError as e:
                assert e.code in ("unavailable", "timeout"), e
                return None
        wait_until(works, timeout=scaled(40), interval=0.2,
                   what="the database")
        assert c.call("get_conversation_count", user) == 1
        # health catches up within its retry interval.
        wait_until(lambda: c.call("health")["ok"] is True,
                   timeout=scaled(10),
                   what="health to report ok")
    assert own.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                    f"{q(user)}") == "in time"


def test_sigterm_exits_0(schema, convd_factory):
    d = convd_factory(schema)
    user = uid()
    idle = Client(d.socket)
    try:
        with d.client() as c:
            for i in range(5):
                add(c, user, f"m{i}")
        assert idle.call("ping") == "pong"
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait_exit(scaled(15)) == 0, d.log()
        assert time.monotonic() - t0 < scaled(15)
        # The idle client was disconnected.
        idle.sock.settimeout(scaled(5))
        try:
            assert idle.recv() is None
        except ConnectionResetError:
            pass
    finally:
        idle.close()
    assert rows_in(schema, "convd", user) == 5
    assert d.log().strip(), "convd logged nothing to stderr"
