"""Revision 7c3d9e1a2b45 "conversations" (issue 17 point 5) against a real
PostgreSQL: applied by `convctl db upgrade` to a live database while
writers insert (no table rewrite, the index built concurrently, no writer
error, nothing lost), downgraded and applied again, on the plain and on the
partitioned layout (an already partitioned database is upgraded with each
partition's index built concurrently), and the schema verification of the
new columns and table.  The timed run on 10M rows is bench/online_migration.py
(BENCHMARKS.md), not a test."""

import os
import threading
import uuid

import psycopg2
import pytest

import convdtest

HIST = "simple_conversation_history"
BEFORE = "5a1e0c2f7b90"     # idempotency keys
REV = "7c3d9e1a2b45"        # conversations
NEW_COLS = {"conversation_id": "character varying(255) not null",
            "tool_call_id": "character varying(255)",
            "name": "character varying(255)",
            "model": "character varying(255)",
            "tokens": "integer", "metadata": "bytea", "content_mp": "bytea"}


@pytest.fixture
def db(pg):
    """make() -> a new database of the module's cluster: (name, ctl) where
    ctl(*args) runs `convctl db ARGS` on it."""
    made = []

    def make():
        name = "cs_" + uuid.uuid4().hex[:10]
        pg.createdb(name)
        made.append(name)
        cfg = convdtest.write_config(os.path.join(pg.tmp, f"{name}.conf"), {
            "database": {"host": pg.sockdir, "port": pg.port, "name": name,
                         "user": pg.user},
            "migrations": {"directory": convdtest.MIGRATIONS}})

        def ctl(*args, ok=True):
            r = convdtest.convctl("db", *args, config=cfg)
            if ok is not None:
                assert (r.returncode == 0) == ok, \
                    f"{args}: {r.returncode}\n{r.stdout}{r.stderr}"
            return r
        return name, ctl

    yield make
    for name in made:
        pg.dropdb(name)


def sql(pg, name, text):
    return pg.psql(text, db=name)


def columns(pg, name, table=HIST):
    out = sql(pg, name,
              "SELECT a.attname || '|' || format_type(a.atttypid, a.atttypmod)"
              " || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
              f" FROM pg_attribute a WHERE a.attrelid = '{table}'::regclass"
              " AND a.attnum > 0 AND NOT a.attisdropped")
    return dict(ln.split("|", 1) for ln in out.splitlines() if ln)


def indexes(pg, name, table=HIST):
    """{index name: valid} of table."""
    out = sql(pg, name,
              "SELECT c.relname || '|' || x.indisvalid FROM pg_index x"
              " JOIN pg_class c ON c.oid = x.indexrelid"
              f" WHERE x.indrelid = to_regclass('{table}')")
    return {ln.split("|")[0]: ln.split("|")[1] in ("t", "true")
            for ln in out.splitlines() if ln}


def partitions(pg, name):
    out = sql(pg, name, "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
              f" ON c.oid = i.inhrelid WHERE i.inhparent = '{HIST}'::regclass")
    return [ln for ln in out.splitlines() if ln]


def attached(pg, name, parent_index):
    """The partitions that have an index attached to parent_index."""
    out = sql(pg, name,
              "SELECT t.relname FROM pg_inherits i JOIN pg_index x ON"
              " x.indexrelid = i.inhrelid JOIN pg_class t ON t.oid = x.indrelid"
              f" WHERE i.inhparent = '{parent_index}'::regclass")
    return sorted(ln for ln in out.splitlines() if ln)


def fill(pg, name, n, users=50):
    sql(pg, name,
        f"INSERT INTO {HIST} (user_id, model_provider, role, content,"
        " created_at) SELECT 'u' || (i % " + str(users) + "), 'openai',"
        " CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, 'm' || i,"
        " now() - make_interval(secs => i)"
        f" FROM generate_series(1, {n}) i")


def digest(pg, name):
    """The seed's columns of every row, hashed in id order."""
    return sql(pg, name,
               "SELECT count(*) || ':' || md5(string_agg(id || '|' || user_id"
               " || '|' || platform || '|' || model_provider || '|' || role ||"
               " '|' || content || '|' || created_at, ',' ORDER BY id))"
               f" FROM {HIST}")


class Writers:
    """n threads inserting one row per transaction (autocommit) until
    stopped, as convd's writers do; counts rows and errors."""

    def __init__(self, pg, name, n=3):
        self.dsn = f"host={pg.sockdir} port={pg.port} dbname={name} " \
                   f"user={pg.user}"
        self.stop = threading.Event()
        self.rows = [0] * n
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(n)]

    def run(self, i):
        try:
            conn = psycopg2.connect(self.dsn)
            conn.autocommit = True
            cur = conn.cursor()
            while not self.stop.is_set():
                cur.execute(f"INSERT INTO {HIST} (user_id, model_provider,"
                            " role, content) VALUES (%s, 'openai', 'user',"
                            " 'during')", (f"w{i}",))
                self.rows[i] += 1
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        convdtest.wait_until(lambda: all(self.rows), timeout=30,
                             what="every writer wrote")
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_upgrade_online_under_writes(pg, db):
    """The revision applied while writers insert: no writer fails, the
    table is not rewritten (same relfilenode), old rows are in the default
    conversation with the new fields NULL, the new index is valid and the
    old one gone, every row is there."""
    name, ctl = db()
    ctl("upgrade", BEFORE)
    fill(pg, name, 20000)
    before = digest(pg, name)
    node = sql(pg, name, f"SELECT pg_relation_filenode('{HIST}')")
    with Writers(pg, name) as w:
        r = ctl("upgrade")
        assert f"applied {REV}" in r.stdout
        convdtest.wait_until(lambda: sum(w.rows) > 0, what="writes")
    assert w.errors == []
    assert sql(pg, name, f"SELECT pg_relation_filenode('{HIST}')") == node
    cols = columns(pg, name)
    for c, t in NEW_COLS.items():
        assert cols[c] == t, (c, cols[c])
    idx = indexes(pg, name)
    assert idx.get(HIST + "_conversation_idx") is True
    assert HIST + "_recent_idx" not in idx
    # nothing lost: the rows from before unchanged, every write there
    assert sql(pg, name, f"SELECT count(*) FROM {HIST} WHERE id <= "
               f"{before.split(':')[0]}") == before.split(":")[0]
    assert int(sql(pg, name, f"SELECT count(*) FROM {HIST}")) == \
        20000 + sum(w.rows)
    assert sql(pg, name, f"SELECT count(*) FROM {HIST} WHERE"
               " conversation_id <> '' OR tool_call_id IS NOT NULL OR name"
               " IS NOT NULL OR model IS NOT NULL OR tokens IS NOT NULL OR"
               " metadata IS NOT NULL OR content_mp IS NOT NULL") == "0"
    assert columns(pg, name, "conversation_state") == {
        "user_id": "character varying(255) not null",
        "platform": "character varying(50) not null",
        "model_provider": "character varying(50) not null",
        "conversation_id": "character varying(255) not null",
        "state": "bytea not null", "version": "bigint not null",
        "metadata": "bytea",
        "updated_at": "timestamp with time zone not null"}
    assert sql(pg, name, "SELECT dirty FROM convd_schema_history WHERE"
               f" revision = '{REV}'") == "f"
    ctl("check")
    ctl("diff")             # head is exactly the schema model


def test_downgrade_and_again(pg, db):
    """Down needs --allow-destructive (it drops the conversations' data),
    keeps every message (in the default conversation), brings the old
    index back; up again ends at the schema model."""
    name, ctl = db()
    ctl("setup")
    fill(pg, name, 500)
    sql(pg, name, f"UPDATE {HIST} SET conversation_id = 'conv_1',"
        " content_mp = '\\x91a161'::bytea, tokens = 3 WHERE id % 10 = 0;"
        " INSERT INTO conversation_state (user_id, model_provider, state,"
        " version) VALUES ('u1', 'openai', '\\x80', 1)")
    before = digest(pg, name)
    r = ctl("downgrade", BEFORE, ok=False)
    assert "--allow-destructive" in r.stderr
    assert sql(pg, name, "SELECT count(*) FROM conversation_state") == "1"
    ctl("downgrade", BEFORE, "--allow-destructive")
    assert not set(NEW_COLS) & set(columns(pg, name))
    assert sql(pg, name, "SELECT to_regclass('conversation_state')") == ""
    idx = indexes(pg, name)
    assert idx.get(HIST + "_recent_idx") is True
    assert HIST + "_conversation_idx" not in idx
    assert digest(pg, name) == before
    ctl("upgrade")
    assert digest(pg, name) == before
    ctl("diff")
    ctl("check")


def test_partitioned_database_upgrades_per_partition(pg, db):
    """A database partitioned at the previous revision: the revision's
    CREATE/DROP INDEX CONCURRENTLY, which PostgreSQL refuses on a
    partitioned table, become each partition's index built concurrently
    and attached, so the parent's index ends valid on every partition;
    downgrade and upgrade again work the same way."""
    name, ctl = db()
    ctl("upgrade", BEFORE)
    fill(pg, name, 3000)
    ctl("partition")
    parts = partitions(pg, name)
    assert len(parts) >= 4 and HIST + "_p0" in parts
    before = digest(pg, name)
    with Writers(pg, name, n=2) as w:
        r = ctl("upgrade")
        assert f"applied {REV}" in r.stdout
    assert w.errors == []
    conv = HIST + "_conversation_idx"
    assert indexes(pg, name).get(conv) is True
    assert attached(pg, name, conv) == sorted(parts)
    assert indexes(pg, name, HIST + "_p0")[HIST + "_p0_conversation_idx"]
    assert not any(i.endswith("recent_idx") or "model_provider_created" in i
                   for p in parts for i in indexes(pg, name, p)), \
        "the old index is gone from every partition"
    assert set(NEW_COLS) <= set(columns(pg, name, HIST + "_p0"))
    assert int(sql(pg, name, f"SELECT count(*) FROM {HIST}")) == \
        3000 + sum(w.rows)
    ctl("check")
    # down: the old index back on every partition, the columns gone
    ctl("downgrade", BEFORE, "--allow-destructive")
    recent = HIST + "_recent_idx"
    assert indexes(pg, name).get(recent) is True
    assert attached(pg, name, recent) == sorted(parts)
    assert conv not in indexes(pg, name)
    ctl("upgrade")
    assert attached(pg, name, conv) == sorted(parts)
    assert digest(pg, name).split(":")[0] == str(3000 + sum(w.rows))
    assert before.split(":")[0] == "3000"


def test_partitioned_setup_carries_the_new_index(pg, db):
    """`db setup --layout partitioned` applies the revision, then converts:
    the partitioned table gets the plain table's indexes as they are now
    (the conversation index, not the old one), p0 keeps its own under
    p0's names, and the months made ahead have it too."""
    name, ctl = db()
    ctl("setup", "--layout", "partitioned")
    conv = HIST + "_conversation_idx"
    idx = indexes(pg, name)
    assert idx.get(conv) is True and idx.get(HIST + "_created_at_idx")
    assert HIST + "_recent_idx" not in idx
    parts = partitions(pg, name)
    assert attached(pg, name, conv) == sorted(parts)
    assert HIST + "_p0_conversation_idx" in indexes(pg, name, HIST + "_p0")
    ctl("check")


def test_verification_names_the_new_promises(pg, db):
    """The schema verification (convd's start-up check, `db check`)
    refuses a database that says it is at the revision but lacks what it
    promises: a field of the wrong type, the state table."""
    name, ctl = db()
    ctl("setup")
    sql(pg, name, f"ALTER TABLE {HIST} ALTER COLUMN tokens TYPE text")
    r = ctl("check", ok=False)
    assert "tokens is text, but revision 7c3d9e1a2b45 promises integer" \
        in r.stdout + r.stderr
    sql(pg, name, f"ALTER TABLE {HIST} ALTER COLUMN tokens TYPE integer"
        " USING tokens::integer; DROP TABLE conversation_state")
    r = ctl("check", ok=False)
    assert "conversation_state.state is missing" in r.stdout + r.stderr
