"""`convctl db`: rehearsals, reset, offline SQL, branches (issue 13, points
6 to 10), against a real PostgreSQL and, where it says how things should
behave, the real Alembic (python3-alembic).

The helpers and fixtures are test_migrate's: a fresh database per test in
the module's private cluster, and a private copy of the migrations.  Where
the point is the engine and not the shipped head, a test uses `twodir`:
the first two shipped revisions only (R1 -> R1B, both transactional), so
that the revisions it adds, and the steps and counts it expects, are its
own and not those of the shipped non-transactional head R2.
"""

import json
import os
import shutil
import subprocess

import pytest

import convdtest
from test_migrate import (ALEMBIC_001, DB, LEGACY_DATA, LEGACY_README,  # noqa: F401
                          R1, R1B, R1C, R2, data_rows, migdir, mkdb, write_rev)

# A statement that fails only while the database's setting says so, so
# that a revision that applied once fails when it runs again.
FAIL_SWITCH = ("DO $$ BEGIN IF current_setting('convd_test.fail', true)"
               " = 'on' THEN RAISE EXCEPTION 'told to fail'; END IF;"
               " END $$;")


def switch(d, on):
    d.sql(f"ALTER DATABASE {d.name} SET convd_test.fail = "
          f"'{'on' if on else 'off'}'")


@pytest.fixture
def twodir(tmp_path):
    """A private migrations directory with the first two shipped
    revisions only: R1 -> R1B, both transactional, R1B the head."""
    d = tmp_path / "migrations"
    d.mkdir()
    for f in os.listdir(convdtest.MIGRATIONS):
        if f.startswith((R1 + "_", R1B + "_")) and f.endswith(".sql"):
            shutil.copy(os.path.join(convdtest.MIGRATIONS, f), str(d))
    assert len(os.listdir(str(d))) == 2
    return str(d)


def write_failing(migdir, rid, parent):
    """A revision that makes table extra, and fails while switched on."""
    write_rev(migdir, rid, parent, "fails when told to",
              "CREATE TABLE extra (x int);\n" + FAIL_SWITCH,
              "DROP TABLE extra;")


def reset_db(mkdb, migdir, pg, tmp_path):
    """A database at head with rows, that reset may run on, whose
    failing revision is switched on."""
    d = dev(mkdb(migdir), tmp_path, pg)
    d.ok("setup")
    data_rows(d)
    switch(d, True)
    return d


def dev(d, tmp_path, pg):
    """The same database with a configuration that allows reset."""
    x = DB.__new__(DB)
    x.__dict__.update(d.__dict__)
    x.conf = convdtest.write_config(str(tmp_path / f"{d.name}-dev.conf"), {
        "database": {"host": pg.sockdir, "port": pg.port, "name": d.name,
                     "user": pg.user},
        "migrations": {"directory": d.dir, "allow_reset": True}})
    return x


# ------------------------------------------------- 6: --try = the real run

def test_try_refuses_what_the_real_run_refuses(mkdb, twodir):
    write_rev(twodir, "de57000000b1", R1B, "drop a column",
              "ALTER TABLE simple_conversation_history DROP role;",
              "ALTER TABLE simple_conversation_history"
              " ADD COLUMN role varchar(20);")
    d = mkdb(twodir)
    d.ok("upgrade", R1B)
    real = d.fails("upgrade", "--try")
    assert "drops a column" in real.stderr
    assert "--allow-destructive" in real.stderr
    assert "would apply" not in real.stdout
    r = d.ok("upgrade", "--try", "--allow-destructive")
    assert "would apply de57000000b1" in r.stdout
    assert any(c.startswith("role ") for c in
               d.columns("simple_conversation_history"))
    assert d.applied() == sorted([R1, R1B])


def test_try_runs_the_guard(mkdb, migdir):
    # a narrowing hidden in a DO block: only the guard sees it
    write_rev(migdir, "a1de000000b2", R2, "narrower",
              "DO $$ BEGIN EXECUTE 'ALTER TABLE user_thread_table"
              " ALTER COLUMN platform TYPE varchar(20)'; END $$;",
              "ALTER TABLE user_thread_table"
              " ALTER COLUMN platform TYPE varchar(50);")
    d = mkdb(migdir)
    d.ok("upgrade", R2)
    real = d.fails("upgrade")
    tried = d.fails("upgrade", "--try")
    assert "narrows a column type" in real.stderr
    assert "narrows a column type" in tried.stderr
    assert "0 of 1 revision would apply" in tried.stdout
    d.ok("upgrade", "--try", "--allow-destructive")
    assert "platform character varying(50) not null" in \
        d.columns("user_thread_table")


def test_try_fails_before_a_nontransactional_revision(mkdb, twodir):
    write_rev(twodir, "c1c1000000b3", R1B, "concurrent index",
              "CREATE INDEX CONCURRENTLY uth_thread_idx"
              " ON user_thread_table (thread_id);",
              "DROP INDEX CONCURRENTLY uth_thread_idx;",
              transactional=False)
    write_rev(twodir, "c1c1000000b4", "c1c1000000b3", "a column",
              "ALTER TABLE user_thread_table ADD COLUMN note text;",
              "ALTER TABLE user_thread_table DROP COLUMN note;")
    d = mkdb(twodir)
    d.ok("upgrade", R1)
    r = d.fails("upgrade", "--try")
    assert "would apply " + R1B in r.stdout
    assert "1 of 3 revisions would apply" in r.stdout
    assert "c1c1000000b3 is non-transactional" in r.stderr
    assert "cannot tell" in r.stderr
    assert d.applied() == [R1]
    assert "uth_thread_idx" not in d.indexes()
    # the revisions it cannot run are still checked as the real run would
    write_rev(twodir, "c1c1000000b4", "c1c1000000b3", "a column",
              "ALTER TABLE user_thread_table ADD COLUMN note text;\nCOMMIT;",
              "ALTER TABLE user_thread_table DROP COLUMN note;")
    r = d.fails("upgrade", "--try")
    assert "must not begin or end a transaction" in r.stderr


def test_try_records_the_history_as_the_real_run(mkdb, twodir):
    # The real run makes the history table first and records each
    # revision in it: a revision that clashes with it fails there, and so
    # does the rehearsal.
    write_rev(twodir, "c1a5000000b9", R1B, "clashes with the history",
              "CREATE TABLE convd_schema_history (x int);", "")
    d = mkdb(twodir)
    tried = d.fails("upgrade", "--try")
    assert "already exists" in tried.stderr
    assert "2 of 3 revisions would apply" in tried.stdout
    assert "convd_schema_history" not in d.tables()
    real = d.fails("upgrade")
    assert "already exists" in real.stderr
    d.ok("upgrade", R1B, "--try")
    assert "convd_schema_history" in d.tables()     # the real run's


def test_try_runs_the_adoptions_checks(mkdb):
    # Something outside the adoption changes a row while it runs (an event
    # trigger, here): the real setup finds it by its check that every row
    # is unchanged and refuses; so must the rehearsal.
    d = mkdb()
    d.sql(LEGACY_README)
    d.sql(LEGACY_DATA)
    d.sql(ALEMBIC_001)
    d.sql("CREATE FUNCTION bump() RETURNS event_trigger LANGUAGE plpgsql"
          " AS $$ BEGIN IF tg_tag = 'ALTER TABLE' THEN"
          " UPDATE simple_conversation_history SET content = content || '!'"
          " WHERE id = 5; END IF; END $$")
    d.sql("CREATE EVENT TRIGGER bump ON ddl_command_end"
          " EXECUTE FUNCTION bump()")
    before = d.sql("SELECT md5(string_agg(content, ',' ORDER BY id))"
                   " FROM simple_conversation_history")
    real = d.fails("setup")
    assert "contents would change" in real.stderr
    tried = d.fails("setup", "--try")
    assert "adoption would fail" in tried.stderr
    assert "contents would change" in tried.stderr
    assert "convd_schema_history" not in d.tables()
    assert d.sql("SELECT md5(string_agg(content, ',' ORDER BY id))"
                 " FROM simple_conversation_history") == before
    d.sql("DROP EVENT TRIGGER bump")
    # against the shipped head the rehearsal adopts and applies what it
    # can, then stops before the non-transactional R2 and says so (exit 1)
    r = d.fails("setup", "--try")
    assert "would adopt the database as revision " + R1 in r.stdout
    assert "every row is unchanged" in r.stdout
    assert "would apply " + R1B in r.stdout
    assert "1 of 3 revisions would apply" in r.stdout
    assert R1C + " is non-transactional" in r.stderr
    assert "cannot tell" in r.stderr
    assert "adoption would fail" not in r.stderr
    assert "convd_schema_history" not in d.tables()
    d.ok("setup")


# ------------------------------------------------ 8: reset, all or nothing

def test_reset_is_one_transaction(mkdb, twodir, pg, tmp_path):
    write_failing(twodir, "f0f0000000b5", R1B)
    d = reset_db(mkdb, twodir, pg, tmp_path)
    r = d.fails("reset", "--yes")
    assert "reverted " + R1 in r.stdout       # ran, then rolled back
    assert "told to fail" in r.stderr
    assert "nothing was changed" in r.stderr
    # nothing lost: every row, every table and the whole history are there
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    assert d.sql("SELECT count(*) FROM user_thread_table") == "2"
    assert "extra" in d.tables()
    assert d.applied() == sorted([R1, R1B, "f0f0000000b5"])
    switch(d, False)
    r = d.ok("reset", "--yes")
    assert "in one transaction" in r.stdout
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "0"
    assert d.applied() == sorted([R1, R1B, "f0f0000000b5"])


def test_reset_with_a_nontransactional_revision_says_where(
        mkdb, twodir, pg, tmp_path):
    write_rev(twodir, "c1c1000000b6", R1B, "concurrent index",
              "CREATE INDEX CONCURRENTLY uth_thread_idx"
              " ON user_thread_table (thread_id);",
              "DROP INDEX CONCURRENTLY IF EXISTS uth_thread_idx;",
              transactional=False)
    write_failing(twodir, "f0f0000000b7", "c1c1000000b6")
    d = reset_db(mkdb, twodir, pg, tmp_path)
    r = d.fails("reset", "--yes")
    # down: f0f0 | c1c1 (alone) | R1B R1 + up: R1 R1B | c1c1 (alone) | f0f0
    assert "stopped at step 8 of 8, applying revision f0f0000000b7" \
        in r.stderr, r.stderr
    assert "the 7 steps before it (4 reverts, 3 applies) are committed" \
        in r.stderr
    assert "the database is now at c1c1000000b6" in r.stderr
    assert "run 'convctl db reset --yes' again" in r.stderr
    assert "extra" not in d.tables()
    assert d.applied() == sorted([R1, R1B, "c1c1000000b6"])
    switch(d, False)
    d.ok("reset", "--yes")
    assert d.applied() == sorted([R1, R1B, "c1c1000000b6", "f0f0000000b7"])
    assert "extra" in d.tables() and "uth_thread_idx" in d.indexes()
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "0"
    d.ok("check")


def test_reset_rolls_back_when_a_revision_cannot_run(
        mkdb, twodir, pg, tmp_path):
    d = dev(mkdb(twodir), tmp_path, pg)
    d.ok("setup")
    data_rows(d)
    # a revision whose SQL does not split: reset fails inside its
    # transaction, and nothing was reverted
    write_rev(twodir, "b0b0000000b8", R1B, "broken",
              "CREATE TABLE broken ('unterminated;", "")
    r = d.fails("reset", "--yes")
    assert "unterminated" in r.stderr and "nothing was changed" in r.stderr
    assert d.sql("SELECT count(*) FROM simple_conversation_history") == "20"
    assert d.applied() == sorted([R1, R1B])


# ------------------------------------------------------ 10: two heads

class Alembic:
    """A real Alembic project (python3-alembic) on a database of the
    test cluster: the reference for how revision walks behave."""

    def __init__(self, pg, tmp, dbname, host=None):
        self.dir = os.path.join(str(tmp), "alembic")
        self.ini = os.path.join(self.dir, "alembic.ini")
        subprocess.run(["/usr/bin/python3", "-m", "alembic", "init",
                        os.path.join(self.dir, "env")], cwd=str(tmp),
                       check=True, stdout=subprocess.DEVNULL)
        os.rename(os.path.join(str(tmp), "alembic.ini"), self.ini)
        url = (f"postgresql+psycopg2://{pg.user}@/{dbname}"
               f"?host={host or pg.sockdir}&port={pg.port}")
        text = open(self.ini).read()
        text = text.replace("script_location = env",
                            "script_location = " +
                            os.path.join(self.dir, "env"))
        text = "\n".join(
            "sqlalchemy.url = " + url.replace("%", "%%")
            if line.startswith("sqlalchemy.url") else line
            for line in text.splitlines()) + "\n"
        open(self.ini, "w").write(text)

    def rev(self, rid, parent):
        with open(os.path.join(self.dir, "env", "versions",
                               rid + ".py"), "w") as f:
            f.write(f"revision = {rid!r}\ndown_revision = {parent!r}\n"
                    "branch_labels = None\ndepends_on = None\n\n"
                    "def upgrade():\n    pass\n\n"
                    "def downgrade():\n    pass\n")

    def run(self, *args):
        return subprocess.run(["/usr/bin/python3", "-m", "alembic", "-c",
                               self.ini] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def current(self):
        """The revisions the database is at (the log lines left out)."""
        return sorted(line.split()[0] for line in
                      self.run("current").stdout.splitlines()
                      if line.strip() and not line.startswith("INFO"))


def test_relative_upgrade_walks_like_alembic(mkdb, twodir, pg, tmp_path):
    # R1 -> R1B -> aaaa, and a branch from R1 made with --head R1 --splice
    write_rev(twodir, "aaaa000000c1", R1B, "on the line of R1B",
              "CREATE TABLE ta (a int);", "DROP TABLE ta;")
    d = mkdb(twodir)
    r = d.fails("migrate", "-m", "side branch", "--head", R1)
    assert "not a head" in r.stderr and "--splice" in r.stderr
    r = d.ok("migrate", "-m", "side branch", "--head", R1, "--splice")
    side = r.stdout.split("created revision ")[1].split()[0]
    assert json.loads(d.ok("show", side, "--json").stdout)["parents"] == [R1]
    r = d.ok("branches")
    assert r.stdout.startswith(R1 + " (branch point)")
    assert f"-> {R1B} " in r.stdout and f"-> {side} (head)" in r.stdout
    b = json.loads(d.ok("branches", "--json").stdout)["branches"]
    assert [x["revision"] for x in b] == [R1]
    assert {(c["revision"], c["head"]) for c in b[0]["children"]} == \
        {(R1B, False), (side, True)}

    # the same graph in Alembic: x1 -> x2 -> xa, x1 -> xc
    a = Alembic(pg, tmp_path, d.name)
    a.rev("x1", None)
    a.rev("x2", "x1")
    a.rev("xa", "x2")
    a.rev("xc", "x1")
    assert "x1 (branchpoint)" in a.run("branches").stdout

    # at the branch point, +1 is ambiguous for both
    d.ok("upgrade", R1)
    assert a.run("upgrade", "x1").returncode == 0
    r = d.fails("upgrade", "+1")
    ra = a.run("upgrade", "+1")
    assert ra.returncode != 0 and "Ambiguous walk" in ra.stdout
    assert "ambiguous" in r.stderr
    assert "aaaa000000c1" in r.stderr and side in r.stderr   # the heads
    assert R1B in r.stderr                 # and what could come next
    assert d.applied() == [R1] and a.current() == ["x1"]
    # and from base, a walk through the branch point too
    d.ok("downgrade", "base", "--allow-destructive")
    a.run("downgrade", "base")
    assert "ambiguous" in d.fails("upgrade", "+3").stderr
    assert "Ambiguous walk" in a.run("upgrade", "+3").stdout
    d.ok("upgrade", "+1")
    assert a.run("upgrade", "+1").returncode == 0
    assert d.applied() == [R1] and a.current() == ["x1"]
    # on the line of R1B, +1 follows it, as Alembic does
    d.ok("upgrade", R1B)
    a.run("upgrade", "x2")
    d.ok("upgrade", "+1")
    assert a.run("upgrade", "+1").returncode == 0
    assert d.applied() == sorted([R1, R1B, "aaaa000000c1"])
    assert "xa" in a.current()
    # nothing follows a head: refused, where it used to take the side
    # branch
    r = d.fails("upgrade", "+1")
    assert "nothing follows aaaa000000c1" in r.stderr
    assert a.run("upgrade", "+1").returncode != 0
    # a revision on a branch that is not the newest: autogenerate compares
    # the model with the database at that revision
    r = d.fails("migrate", "--autogenerate", "-m", "x", "--head", side)
    assert f"not at {side}" in r.stderr
    d.ok("upgrade", "heads")
    d.ok("migrate", "-m", "on the side", "--head", side)
    assert "no branch points" not in d.ok("branches").stdout


# ------------------------------------------------- 9: offline SQL ranges

def run_script(d, sql):
    """Runs a script as psql -f would (transactions as written)."""
    r = subprocess.run(
        [d.pg.bin("psql"), "-h", d.pg.sockdir, "-p", str(d.pg.port), "-U",
         d.pg.user, "-d", d.name, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr


def test_offline_sql_ranges_need_no_database(mkdb, twodir, tmp_path):
    write_rev(twodir, "c1c1000000d1", R1B, "concurrent index",
              "CREATE INDEX CONCURRENTLY uth_thread_idx"
              " ON user_thread_table (thread_id);",
              "DROP INDEX CONCURRENTLY uth_thread_idx;",
              transactional=False)
    write_rev(twodir, "7e57000000d2", "c1c1000000d1",
              "it's a back\\slash and 中文",
              "CREATE TABLE extra (x int);", "DROP TABLE extra;")
    # nothing to connect to: a socket directory that does not exist
    off = DB.__new__(DB)
    off.conf = convdtest.write_config(str(tmp_path / "offline.conf"), {
        "database": {"host": "/nonexistent-convd-socket", "name": "none"},
        "migrations": {"directory": twodir}})
    assert off.db("check").returncode == 3
    up = off.db("upgrade", "base:head", "--sql")
    assert up.returncode == 0, up.stderr
    assert "written without a database" in up.stdout
    assert "CREATE TABLE IF NOT EXISTS convd_schema_history" in up.stdout

    d = mkdb(twodir)
    run_script(d, up.stdout)
    assert d.applied() == sorted([R1, R1B, "c1c1000000d1", "7e57000000d2"])
    assert "uth_thread_idx" in d.indexes() and "extra" in d.tables()
    assert d.sql("SELECT message FROM convd_schema_history WHERE"
                 " revision = '7e57000000d2'") == "it's a back\\slash and 中文"
    assert "offline SQL by" in d.sql(
        "SELECT applied_by FROM convd_schema_history WHERE"
        f" revision = '{R1}'")
    d.ok("check")
    d.ok("verify")                              # the checksums match

    down = off.db("downgrade", "head:" + R1B, "--sql")
    assert down.returncode == 0, down.stderr
    run_script(d, down.stdout)
    assert d.applied() == sorted([R1, R1B])
    assert "uth_thread_idx" not in d.indexes() and "extra" not in d.tables()

    up2 = off.db("upgrade", R1B + ":head", "--sql")
    assert up2.returncode == 0, up2.stderr
    assert "CREATE TABLE IF NOT EXISTS convd_schema_history" \
        not in up2.stdout
    run_script(d, up2.stdout)
    d.ok("check")
    # the same as a database would have computed
    assert d.ok("upgrade", "--sql").stdout.startswith("nothing to do")

    # the same ranges in Alembic's offline mode, on the same graph and
    # with nothing to connect to either, run the same revisions
    a = Alembic(d.pg, tmp_path, "none", host="/nonexistent-convd-socket")
    for rid, parent in (("x1", None), ("x2", "x1"), ("x3", "x2"),
                        ("x4", "x3")):
        a.rev(rid, parent)
    mine = {R1: "x1", R1B: "x2", "c1c1000000d1": "x3", "7e57000000d2": "x4"}

    def ran(text, word):
        return [mine[line[len(word) + 4:].split()[0].rstrip(":")]
                for line in text.splitlines()
                if line.startswith(f"-- {word} ")]

    for rng, arng, up_ in ((R1B + ":head", "x2:head", True),
                           ("base:" + R1B, "base:x2", True),
                           ("head:" + R1, "x4:x1", False)):
        r = a.run("upgrade" if up_ else "downgrade", arng, "--sql")
        assert r.returncode == 0, r.stdout
        theirs = [line.split()[-1] if up_ else line.split()[3]
                  for line in r.stdout.splitlines()
                  if line.startswith("-- Running ")]
        ours = off.db("upgrade" if up_ else "downgrade", rng, "--sql")
        assert ours.returncode == 0, ours.stderr
        assert ran(ours.stdout, "upgrade to" if up_ else "revert") == \
            theirs, (rng, ours.stdout, r.stdout)

    # ranges are for --sql; the start is not relative
    assert off.db("upgrade", "base:head").returncode == 2
    assert off.db("downgrade", "head:base", "--try").returncode == 2
    assert off.db("upgrade", "+1:head", "--sql").returncode == 2
    r = off.db("downgrade", R1 + ":" + R1B, "--sql")
    assert r.returncode == 1 and "not applied" in r.stderr


# ------------------------------------------- 7: autogenerate settles

# Every construct `diff` compares, each written the way people write it
# (IN lists on varchar, casts left implicit), on new tables and on the
# product's own.
SETTLE_MODEL = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE SEQUENCE ticket_seq AS integer START 100 INCREMENT 5 MINVALUE 50
    MAXVALUE 100000 CACHE 2 CYCLE;
CREATE TABLE settle_user (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email varchar(320) COLLATE "C" NOT NULL UNIQUE,
    role varchar(20) NOT NULL DEFAULT 'user'
        CHECK (role IN ('user', 'assistant', 'system')),
    score numeric(6,2) DEFAULT 0.5,
    mood mood NOT NULL DEFAULT 'calm',
    tags text[] DEFAULT '{}',
    label varchar(40) DEFAULT 'a' || 'b',
    created timestamptz NOT NULL DEFAULT now(),
    lower_email text GENERATED ALWAYS AS (lower(email)) STORED,
    is_staff boolean GENERATED ALWAYS AS (role IN ('assistant', 'system'))
        STORED,
    ticket integer DEFAULT nextval('ticket_seq'),
    CONSTRAINT settle_score CHECK (score BETWEEN 0 AND 100),
    CONSTRAINT settle_label CHECK (label NOT IN ('x', 'y') AND label <> '')
);
ALTER SEQUENCE ticket_seq OWNED BY settle_user.ticket;
CREATE TABLE settle_slot (
    id serial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES settle_user (id) ON DELETE CASCADE,
    during tsrange NOT NULL,
    room int NOT NULL,
    EXCLUDE USING gist (during WITH &&) WHERE (room > 0 AND room IN (1, 2))
);
CREATE UNIQUE INDEX settle_email_lower ON settle_user (lower(email));
CREATE INDEX settle_created ON settle_user (created DESC NULLS LAST, id);
CREATE INDEX settle_role_part ON settle_user (created)
    WHERE role IN ('user', 'assistant');
CREATE INDEX settle_mood_hash ON settle_user USING hash (mood);
CREATE INDEX settle_tags ON settle_user USING gin (tags);
CREATE INDEX settle_email_ops ON settle_user (email varchar_pattern_ops)
    INCLUDE (role) WHERE email LIKE '%@example.com';
ALTER TABLE simple_conversation_history ADD CONSTRAINT sch_role
    CHECK (role IN ('user', 'assistant', 'system'));
CREATE INDEX sch_role_part ON simple_conversation_history (user_id)
    WHERE role IN ('user', 'assistant') AND model_provider <> 'test';
"""

# Then each of them changed.
SETTLE_MORE = """
ALTER TYPE mood ADD VALUE 'away';
ALTER SEQUENCE ticket_seq INCREMENT 10;
ALTER TABLE settle_user ALTER COLUMN role SET DEFAULT 'system';
ALTER TABLE settle_user ALTER COLUMN label TYPE varchar(60);
ALTER TABLE settle_user DROP CONSTRAINT settle_user_role_check;
ALTER TABLE settle_user ADD CONSTRAINT settle_user_role_check
    CHECK (role IN ('user', 'assistant', 'system', 'tool'));
DROP INDEX settle_role_part;
CREATE INDEX settle_role_part ON settle_user (created)
    WHERE role IN ('user', 'tool');
ALTER TABLE simple_conversation_history DROP CONSTRAINT sch_role;
ALTER TABLE simple_conversation_history ADD CONSTRAINT sch_role
    CHECK (role IN ('user', 'assistant', 'system', 'tool'));
"""


def test_autogenerate_settles_for_every_construct(mkdb, migdir):
    model = os.path.join(migdir, "schema.sql")
    base = open(model).read()
    d = mkdb(migdir)
    d.ok("setup")
    data_rows(d)
    for extra, what in ((SETTLE_MODEL, "every construct"),
                        (SETTLE_MORE, "each changed")):
        open(model, "a").write(extra)
        d.fails("diff")
        d.ok("migrate", "--autogenerate", "-m", what)
        d.ok("upgrade")
        r = d.db("diff")
        assert r.returncode == 0, f"{what}: does not settle:\n{r.stdout}"
        r = d.ok("migrate", "--autogenerate", "-m", "again")
        assert "no revision written" in r.stdout
    # what the revisions made is there and works
    assert {"settle_email_lower", "settle_role_part", "settle_mood_hash",
            "settle_tags", "settle_email_ops", "sch_role_part"} \
        <= d.indexes()
    uid = d.returning("INSERT INTO settle_user (email, role) VALUES"
                      " ('A@example.com', 'tool') RETURNING id")
    assert d.sql(f"SELECT lower_email, is_staff, label, mood, ticket"
                 f" FROM settle_user WHERE id = {uid}") == \
        "a@example.com|f|ab|calm|100"
    with pytest.raises(RuntimeError, match="settle_user_role_check"):
        d.sql("INSERT INTO settle_user (email, role) VALUES ('b', 'x')")
    d.sql(f"INSERT INTO settle_slot (user_id, during, room) VALUES"
          f" ({uid}, '[2026-01-01, 2026-01-02)', 1)")
    with pytest.raises(RuntimeError, match="settle_slot_during_excl"):
        d.sql(f"INSERT INTO settle_slot (user_id, during, room) VALUES"
              f" ({uid}, '[2026-01-01 12:00, 2026-01-03)', 2)")
    # and back down through both, to the product's schema ('tool' is not
    # allowed there)
    d.sql("DELETE FROM settle_user")
    d.ok("rollback", "2", "--allow-destructive")
    open(model, "w").write(base)
    d.ok("diff")
