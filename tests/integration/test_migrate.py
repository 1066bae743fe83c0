"""`convctl db`: the migration engine against a real PostgreSQL.

Every test gets its own database in the module's private cluster (and, when
it edits revisions, its own copy of the migrations directory), so the tests
are independent of each other and of their order.
"""

import itertools
import json
import os
import shutil
import subprocess
import time

import pytest

import convdtest

for _k in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
           "DB_PASSWORD"):
    os.environ.pop(_k, None)

R1 = "3f9c2a7d41e0"     # the conversation tables
R1B = "b8e15d6c0a93"    # their indexes
R1C = "5a1e0c2f7b90"    # idempotency keys
R1D = "7c3d9e1a2b45"    # conversations (SCHEMA_REQUIRED_REVISION)
R2 = "9e4f0a6b3c18"     # message search: head
LOCK_KEY = 0x636F6E7664000001
CHECK_QUERY = ("SELECT count(*) FILTER (WHERE revision = '%s' AND NOT dirty),"
               " count(*) FILTER (WHERE dirty) FROM convd_schema_history")
_seq = itertools.count()


def write_rev(directory, rid, parents="", message="", up="", down="",
              transactional=True, name=None):
    text = f"-- revision: {rid}\n"
    if parents:
        text += f"-- parents: {parents}\n"
    text += f"-- message: {message or 'revision ' + rid}\n"
    if not transactional:
        text += "-- transactional: no\n"
    text += f"\n-- +up\n{up}\n-- +down\n{down}\n"
    path = os.path.join(directory, name or f"{rid}.sql")
    with open(path, "w") as f:
        f.write(text)
    return path


class DB:
    """A fresh database of the module's cluster and a config naming it."""

    def __init__(self, pg, tmp, migrations=None, extra=None):
        self.pg = pg
        self.name = f"mig{next(_seq)}"
        pg.createdb(self.name)
        self.dir = migrations or convdtest.MIGRATIONS
        sections = {
            "database": {"host": pg.sockdir, "port": pg.port,
                         "name": self.name, "user": pg.user},
            "migrations": {"directory": self.dir},
        }
        for sec, kv in (extra or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.conf = convdtest.write_config(
            os.path.join(str(tmp), self.name + ".conf"), sections)

    def db(self, *args):
        return convdtest.convctl("db", *args, config=self.conf)

    def ok(self, *args):
        r = self.db(*args)
        assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout}{r.stderr}"
        return r

    def fails(self, *args, code=1):
        r = self.db(*args)
        assert r.returncode == code, \
            f"{args}: {r.returncode} != {code}\n{r.stdout}{r.stderr}"
        return r

    def sql(self, q):
        return self.pg.psql(q, db=self.name)

    def returning(self, q):
        """The value of INSERT ... RETURNING (psql adds the command tag)."""
        return self.sql(q).splitlines()[0]

    def tables(self):
        return set(self.sql(
            "SELECT relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE nspname = 'public'"
            " AND relkind = 'r'").split())

    def indexes(self):
        return set(self.sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
        ).split())

    def applied(self):
        return self.sql("SELECT revision FROM convd_schema_history"
                        " WHERE NOT dirty ORDER BY revision").split()

    def columns(self, table):
        return self.sql(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) ||"
            " CASE WHEN attnotnull THEN ' not null' ELSE '' END"
            f" FROM pg_attribute WHERE attrelid = '{table}'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attname"
        ).splitlines()


@pytest.fixture
def mkdb(pg, tmp_path):
    def make(migrations=None, extra=None):
        return DB(pg, tmp_path, migrations, extra)
    return make


@pytest.fixture
def migdir(tmp_path):
    """A private copy of the product's migrations directory."""
    d = tmp_path / "migrations"
    shutil.copytree(convdtest.MIGRATIONS, d,
                    ignore=shutil.ignore_patterns("*~", ".*"))
    return str(d)


def data_rows(d):
    d.sql("INSERT INTO user_thread_table (user_id, thread_id)"
          " VALUES ('u1', 't1'), ('u2', 't2')")
    d.sql("INSERT INTO simple_conversation_history"
          " (user_id, model_provider, role, content)"
          " SELECT 'u' || (i % 3), 'anthropic', 'user', 'm' || i"
          " FROM generate_series(1, 20) i")


# ------------------------------------------------------------------ setup

def test_setup_new_database_and_idempotent(mkdb):
    d = mkdb()
    r = d.ok("setup")
    assert "a new database" in r.stdout
    assert {"user_thread_table", "simple_conversation_history",
            "convd_schema_history"} <= d.tables()
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    assert {"simple_conversation_history_conversation_idx",
            "simple_conversation_history_created_at_idx"} <= d.indexes()
    # the columns convd's queries rely on
    assert d.columns("user_thread_table") == [
        "created_at timestamp with time zone not null",
        "platform character varying(50) not null",
        "thread_id character varying(255) not null",
        "user_id character varying(255) not null"]
    assert "id bigint not null" in d.columns("simple_conversation_history")
    r = d.ok("setup")
    assert "managed by convctl db" in r.stdout and "at head" in r.stdout
    d.ok("check")
    d.ok("diff")            # head is exactly the schema model
    st = json.loads(d.ok("status", "--json").stdout)
    assert st["at_head"] and st["pending"] == 0 and st["problems"] == []
    assert [x["state"] for x in st["revisions"]] == ["applied"] * 5
    h = json.loads(d.ok("history", "--json").stdout)["revisions"]
    assert h[0]["revision"] == R2 and h[0]["applied_by"].startswith("postgres")
    assert h[0]["duration_ms"] >= 0 and h[0]["applied_at"].endswith("Z")
    assert json.loads(d.ok("current", "--json").stdout)["current"] == [R2]
    # the query convd runs at start-up
    assert d.sql(CHECK_QUERY % R2) == "1|0"


def test_check_reports_and_fails(mkdb):
    d = mkdb()
    r = d.fails("check")
    assert "no history table" in r.stdout and "check:      FAILED" in r.stdout
    d.ok("upgrade", R1)
    c = json.loads(d.fails("check", "--json").stdout)
    assert c["ok"] is False and c["connection"] is True
    assert c["pending"] == 4 and c["current"] == [R1]
    assert any("pending" in p for p in c["problems"])
    assert "user_thread_table" in " ".join(c["tables"])
    assert c["server_version"].startswith("15")
    d.ok("upgrade")
    assert json.loads(d.ok("check", "--json").stdout)["ok"] is True


def test_connection_failure_is_exit_3(pg, tmp_path):
    conf = convdtest.write_config(str(tmp_path / "bad.conf"), {
        "database": {"host": str(tmp_path), "port": 1, "name": "x",
                     "user": "postgres", "connect_timeout": 2},
        "migrations": {"directory": convdtest.MIGRATIONS}})
    for cmd in ("check", "status", "upgrade", "setup"):
        r = convdtest.convctl("db", cmd, config=conf)
        assert r.returncode == 3, (cmd, r.stdout, r.stderr)
        assert "cannot connect" in r.stderr


def test_usage_errors(mkdb):
    d = mkdb()
    d.fails("frobnicate", code=2)
    d.fails("downgrade", code=2)
    d.fails("upgrade", "--frob", code=2)
    d.fails("status", "--sql", code=2)
    d.fails("upgrade", "nosuchrev", code=2)
    d.fails("upgrade", "--sql", "--try", code=2)
    d.fails("rollback", "zero", code=2)
    d.fails("migrate", code=2)                  # no message
    assert "usage" in convdtest.convctl("db", "help").stdout


# ------------------------------------------------------- round trips

def test_round_trips_with_data(mkdb):
    d = mkdb()
    d.ok("setup")
    data_rows(d)
    # base -> head -> base -> head: destructive downgrades need the flag
    r = d.fails("downgrade", "base")
    assert "drops a table" in r.stderr and "--allow-destructive" in r.stderr
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    d.ok("downgrade", "base", "--allow-destructive")
    assert "simple_conversation_history" not in d.tables()
    assert d.applied() == []
    d.ok("upgrade")
    data_rows(d)
    d.ok("diff")
    d.ok("downgrade", "base", "--allow-destructive")
    d.ok("upgrade", "head")
    data_rows(d)
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    # revisions that keep data go back and forth without the flag (the
    # idempotency keys are data: dropping them needs it)
    d.ok("rollback")                            # R2: indexes only
    d.fails("rollback")
    d.ok("rollback", "--allow-destructive")
    d.ok("rollback", "--allow-destructive")
    d.ok("rollback")
    assert "simple_conversation_history_recent_idx" not in d.indexes()
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    d.ok("upgrade")
    d.ok("diff")
    assert d.sql(CHECK_QUERY % R2) == "1|0"


def test_every_target_form(mkdb, migdir):
    write_rev(migdir, "c0ffee000001", R2, "third", "CREATE TABLE t3 (a int);",
              "DROP TABLE t3;")
    write_rev(migdir, "c0ffee000002", "c0ffee000001", "fourth",
              "CREATE TABLE t4 (a int);", "DROP TABLE t4;")
    d = mkdb(migdir)
    r = d.ok("upgrade", "+1")
    assert d.applied() == [R1]
    d.ok("upgrade", R2[:4])                     # unique prefix
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    r = d.fails("upgrade", "c0ffee", code=2)    # ambiguous prefix
    assert "ambiguous" in r.stderr and "c0ffee000001" in r.stderr
    d.ok("upgrade", "c0ffee000001")             # full id
    d.ok("upgrade", "+1")
    assert "t4" in d.tables()
    r = d.ok("upgrade", "head")
    assert "nothing to do" in r.stdout
    d.ok("downgrade", "-2", "--allow-destructive")
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    d.ok("upgrade", "heads")
    d.ok("downgrade", R2, "--allow-destructive")  # to a revision
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    d.fails("downgrade", "+1", code=1)
    d.fails("upgrade", "-1", code=1)
    r = d.fails("upgrade", "+5")
    assert "only 2 revisions pending" in r.stderr
    d.ok("rollback", "5", "--allow-destructive")
    assert d.applied() == []
    d.ok("upgrade", "c0ffee000002")
    d.ok("downgrade", "base", "--allow-destructive")
    assert d.applied() == []
    assert "t3" not in d.tables()


def test_branches_and_merge(mkdb, migdir):
    write_rev(migdir, "aaaa00000001", R2, "branch a",
              "CREATE TABLE ta (a int);", "DROP TABLE ta;")
    write_rev(migdir, "bbbb00000001", R2, "branch b",
              "CREATE TABLE tb (b int);", "DROP TABLE tb;")
    d = mkdb(migdir)
    heads = d.ok("heads").stdout
    assert "aaaa00000001" in heads and "bbbb00000001" in heads
    r = d.fails("upgrade")
    assert "2 heads" in r.stderr
    assert "aaaa00000001" in r.stderr and "bbbb00000001" in r.stderr
    assert d.tables() == set()
    d.ok("upgrade", "aaaa")                     # one branch
    assert "ta" in d.tables() and "tb" not in d.tables()
    d.ok("upgrade", "heads")
    assert {"ta", "tb"} <= d.tables()
    cur = json.loads(d.ok("current", "--json").stdout)["current"]
    assert sorted(cur) == ["aaaa00000001", "bbbb00000001"]
    r = d.fails("migrate", "-m", "on two heads")
    assert "merge them first" in r.stderr
    r = d.fails("merge", R1, "aaaa", "-m", "no")
    assert "nothing to merge" in r.stderr
    r = d.ok("merge", "aaaa", "bbbb", "-m", "join a and b")
    path = r.stdout.split(" in ")[-1].strip()
    assert os.path.exists(path) and path.endswith("_join_a_and_b.sql")
    heads = json.loads(d.ok("heads", "--json").stdout)["heads"]
    assert len(heads) == 1 and heads[0]["parents"] == ["aaaa00000001",
                                                       "bbbb00000001"]
    merge = heads[0]["revision"]
    d.ok("upgrade")
    assert merge in d.applied()
    # down to one branch's revision reverts its descendants: the merge
    d.ok("downgrade", "aaaa")
    assert merge not in d.applied() and {"ta", "tb"} <= d.tables()
    assert sorted(json.loads(d.ok("current", "--json").stdout)["current"]) \
        == ["aaaa00000001", "bbbb00000001"]
    d.ok("downgrade", R2, "--allow-destructive")
    assert not {"ta", "tb"} & d.tables()
    d.ok("upgrade")
    assert {"ta", "tb"} <= d.tables()
    d.ok("verify")


def test_cycle_and_broken_files(mkdb, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    write_rev(str(bad), "aaaa", "cccc", up="SELECT 1;")
    write_rev(str(bad), "bbbb", "aaaa", up="SELECT 1;")
    write_rev(str(bad), "cccc", "bbbb", up="SELECT 1;")
    d = mkdb(str(bad))
    r = d.fails("verify", "--offline")
    assert "cycle" in r.stderr
    d.fails("upgrade")
    (bad / "aaaa.sql").write_text("-- revision: aaaa\n-- parent: x\n"
                                  "-- +up\n-- +down\n")
    r = d.fails("heads")
    assert "unknown header 'parent:'" in r.stderr


# ----------------------------------------------------------- safety

def test_concurrent_upgrades_apply_once(mkdb, migdir):
    write_rev(migdir, "510e00000001", R2, "slow",
              "CREATE TABLE race_log (n int);\n"
              "INSERT INTO race_log VALUES (1);\n"
              "SELECT pg_sleep(1.5);", "DROP TABLE race_log;")
    d = mkdb(migdir)
    argv = [convdtest.CONVCTL, "-c", d.conf, "db", "upgrade"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    both = "".join(o + e for o, e in outs)
    assert both.count("applied 510e00000001") == 1
    assert "nothing to do" in both
    assert "holds the migration lock" in both
    assert d.sql("SELECT count(*) FROM race_log") == "1"
    assert d.sql("SELECT count(*) FROM convd_schema_history") == "6"


def test_lock_wait_is_bounded(mkdb, pg):
    """--lock-timeout 1: convctl gives up on a migration lock that another
    session holds for good (until it is ended), saying who holds it; it
    gave up on its own, while the lock was still held, and changed
    nothing.  (Not a wall-clock bound: the holder never lets go.)"""
    d = mkdb()
    app = "convd-test-lock-holder"
    holder = pg.background_psql(f"SELECT pg_advisory_lock({LOCK_KEY}); "
                                "SELECT pg_sleep(600)", app, db=d.name)
    held = ("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a"
            " USING (pid) WHERE l.locktype = 'advisory' AND l.granted"
            f" AND a.application_name = '{app}'")
    try:
        convdtest.wait_until(lambda: d.sql(held) == "1",
                             timeout=convdtest.scaled(10),
                             what="the lock holder")
        t0 = time.monotonic()
        r = d.fails("setup", "--lock-timeout", "1")
        # it waited (a lower bound: a busy machine only makes it longer)
        assert time.monotonic() - t0 >= 0.9
        assert "gave up after 1 s" in r.stderr and "pid" in r.stderr
        assert "convd_schema_history" not in d.tables()
        # the holder still holds the lock: convctl did not wait it out
        assert d.sql(held) == "1"
        assert holder.poll() is None
    finally:
        pg.terminate_app(app)
        holder.wait(timeout=20)
    d.ok("setup", "--lock-timeout", "5")


def test_edited_applied_revision(mkdb, migdir):
    d = mkdb(migdir)
    d.ok("setup")
    path = os.path.join(migdir, "b8e15d6c0a93_history_indexes.sql")
    text = open(path).read()
    # the message is not part of the checksum
    open(path, "w").write(text.replace("-- message: indexes",
                                       "-- message: Indexes"))
    d.ok("status")
    d.ok("verify")
    open(path, "w").write(text.replace("(created_at);",
                                       "(created_at DESC);"))
    r = d.fails("status")
    assert "changed since it was applied" in r.stdout
    assert json.loads(d.fails("status", "--json").stdout)["revisions"][1][
        "state"] == "changed"
    r = d.fails("verify")
    assert "changed since it was applied" in r.stdout
    d.fails("check")
    r = d.fails("upgrade")
    assert "must not change" in r.stderr and "--accept-changed" in r.stderr
    d.fails("downgrade", "base", "--allow-destructive")
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    r = d.ok("upgrade", "--accept-changed")
    assert "accepted the changed file of revision " + R1B in r.stdout
    d.ok("status")
    assert "accepted" in d.sql(f"SELECT note FROM convd_schema_history"
                               f" WHERE revision = '{R1B}'")


def test_failing_revision_leaves_nothing_half_applied(mkdb, migdir):
    write_rev(migdir, "f00d00000001", R2, "good",
              "CREATE TABLE good1 (a int);", "DROP TABLE good1;")
    write_rev(migdir, "f00d00000002", "f00d00000001", "bad",
              "CREATE TABLE half (a int);\nINSERT INTO half VALUES (1);\n"
              "SELECT 1 / 0;", "DROP TABLE half;")
    write_rev(migdir, "f00d00000003", "f00d00000002", "after",
              "CREATE TABLE after3 (a int);", "DROP TABLE after3;")
    d = mkdb(migdir)
    # a rehearsal stops before a non-transactional revision (R2's
    # CREATE INDEX CONCURRENTLY): rehearse from there
    r = d.fails("upgrade", "--try")
    assert R1C + " is non-transactional" in r.stderr
    assert "cannot tell" in r.stderr
    assert "convd_schema_history" not in d.tables()
    d.ok("upgrade", R2)
    r = d.fails("upgrade", "--try")
    assert "would fail" in r.stderr and "division by zero" in r.stderr
    assert "good1" not in d.tables()
    d.ok("downgrade", "base", "--allow-destructive")
    r = d.fails("setup")
    assert "f00d00000002 failed" in r.stderr
    assert "division by zero" in r.stderr
    assert "f00d00000002.sql:" in r.stderr       # file and line
    assert "6 revisions before f00d00000002 are done" in r.stderr
    tables = d.tables()
    assert "good1" in tables and "half" not in tables and "after3" not in tables
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2, "f00d00000001"])
    assert d.sql(CHECK_QUERY % R2) == "1|0"


def test_transaction_control_in_a_revision_is_refused(mkdb, migdir):
    write_rev(migdir, "7c0000000001", R2, "own transaction",
              "BEGIN;\nCREATE TABLE own (a int);\nCOMMIT;", "DROP TABLE own;")
    d = mkdb(migdir)
    r = d.fails("verify", "--offline")
    assert "begins or ends a transaction" in r.stdout
    r = d.fails("setup")
    assert "7c0000000001.sql:" in r.stderr and "transactional: no" in r.stderr
    assert "own" not in d.tables() and d.applied() == sorted([R1, R1B, R1C, R1D, R2])


def test_try_rehearses_and_rolls_back(mkdb, migdir):
    write_rev(migdir, "7e57000000a1", R2, "add a column",
              "ALTER TABLE user_thread_table ADD COLUMN note text;",
              "ALTER TABLE user_thread_table DROP COLUMN note;")
    d = mkdb(migdir)
    d.ok("upgrade", R2)
    r = d.ok("upgrade", "--try")
    assert "would apply 7e57000000a1" in r.stdout and "rolled back" in r.stdout
    assert not any(c.startswith("note") for c in d.columns("user_thread_table"))
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])


def test_nontransactional_revision_and_dirty_mark(mkdb, migdir):
    write_rev(migdir, "c1c1c1c1c1c1", R2, "concurrent index",
              "CREATE INDEX CONCURRENTLY uth_thread_idx"
              " ON user_thread_table (thread_id);",
              "DROP INDEX CONCURRENTLY uth_thread_idx;", transactional=False)
    write_rev(migdir, "d1d1d1d1d1d1", "c1c1c1c1c1c1", "fails half-way",
              "CREATE INDEX CONCURRENTLY uth_created_idx"
              " ON user_thread_table (created_at);\n"
              "CREATE INDEX CONCURRENTLY broken_idx"
              " ON user_thread_table (no_such_column);",
              "DROP INDEX CONCURRENTLY IF EXISTS uth_created_idx;",
              transactional=False)
    d = mkdb(migdir)
    r = d.fails("setup")
    assert "applied c1c1c1c1c1c1" in r.stdout
    assert "uth_thread_idx" in d.indexes()
    assert "marked dirty" in r.stderr and "resolve" in r.stderr
    assert d.sql("SELECT dirty FROM convd_schema_history"
                 " WHERE revision = 'd1d1d1d1d1d1'") == "t"
    assert "uth_created_idx" in d.indexes()     # the first statement ran
    assert d.sql(CHECK_QUERY % R2) == "1|1"     # convd sees the dirty mark
    r = d.fails("status")
    assert "dirty" in r.stdout
    r = d.fails("upgrade")
    assert "is dirty" in r.stderr and "resolve d1d1d1d1d1d1" in r.stderr
    d.fails("downgrade", "-1")
    # repaired by hand: the half-made index goes, the file is fixed
    d.sql("DROP INDEX uth_created_idx")
    path = os.path.join(migdir, "d1d1d1d1d1d1.sql")
    text = open(path).read()
    open(path, "w").write(text.replace("no_such_column", "platform"))
    d.fails("resolve", "d1d1", code=2)          # neither flag
    d.ok("resolve", "d1d1", "--rolled-back")
    d.fails("resolve", "d1d1", "--rolled-back")  # nothing dirty now
    d.ok("upgrade")
    assert {"uth_created_idx", "broken_idx"} <= d.indexes()
    d.ok("downgrade", R2)
    assert "uth_thread_idx" not in d.indexes()
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])


def test_destructive_revisions_need_the_flag(mkdb, migdir):
    write_rev(migdir, "de57000000a1", R2, "drop a column",
              "ALTER TABLE simple_conversation_history DROP role;",
              "ALTER TABLE simple_conversation_history"
              " ADD COLUMN role varchar(20);")
    d = mkdb(migdir)
    r = d.ok("verify")
    assert "drops a column" in r.stdout and "de57000000a1" in r.stdout
    d.ok("upgrade", R2)
    r = d.fails("upgrade")
    assert "drops a column" in r.stderr and "--allow-destructive" in r.stderr
    assert any(c.startswith("role ") for c in
               d.columns("simple_conversation_history"))
    assert "destructive" in d.ok("upgrade", "--sql").stdout.lower()
    d.ok("upgrade", "--allow-destructive")
    assert not any(c.startswith("role ") for c in
                   d.columns("simple_conversation_history"))


def test_narrowing_is_destructive_widening_is_not(mkdb, migdir):
    write_rev(migdir, "a1de00000001", R2, "wider",
              "ALTER TABLE user_thread_table"
              " ALTER COLUMN thread_id TYPE varchar(500);",
              "ALTER TABLE user_thread_table"
              " ALTER COLUMN thread_id TYPE varchar(255);")
    write_rev(migdir, "a1de00000002", "a1de00000001", "narrower",
              "DO $$ BEGIN EXECUTE 'ALTER TABLE user_thread_table"
              " ALTER COLUMN platform TYPE varchar(20)'; END $$;",
              "ALTER TABLE user_thread_table"
              " ALTER COLUMN platform TYPE varchar(50);")
    d = mkdb(migdir)
    d.ok("upgrade", "a1de00000001")
    assert "thread_id character varying(500) not null" in \
        d.columns("user_thread_table")
    # hidden in a DO block: the static scan cannot see it, the guard does
    r = d.fails("upgrade")
    assert "narrows a column type" in r.stderr
    assert "platform character varying(50) not null" in \
        d.columns("user_thread_table")
    d.ok("upgrade", "--allow-destructive")
    assert "platform character varying(20) not null" in \
        d.columns("user_thread_table")
    # and back: the first down widens, the second narrows
    d.ok("rollback")
    r = d.fails("rollback")
    assert "narrows" in r.stderr


def test_reset(mkdb, pg, tmp_path):
    d = mkdb()
    d.ok("setup")
    data_rows(d)
    r = d.fails("reset")
    assert "--yes" in r.stderr
    r = d.fails("reset", "--yes")
    assert "allow_reset" in r.stderr
    assert d.sql("SELECT count(*) FROM user_thread_table") == "2"
    dev = DB.__new__(DB)
    dev.__dict__.update(d.__dict__)
    dev.conf = convdtest.write_config(str(tmp_path / "dev.conf"), {
        "database": {"host": pg.sockdir, "port": pg.port, "name": d.name,
                     "user": pg.user},
        "migrations": {"directory": convdtest.MIGRATIONS,
                       "allow_reset": True}})
    r = dev.ok("reset", "--yes")
    assert "reverted " + R1 in r.stdout and "applied " + R2 in r.stdout
    assert d.sql("SELECT count(*) FROM user_thread_table") == "0"
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])


def test_stamp_and_sql_output(mkdb):
    d = mkdb()
    r = d.ok("upgrade", "--sql")
    assert "CREATE TABLE IF NOT EXISTS" in r.stdout
    assert "CREATE TABLE user_thread_table" in r.stdout
    assert "INSERT INTO" in r.stdout and "COMMIT;" in r.stdout
    assert d.tables() == set()                  # --sql changes nothing
    r = d.ok("stamp", R1, "--sql")
    assert f"'{R1}'" in r.stdout and "'stamped'" in r.stdout
    assert d.tables() == set()
    d.ok("stamp", R1)                           # record without running
    assert d.applied() == [R1]
    assert d.tables() == {"convd_schema_history"}
    assert d.sql("SELECT kind FROM convd_schema_history") == "stamped"
    d.ok("stamp", "base")
    assert d.applied() == []
    d.ok("setup")
    r = d.ok("downgrade", "base", "--sql")
    assert "DROP TABLE user_thread_table" in r.stdout
    assert "DELETE FROM" in r.stdout
    assert "user_thread_table" in d.tables()
    r = d.ok("stamp", "head")
    assert "nothing to do" in r.stdout


def test_backup_before_changing_data(mkdb, migdir, tmp_path, pg):
    write_rev(migdir, "bac000000001", R2, "one more",
              "CREATE TABLE extra (a int);", "DROP TABLE extra;")
    d = mkdb(migdir)
    dump = str(tmp_path / "before.dump")
    r = d.ok("upgrade", R2, "--backup", dump)
    assert "no data" in r.stdout and not os.path.exists(dump)
    data_rows(d)
    r = d.ok("upgrade", "--backup", dump)
    assert "written" in r.stdout and os.path.getsize(dump) > 0
    listing = subprocess.run([pg.bin("pg_restore"), "-l", dump],
                             stdout=subprocess.PIPE, text=True, check=True)
    assert "simple_conversation_history" in listing.stdout
    assert "extra" in d.tables()


# --------------------------------------------------------------- adoption

LEGACY_README = """
CREATE TABLE user_thread_table (
    user_id VARCHAR(255) PRIMARY KEY,
    thread_id VARCHAR(255),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE simple_conversation_history (
    id SERIAL PRIMARY KEY,
    user_id VARCHAR(255),
    model_provider VARCHAR(50),
    role VARCHAR(20),
    content TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_user_model_created
    ON simple_conversation_history (user_id, model_provider, created_at DESC);
"""

ALEMBIC_001 = """
ALTER TABLE user_thread_table ADD COLUMN platform VARCHAR(50) DEFAULT 'line';
UPDATE user_thread_table SET platform = 'line';
ALTER TABLE user_thread_table DROP CONSTRAINT user_thread_table_pkey;
ALTER TABLE user_thread_table ALTER COLUMN platform SET NOT NULL;
ALTER TABLE user_thread_table ADD PRIMARY KEY (user_id, platform);
ALTER TABLE simple_conversation_history
    ADD COLUMN platform VARCHAR(50) DEFAULT 'line';
DROP INDEX idx_user_model_created;
CREATE INDEX idx_user_platform ON simple_conversation_history (user_id, platform);
CREATE INDEX idx_user_platform_provider
    ON simple_conversation_history (user_id, platform, model_provider);
CREATE INDEX idx_created_at ON simple_conversation_history (created_at);
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO alembic_version VALUES ('001');
"""

LEGACY_DATA = r"""
INSERT INTO user_thread_table (user_id, thread_id, created_at) VALUES
  ('U1', 'thread_abc', '2024-03-01 12:00:00'),
  ('U''2', 'thread_"q"\x', '2024-03-02 23:59:59.123456');
INSERT INTO simple_conversation_history
    (user_id, model_provider, role, content, created_at)
SELECT 'U' || (i % 4), (ARRAY['anthropic', 'gemini', 'ollama'])[i % 3 + 1],
       CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
       'msg ' || i || E' it''s \\ "quoted" \u4e2d\u6587 \U0001F600\n2nd line',
       TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '37 minutes 1.5 seconds'
FROM generate_series(1, 300) i;
DELETE FROM simple_conversation_history WHERE id IN (7, 300);
"""

HISTORY_ROWS = ("SELECT id, user_id, model_provider, role, content,"
                " extract(epoch FROM {ts}) FROM simple_conversation_history"
                " ORDER BY id")
THREAD_ROWS = ("SELECT user_id, thread_id, extract(epoch FROM {ts})"
               " FROM user_thread_table ORDER BY user_id")
NAIVE = "created_at AT TIME ZONE 'UTC'"


def legacy(d, alembic):
    d.sql(LEGACY_README)
    d.sql(LEGACY_DATA)
    if alembic:
        d.sql(ALEMBIC_001)
    naive = {"ts": NAIVE}
    return d.sql(HISTORY_ROWS.format(**naive)), \
        d.sql(THREAD_ROWS.format(**naive))


def check_adopted(d, rows, threads):
    assert d.sql(HISTORY_ROWS.format(ts="created_at")) == rows
    assert d.sql(THREAD_ROWS.format(ts="created_at")) == threads
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "298"
    assert d.sql("SELECT DISTINCT platform FROM simple_conversation_history"
                 " UNION SELECT DISTINCT platform FROM user_thread_table"
                 ) == "line"
    assert d.applied() == sorted([R1, R1B, R1C, R1D, R2])
    assert d.sql(f"SELECT kind FROM convd_schema_history"
                 f" WHERE revision = '{R1}'") == "adopted"
    assert "alembic_version" not in d.tables()
    d.ok("diff")                # exactly the model
    d.ok("check")
    # new ids continue after the old ones; the key is (user_id, platform)
    new_id = d.returning("INSERT INTO simple_conversation_history"
                   " (user_id, model_provider, role, content)"
                   " VALUES ('U1', 'gemini', 'user', 'new') RETURNING id")
    assert int(new_id) > 300
    d.sql("INSERT INTO user_thread_table (user_id, platform, thread_id)"
          " VALUES ('U1', 'slack', 'other')")
    assert d.sql("SELECT count(*) FROM user_thread_table"
                 " WHERE user_id = 'U1'") == "2"
    assert d.sql(CHECK_QUERY % R2) == "1|0"


def test_adopt_readme_shape(mkdb):
    d = mkdb()
    rows, threads = legacy(d, alembic=False)
    assert len(rows.splitlines()) > 298           # multi-line contents
    r = d.ok("setup", "--sql")
    assert "README SQL" in r.stdout and "ADD COLUMN platform" in r.stdout
    assert "AT TIME ZONE 'UTC'" in r.stdout
    assert "convd_schema_history" not in d.tables()  # --sql changed nothing
    assert not any(c.startswith("platform") for c in
                   d.columns("user_thread_table"))
    r = d.fails("upgrade")                      # upgrade does not adopt
    assert "convctl db setup" in r.stderr
    # the rehearsal adopts and applies what it can, then stops before the
    # non-transactional head (R2) and says so: exit 1
    r = d.fails("setup", "--try")
    assert "would adopt" in r.stdout
    assert "found: the seed's tables as made from its README SQL" in r.stdout
    assert "every row is unchanged" in r.stdout
    assert "would adopt the database as revision " + R1 in r.stdout
    assert "would apply " + R1B in r.stdout
    assert "1 of 4 revisions would apply" in r.stdout
    assert R1C + " is non-transactional" in r.stderr
    assert "cannot tell" in r.stderr
    assert "convd_schema_history" not in d.tables()
    r = d.ok("setup")
    assert "found: the seed's tables as made from its README SQL" in r.stdout
    assert "idx_user_model_created" in r.stdout
    assert "every row is unchanged" in r.stdout
    assert "idx_user_model_created" not in d.indexes()
    check_adopted(d, rows, threads)
    # and the adopted database goes down and up like any other
    d.ok("rollback", "--allow-destructive")
    d.ok("upgrade")
    d.ok("diff")


def test_adopt_alembic_shape(mkdb):
    d = mkdb()
    rows, threads = legacy(d, alembic=True)
    r = d.fails("check", "--json")
    assert "Alembic, at revision '001'" in json.loads(r.stdout)["found"]
    r = d.ok("setup", "--sql")
    assert "DROP TABLE alembic_version" in r.stdout
    r = d.ok("setup")
    assert "Alembic, at revision '001'" in r.stdout
    assert "alembic_version dropped" in r.stdout
    assert not {"idx_user_platform", "idx_user_platform_provider",
                "idx_created_at"} & d.indexes()
    check_adopted(d, rows, threads)


def test_adoption_refuses_unknown_shapes(mkdb):
    d = mkdb()
    d.sql(LEGACY_README)
    d.sql("DROP TABLE user_thread_table")
    r = d.fails("setup")
    assert "only simple_conversation_history exists" in r.stderr
    assert "convd_schema_history" not in d.tables()

    # a column of the user's that convd's inserts could not fill
    d = mkdb()
    d.sql(LEGACY_README)
    d.sql("ALTER TABLE simple_conversation_history"
          " ADD COLUMN extra int NOT NULL")
    r = d.fails("setup")
    assert "simple_conversation_history.extra" in r.stderr and \
        "NOT NULL without a default" in r.stderr
    assert "stamp" not in r.stderr + r.stdout
    assert "convd_schema_history" not in d.tables()


def test_adoption_failure_changes_nothing(mkdb):
    d = mkdb()
    d.sql(LEGACY_README)
    d.sql("INSERT INTO user_thread_table (user_id) VALUES ('no thread')")
    r = d.fails("setup")
    assert "adoption failed" in r.stderr and "null values" in r.stderr
    assert "nothing was changed" in r.stderr
    assert "convd_schema_history" not in d.tables()
    assert not any(c.startswith("platform") for c in
                   d.columns("user_thread_table"))
    assert "idx_user_model_created" in d.indexes()
    # once the row is repaired, setup adopts
    d.sql("UPDATE user_thread_table SET thread_id = 'repaired'")
    d.ok("setup")
    d.ok("diff")


# ------------------------------------------------------------ autogenerate

MODEL_EXTRA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE SEQUENCE ticket_seq AS integer START WITH 100 INCREMENT BY 5;
CREATE TABLE app_user (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email       varchar(320) NOT NULL,
    score       numeric(10, 2) DEFAULT 0 CHECK (score >= 0),
    mood        mood NOT NULL DEFAULT 'calm',
    CONSTRAINT app_user_email_key UNIQUE (email)
);
CREATE TABLE app_note (
    id       bigserial PRIMARY KEY,
    user_id  bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    body     text NOT NULL,
    weight   numeric(6, 2)
);
CREATE INDEX app_note_body_lower_idx ON app_note (lower(body))
    WHERE body <> '';
CREATE UNIQUE INDEX app_note_user_id_idx ON app_note (user_id DESC, id);
ALTER TABLE user_thread_table ALTER COLUMN thread_id TYPE varchar(300);
ALTER TABLE user_thread_table ADD COLUMN label text DEFAULT 'x' NOT NULL;
ALTER TABLE simple_conversation_history ALTER COLUMN role SET DEFAULT 'user';
ALTER TABLE simple_conversation_history ALTER COLUMN content DROP NOT NULL;
"""

MODEL_MORE = """
ALTER TYPE mood ADD VALUE 'away' AFTER 'calm';
ALTER TABLE app_user DROP COLUMN score;
ALTER TABLE app_user ALTER COLUMN email TYPE varchar(100);
DROP INDEX app_note_body_lower_idx;
ALTER TABLE app_note ADD CONSTRAINT app_note_body_check
    CHECK (length(body) < 10000);
ALTER SEQUENCE ticket_seq INCREMENT BY 10;
ALTER TABLE app_note ALTER COLUMN weight TYPE numeric(8, 3);
ALTER TABLE app_user DROP CONSTRAINT app_user_email_key;
ALTER TABLE app_user ADD CONSTRAINT app_user_email_key UNIQUE (email, mood);
ALTER TABLE app_note DROP CONSTRAINT app_note_user_id_fkey;
ALTER TABLE app_note ADD CONSTRAINT app_note_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES app_user (id) ON DELETE RESTRICT;
"""


def test_autogenerate_each_kind_of_change(mkdb, migdir):
    model = os.path.join(migdir, "schema.sql")
    base_model = open(model).read()
    d = mkdb(migdir)
    d.ok("setup")
    data_rows(d)
    r = d.ok("migrate", "--autogenerate", "-m", "nothing")
    assert "no differences" in r.stdout

    # 1: new types, sequences, tables, columns, constraints and indexes
    open(model, "a").write(MODEL_EXTRA)
    r = d.fails("diff")
    for what in ("+ enum mood (calm, busy)", "+ sequence ticket_seq",
                 "+ table app_user", "+ table app_note",
                 "~ column user_thread_table.thread_id: type character "
                 "varying(255) -> character varying(300)",
                 "+ column user_thread_table.label text",
                 "~ column simple_conversation_history.role: default none"
                 " -> 'user'::character varying",
                 "~ column simple_conversation_history.content: NOT NULL"
                 " -> NULL"):
        assert what in r.stdout, (what, r.stdout)
    dj = json.loads(d.fails("diff", "--json").stdout)
    assert dj["drift"] and len(dj["differences"]) >= 8
    msg = "extras: it's \"quoted\", back\\slash, 中文 😀"
    r = d.ok("migrate", "--autogenerate", "-m", msg)
    rev1 = r.stdout.strip().split("created revision ")[1].split()[0]
    show = json.loads(d.ok("show", rev1, "--json").stdout)
    assert show["message"] == msg and show["parents"] == [R2]
    assert "CREATE TABLE app_note" in show["up"]
    assert "DROP TABLE app_user" in show["down"]
    d.ok("upgrade")
    d.ok("diff")                                # the database is the model
    # exercise what was created: identity, enum default, the FK, the index
    uid = d.returning("INSERT INTO app_user (email) VALUES ('a@b') RETURNING id")
    d.sql(f"INSERT INTO app_note (user_id, body) VALUES ({uid}, 'hello')")
    assert d.sql("SELECT mood FROM app_user") == "calm"
    assert d.sql("SELECT nextval('ticket_seq')") == "100"

    # 2: value added, column dropped, type narrowed, index and check
    open(model, "a").write(MODEL_MORE)
    r = d.ok("migrate", "--autogenerate", "-m", "second change")
    assert "destructive" in r.stderr
    assert "app_user.score" in r.stderr and "narrows" in r.stderr
    for what in ("~ enum mood: (calm, busy) -> (calm, away, busy)",
                 "- column app_user.score",
                 "~ column app_user.email: type character varying(320) ->"
                 " character varying(100)",
                 "- index app_note_body_lower_idx",
                 "+ check constraint app_note_body_check",
                 "~ sequence ticket_seq",
                 "~ column app_note.weight: type numeric(6,2) ->"
                 " numeric(8,3)",
                 "~ unique constraint app_user_email_key on app_user:"
                 " UNIQUE (email) -> UNIQUE (email, mood)",
                 "~ foreign key app_note_user_id_fkey"):
        assert what in r.stdout, (what, r.stdout)
    rev2 = r.stdout.strip().split("created revision ")[1].split()[0]
    assert json.loads(d.ok("show", rev2, "--json").stdout)["parents"] == \
        [rev1]
    r = d.fails("upgrade")
    assert "--allow-destructive" in r.stderr
    d.ok("upgrade", "--allow-destructive")
    d.ok("diff")
    assert d.sql("SELECT enum_range(NULL::mood)") == "{calm,away,busy}"
    # reversed: back to the first model, then to the product's
    d.ok("rollback", "--allow-destructive")
    open(model, "w").write(base_model + MODEL_EXTRA)
    d.ok("diff")
    assert d.sql("SELECT count(*) FROM app_note") == "1"
    d.ok("rollback", "--allow-destructive")
    open(model, "w").write(base_model)
    d.ok("diff")
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    # and forward again through both generated revisions
    d.ok("upgrade", "--allow-destructive")
    open(model, "w").write(base_model + MODEL_EXTRA + MODEL_MORE)
    d.ok("diff")


def test_autogenerate_needs_a_database_at_head(mkdb, migdir):
    d = mkdb(migdir)
    d.ok("upgrade", R1)
    r = d.fails("migrate", "--autogenerate", "-m", "x")
    assert "not at head" in r.stderr
    r = d.ok("migrate", "-m", "hand written")
    path = r.stdout.split(" in ")[-1].strip()
    assert os.path.basename(path).endswith("_hand_written.sql")
    assert f"-- parents: {R2}" in open(path).read()


def test_diff_reports_drift_and_sql(mkdb):
    d = mkdb()
    d.ok("setup")
    d.sql("ALTER TABLE simple_conversation_history ADD COLUMN token_count int;"
          " DROP INDEX simple_conversation_history_created_at_idx;"
          " CREATE TABLE stray (x int);")
    r = d.fails("diff", "--sql")
    assert "- column simple_conversation_history.token_count" in r.stdout
    assert "+ index simple_conversation_history_created_at_idx" in r.stdout
    assert "- table stray" in r.stdout
    assert "CREATE INDEX simple_conversation_history_created_at_idx" in r.stdout
    assert "DESTRUCTIVE" in r.stdout


def test_messages_with_quotes_backslashes_and_unicode(mkdb, migdir):
    d = mkdb(migdir)
    msg = "O'Reilly said \"hi\" \\o/ — 中文\tand a tab"
    r = d.ok("migrate", "-m", msg)
    rid = r.stdout.split("created revision ")[1].split()[0]
    d.ok("upgrade")
    assert d.sql(f"SELECT message FROM convd_schema_history"
                 f" WHERE revision = '{rid}'") == msg
    hist = json.loads(d.ok("history", "--json").stdout)["revisions"]
    assert hist[0]["message"] == msg
    assert "O'Reilly" in d.ok("history").stdout
    assert json.loads(d.ok("show", rid[:6], "--json").stdout)["message"] == msg
    r = d.fails("migrate", "-m", "bad \udcff", code=2)     # not UTF-8
    assert "UTF-8" in r.stderr
    d.ok("verify")
