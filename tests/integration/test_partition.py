"""The partitioned history layout (issue 19, point 7): `convctl db setup
--layout partitioned`, the online conversion `convctl db partition` of a
populated database while convd writes (nothing lost, resumable),
partitions made ahead by setup and by convd's timer, retention dropping
expired partitions whole, and every history method, idempotency key and
order guarantee on the partitioned layout (the method suites run again on
it).  Real PostgreSQL, real convd."""

import os
import re
import subprocess
import threading
import time
import uuid

import pytest

import convdtest
from convdtest import Client, sql_literal as q, wait_until, scaled

HIST = "simple_conversation_history"
KEYS = HIST + "_keys"
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def fresh_db(schema):
    """make(layout=None|'partitioned'|'none') -> (name, config path) of a
    new database of the module's cluster, set up by `convctl db setup`
    (with --layout partitioned if asked; not at all for 'none')."""
    made = []

    def make(layout=None):
        name = "p_" + uuid.uuid4().hex[:10]
        schema.createdb(name)
        made.append(name)
        cfg = convdtest.write_config(
            os.path.join(schema.tmp, f"{name}.conf"), {
                "database": {"host": schema.sockdir, "port": schema.port,
                             "name": name, "user": schema.user},
                "migrations": {"directory": convdtest.MIGRATIONS}})
        if layout != "none":
            args = ("--layout", layout) if layout else ()
            r = convdtest.convctl("db", "setup", *args, config=cfg)
            assert r.returncode == 0, r.stdout + r.stderr
        return name, cfg

    yield make
    for name in made:
        schema.dropdb(name)


def partitions(pg, db):
    """{name: (from, to)} of the history's partitions, bounds as text in
    UTC ('' for MINVALUE)."""
    out = pg.psql(
        "SET TimeZone = 'UTC'; SELECT c.relname, coalesce(substring("
        "pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']*)'''),"
        " ''), substring(pg_get_expr(c.relpartbound, c.oid)"
        " FROM 'TO \\(''([^'']*)''')"
        f" FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        f" WHERE i.inhparent = '{HIST}'::regclass ORDER BY 1", db=db)
    return {ln.split("|")[0]: tuple(ln.split("|")[1:])
            for ln in out.splitlines() if ln and "|" in ln}


def relkind(pg, db):
    return pg.psql(f"SELECT relkind FROM pg_class WHERE oid = "
                   f"'{HIST}'::regclass", db=db)


def start(convd_factory, pg, db):
    return convd_factory(pg, extra={"database": {"name": db},
                                    "retention": {"days_to_keep": 0}})


# ------------------------------------------------ the layout at setup

def test_setup_makes_the_partitioned_layout_and_partitions_ahead(
        schema, fresh_db, convd_factory):
    db, cfg = fresh_db("partitioned")
    assert relkind(schema, db) == "p"
    parts = partitions(schema, db)
    # a new database: p0 holds everything before this month; this month
    # and the next three are partitions of their own
    month = schema.psql("SELECT to_char(date_trunc('month', now() AT TIME "
                        "ZONE 'UTC'), 'YYYYMM')", db=db)
    assert parts[HIST + "_p0"][0] == ""
    assert parts[HIST + "_p0"][1].startswith(
        f"{month[:4]}-{month[4:]}-01 00:00:00")
    monthly = sorted(p for p in parts if p != HIST + "_p0")
    assert len(monthly) == 4 and monthly[0] == f"{HIST}_p{month}"
    # the primary key includes the partition key; keys have their table
    assert schema.psql(
        f"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE "
        f"conrelid = '{HIST}'::regclass AND contype = 'p'", db=db) == \
        "PRIMARY KEY (id, created_at)"
    assert schema.psql(f"SELECT to_regclass('{KEYS}') IS NOT NULL",
                       db=db) == "t"
    # setup again, and partition again: nothing to do, nothing changes
    for args in (("setup",), ("setup", "--layout", "partitioned"),
                 ("partition",)):
        r = convdtest.convctl("db", *args, config=cfg)
        assert r.returncode == 0, r.stdout + r.stderr
    assert partitions(schema, db) == parts
    # convd makes missing partitions ahead by itself (its timer runs
    # shortly after start): drop the last one, it comes back
    schema.psql(f"DROP TABLE {monthly[-1]}", db=db)
    d = start(convd_factory, schema, db)
    wait_until(lambda: monthly[-1] in partitions(schema, db),
               timeout=scaled(15), what="the partition made again")
    assert partitions(schema, db) == parts
    assert "made 1 monthly partition ahead" in d.log()


# ------------------------------------------------------------ retention

def test_retention_drops_expired_partitions_whole(schema, fresh_db,
                                                  convd_factory):
    db, _ = fresh_db("partitioned")
    d = start(convd_factory, schema, db)
    month = schema.psql("SELECT to_char(date_trunc('month', now() AT TIME "
                        "ZONE 'UTC'), 'YYYYMM')", db=db)
    boundary = f"{HIST}_p{month}"
    with d.client() as c:
        # old messages (p0), some with keys
        old = [c.call("import_message", user_id="r", provider="p",
                      role="user", content=f"old {i}",
                      created_at=(1_500_000_000 + i * 86400) * 1_000_000,
                      idempotency_key=f"old-{i}" if i % 2 else None)
               for i in range(6)]
        assert all(o["imported"] for o in old)
        # this month's, before the cut-off
        now = [c.call("add_message", "r", "p", "user", f"now {i}", "line",
                      f"now-{i}") for i in range(3)]
    # and rows that stay: after the cut-off
    schema.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, "
                f"role, content, created_at) SELECT 'r', 'line', 'p', "
                f"'user', 'later ' || g, now() + interval '1 hour' "
                f"FROM generate_series(1, 2) g", db=db)
    assert int(schema.psql(f"SELECT count(*) FROM {KEYS}", db=db)) == 6
    with d.client() as c:
        r = c.call("cleanup_old_conversations", days_to_keep=0)
        assert r == {"deleted": 9, "skipped": False}, r
        # p0 is gone whole, the rest is there
        parts = partitions(schema, db)
        assert HIST + "_p0" not in parts and boundary in parts
        assert sorted(schema.psql(f"SELECT content FROM {HIST}",
                                  db=db).splitlines()) == \
            ["later 1", "later 2"]
        # keys went with their messages: a key of a deleted message
        # stores a new one, on either side of the drop
        assert schema.psql(f"SELECT count(*) FROM {KEYS}", db=db) == "0"
        again = c.call("add_message", "r", "p", "user", "x", "line", "old-1")
        assert "duplicate" not in again and again["id"] != old[1]["id"]
        again = c.call("add_message", "r", "p", "user", "y", "line", "now-1")
        assert "duplicate" not in again and again["id"] != now[1]["id"]
    # only the boundary partition saw deletes; p0 was dropped, not emptied
    def deletes():
        out = schema.psql(f"SELECT relname, n_tup_del FROM "
                          f"pg_stat_user_tables WHERE relname LIKE "
                          f"'{HIST}_p%'", db=db)
        return dict(ln.split("|") for ln in out.splitlines())
    wait_until(lambda: deletes().get(boundary) == "3", timeout=scaled(10),
               what="the boundary partition's deletes counted")
    assert {k: v for k, v in deletes().items() if v != "0"} == \
        {boundary: "3"}
    assert "(6 of them in dropped partitions)" in d.log()
    with d.client() as c:
        # clear_user_history takes the keys of what it deletes
        c.call("clear_user_history", "r", "p")
        assert schema.psql(f"SELECT count(*) FROM {KEYS}", db=db) == "0"
        again = c.call("add_message", "r", "p", "user", "z", "line", "now-1")
        assert "duplicate" not in again


# ----------------------------------------------------- the conversion

class Writers:
    """Threads adding keyed messages through convd; each also sends again
    the key of its previous message (a retry), which must store nothing.
    acked: {user: [(id, content)]} in the order convd answered."""

    def __init__(self, sock, n=3):
        self.sock, self.stop, self.errors = sock, threading.Event(), []
        self.acked = {f"w{i}": [] for i in range(n)}
        self.dups = 0
        self.threads = [threading.Thread(target=self.run, args=(u,))
                        for u in self.acked]

    def run(self, user):
        try:
            with Client(self.sock) as c:
                i = 0
                while not self.stop.is_set():
                    r = c.call("add_message", user, "p", "user", f"{user} {i}",
                               "line", f"{user}-{i}")
                    assert "duplicate" not in r, r
                    self.acked[user].append((r["id"], f"{user} {i}"))
                    r2 = c.call("add_message", user, "p", "user", "retry",
                                "line", f"{user}-{i}")
                    assert r2["duplicate"] is True and r2["id"] == r["id"]
                    self.dups += 1
                    i += 1
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def test_conversion_of_a_populated_database_under_writes(
        schema, fresh_db, convd_factory):
    db, cfg = fresh_db()
    assert relkind(schema, db) == "r"
    # history from before: some with keys
    schema.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, "
                f"role, content, created_at, idempotency_key) SELECT "
                f"'u' || (g % 50), 'line', 'p', 'user', 'seed ' || g, "
                f"now() - interval '1 minute' * g, CASE WHEN g % 3 = 0 THEN "
                f"'seed-' || g END FROM generate_series(1, 30000) g", db=db)
    # and one row that does not fit the bound: the conversion stops at
    # the bound's check, and goes on where it stopped once it is fixed
    schema.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, "
                f"role, content, created_at) VALUES ('f', 'line', 'p', "
                f"'user', 'future', now() + interval '70 days')", db=db)
    d = start(convd_factory, schema, db)
    with d.client() as c:
        before = c.call("get_recent_conversations", "u7", "p", 50)
    with Writers(d.socket) as w:
        time.sleep(0.3)
        r = convdtest.convctl("db", "partition", config=cfg)
        assert r.returncode != 0
        assert "run 'convctl db partition' again" in r.stderr, r.stderr
        assert schema.psql("SELECT to_regclass('convd_partition_state') IS "
                           "NOT NULL", db=db) == "t"
        assert relkind(schema, db) == "r"
        schema.psql(f"DELETE FROM {HIST} WHERE user_id = 'f'", db=db)
        r = convdtest.convctl("db", "partition", config=cfg)
        assert r.returncode == 0, r.stdout + r.stderr
        # the keys were copied by the first run (resumed, not redone)
        assert "copying idempotency keys" not in r.stdout, r.stdout
        assert "the history is partitioned by month" in r.stdout
        time.sleep(0.5)     # writes on the new layout too
    assert not w.errors, w.errors
    assert relkind(schema, db) == "p"
    assert schema.psql("SELECT to_regclass('convd_partition_state')",
                       db=db) == ""
    # nothing lost, nothing twice, ids and times kept
    acked = sum(len(v) for v in w.acked.values())
    assert acked > 20 and acked - len(w.acked) <= w.dups <= acked
    assert int(schema.psql(f"SELECT count(*) FROM {HIST}", db=db)) == \
        30000 + acked
    for user, rows in w.acked.items():
        stored = schema.psql(f"SELECT id, content FROM {HIST} WHERE "
                             f"user_id = {q(user)} ORDER BY created_at, id",
                             db=db).splitlines()
        # arrival order: the order convd acknowledged them in
        assert stored == [f"{i}|{c}" for i, c in rows]
    # every key is in the key table, once
    assert schema.psql(
        f"SELECT h.tableoid::regclass, h.id, h.user_id, h.idempotency_key"
        f" FROM {HIST} h WHERE idempotency_key IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {KEYS} k WHERE "
        f"k.user_id = h.user_id AND k.platform = h.platform AND "
        f"k.idempotency_key = h.idempotency_key)", db=db) == ""
    assert int(schema.psql(f"SELECT count(*) FROM {KEYS}", db=db)) == \
        10000 + acked
    with d.client() as c:
        assert c.call("get_recent_conversations", "u7", "p", 50) == before
        # a key stored before the conversion is still a duplicate
        dup = c.call("add_message", "u0", "p", "user", "x", "line",
                     "seed-300")
        assert dup["duplicate"] is True
        assert c.call("health")["ok"] is True
    # partitions ahead, and the old table is p0
    parts = partitions(schema, db)
    assert parts[HIST + "_p0"][0] == "" and len(parts) >= 4


# ----------------------- every method on the partitioned layout

def test_method_suites_on_the_partitioned_layout():
    """test_methods, test_idempotency, test_order and test_conversations
    (issue 17), with every database
    they set up on the partitioned layout (CONVD_TEST_LAYOUT).  Skipped:
    the per-parameter validation cases (no database involved), the
    downgrade below the key revision (on the partitioned layout the key
    triggers must be dropped first: convctl(1)) and the dropped unique
    index (the partitioned layout has none: see the next test)."""
    env = dict(os.environ, CONVD_TEST_LAYOUT="partitioned")
    r = subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider",
         "-q", "-k", "not test_invalid_params and not "
         "test_convd_requires_the_key_revision and not "
         "test_convd_verifies_the_key_index",
         "test_methods.py", "test_idempotency.py", "test_order.py",
         "test_conversations.py"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=scaled(600))
    tail = r.stdout[-3000:]
    assert r.returncode == 0, tail
    m = re.search(r"(\d+) passed", tail)
    assert m and int(m.group(1)) >= 35 and "failed" not in tail, tail


def test_convd_verifies_the_partitioned_keys(schema, fresh_db,
                                             convd_factory):
    """The partitioned layout passes the schema verification; without its
    key trigger (dropped by hand) keys would not be enforced, and convd
    refuses the schema, saying what is missing."""
    db, _ = fresh_db("partitioned")
    schema.psql(f"DROP TRIGGER convd_history_key_insert ON {HIST}", db=db)
    d = convd_factory(schema, extra={"database": {"name": db}}, wait=False)
    wait_until(lambda: Client(d.socket).call("ping") == "pong",
               timeout=scaled(15), what="convd up")

    def refused():
        with Client(d.socket) as c:
            try:
                c.call("add_message", "u", "p", "user", "x")
            except convdtest.RpcError as e:
                return e
        return None
    e = wait_until(refused, timeout=scaled(15), what="the schema refused")
    assert e.code == "unavailable" and "unique index" in e.message, e
