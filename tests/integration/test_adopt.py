"""Adopting databases of the system convd replaces (issue 13), made by the
real Alembic and SQLAlchemy and written the ways that system wrote them
(seedbot.py): what a user sees through convd afterwards.

Shapes: the README's SQL (no platform), Alembic revision 001, and 001
plus a revision of the user's own.  The bot ran with TZ=Asia/Taipei; the
database's TimeZone is UTC or Asia/Taipei.
"""

import json
import os
import re
import subprocess
import time

import pytest

import convdtest
from convdtest import RpcError, ts_usec, wait_until

for _k in ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
           "DB_PASSWORD", "PGTZ"):
    os.environ.pop(_k, None)

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
SEEDBOT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "seedbot.py")
R1 = "3f9c2a7d41e0"
HOURS8 = 8 * 3600
STAMP = re.compile(r"\bstamp\b")     # the word, not "timestamp"
_n = [0]


class Legacy:
    """A database of the module's cluster made and written by seedbot."""

    def __init__(self, pg, tmp, shape, db_tz, retention=0):
        _n[0] += 1
        self.pg, self.shape = pg, shape
        self.name = f"adopt{_n[0]}"
        pg.createdb(self.name)
        pg.psql(f"ALTER DATABASE {self.name} SET timezone = '{db_tz}'")
        self.tmp = str(tmp)
        self.url = (f"postgresql+psycopg2://{pg.user}@/{self.name}"
                    f"?host={pg.sockdir}&port={pg.port}")
        self.conf = convdtest.write_config(
            os.path.join(self.tmp, self.name + ".conf"), {
                "database": {"host": pg.sockdir, "port": pg.port,
                             "name": self.name, "user": pg.user},
                "migrations": {"directory": convdtest.MIGRATIONS},
                "retention": {"days_to_keep": retention},
            })
        self.bot("schema", self.url, self.tmp, shape)
        self.written = {}           # content -> (t0, t1)

    def bot(self, *args):
        r = subprocess.run([PY, SEEDBOT, *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, TZ="Asia/Taipei"))
        assert r.returncode == 0, r.stderr
        return r.stdout

    def write(self, user, spec):
        """spec: "way:n,way:n" (seedbot.py write)."""
        for line in self.bot("write", self.url, self.shape, user,
                             spec).splitlines():
            o = json.loads(line)
            self.written[o["content"]] = (o["t0"], o["t1"])

    def sql(self, q):
        return self.pg.psql(q, db=self.name)

    def db(self, *args):
        return convdtest.convctl("db", *args, config=self.conf)

    def objects(self):
        return set(self.sql(
            "SELECT relkind::text || ' ' || relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE nspname = 'public' AND relkind IN ('r', 'i')"
        ).split("\n"))

    def convd(self, factory, **extra):
        sections = {"database": {"name": self.name}}
        sections.update(extra)
        return factory(self.pg, extra=sections)


def instants(client, user, limit=50):
    """get_recent_conversations through convd: [(content, usec)], oldest
    first."""
    return [(m["content"], ts_usec(m["created_at"])) for m in
            client.call("get_recent_conversations", user, "anthropic",
                        limit)]


def assert_written_at(leg, seen, shift=0):
    """Each message's instant lies in the window it was written in (plus
    shift seconds); seen: [(content, usec)]."""
    for content, usec in seen:
        if content not in leg.written:
            continue
        t0, t1 = leg.written[content]
        t = usec / 1e6 - shift
        assert t0 - 0.002 <= t <= t1 + 0.002, \
            (content, t, t0, t1, (t - t0) / 3600)


def assert_new_after_old(leg, client, user):
    """A message added through convd now is listed after every old one,
    and its instant is later than all of theirs."""
    r = client.call("add_message", user, "anthropic", "user", "new one")
    seen = instants(client, user)
    assert seen[-1][0] == "new one", seen[-3:]
    assert all(u < ts_usec(r["created_at"]) for _, u in seen[:-1]), seen
    return seen


# ---------------------------------------------------------------- shapes

def test_readme_shape_utc_database(pg, tmp_path, convd_factory):
    """The README's tables, a database whose TimeZone is UTC, messages from
    the ORM (datetime.utcnow) and from the column default: nothing says
    the times are not UTC, so setup reads them as UTC without asking; the
    instants are the ones the messages were written at."""
    leg = Legacy(pg, tmp_path, "readme", "UTC")
    leg.write("U1", "utcnow:4,server:3")
    before = leg.sql("SELECT count(*) FROM simple_conversation_history")
    r = leg.db("setup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "read as UTC (nothing says otherwise)" in r.stdout
    assert "retention: off" in r.stdout
    assert "i idx_user_model_created" not in leg.objects()
    assert leg.sql("SELECT count(*) FROM simple_conversation_history") == \
        before
    d = leg.convd(convd_factory)
    with d.client() as c:
        seen = instants(c, "U1")
        assert len(seen) == 7
        assert_written_at(leg, seen)
        assert_new_after_old(leg, c, "U1")


def test_alembic_001_local_times(pg, tmp_path, convd_factory):
    """Revision 001 on a database whose TimeZone is Asia/Taipei, a bot with
    TZ=Asia/Taipei writing datetime.now(), the server default now() and
    aware datetimes: all local times.  Setup stops with the figures and
    names --legacy-timezone; with Asia/Taipei the instants are right, the
    old messages come before new ones, the choice and the Alembic revision
    are in the history, and the retention of the configuration says what
    it would delete before convd deletes anything."""
    leg = Legacy(pg, tmp_path, "001", "Asia/Taipei", retention=30)
    leg.write("U2", "now:3,server:3,aware:3,old:2")
    before = leg.sql("SELECT count(*) FROM simple_conversation_history")
    assert before == "11"

    r = leg.db("setup")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "may not all be UTC" in r.stderr
    assert "9 of 11 rows of simple_conversation_history (81.8%) would be " \
        "dated in the future if read as UTC" in r.stderr, r.stderr
    assert "database adopt" in r.stderr and "TimeZone = Asia/Taipei" \
        in r.stderr
    assert "read as Asia/Taipei, 0 rows would be dated in the future" \
        in r.stderr
    assert "--legacy-timezone ZONE" in r.stderr
    assert "nothing was changed" in r.stderr and not STAMP.search(r.stderr)
    assert "r convd_schema_history" not in leg.objects()
    assert "r alembic_version" in leg.objects()

    r = leg.db("setup", "--legacy-timezone", "Asia/Taipei")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "retention: [retention] days_to_keep = 30: convd's first run " \
        "will delete 2 of 11 messages" in r.stdout
    r = leg.db("history")
    assert "read as Asia/Taipei (--legacy-timezone)" in r.stdout
    assert "at revision '001'" in r.stdout
    r = leg.db("show", R1)
    assert "note:" in r.stdout and "read as Asia/Taipei" in r.stdout
    assert leg.sql("SELECT count(*) FROM simple_conversation_history") == \
        before
    assert not {"i idx_user_platform", "i idx_user_platform_provider",
                "i idx_created_at", "i idx_user_model_created",
                "r alembic_version"} & leg.objects()

    d = leg.convd(convd_factory)
    with d.client() as c:
        seen = instants(c, "U2")
        assert len(seen) == 11
        assert_written_at(leg, seen)
        assert [s[0] for s in seen[:2]] == ["old 0 of U2", "old 1 of U2"]
        r = d.convctl("cleanup", "--days", "30", "--dry-run")
        assert r.stdout.startswith("would delete 2 of 11 messages"), \
            r.stdout + r.stderr
        assert len(instants(c, "U2")) == 11
        assert_new_after_old(leg, c, "U2")
    d.stop()
    # with days_to_keep = 30, convd says what its first run deletes, then
    # deletes exactly that
    d = leg.convd(convd_factory, retention={"days_to_keep": 30})
    line = wait_until(lambda: [x for x in d.log().splitlines()
                               if "the first run, in" in x],
                      timeout=convdtest.scaled(10),
                      what="the retention notice")
    assert "deletes 2 of 12 messages" in line[0], line
    with d.client() as c:
        st = wait_until(lambda: (lambda s: s if s["runs"] >= 1 else None)(
            c.call("stats")["retention"]), timeout=convdtest.scaled(15),
            what="the first retention run")
        assert st["last_deleted"] == 2, st
        assert [s[0] for s in instants(c, "U2")][:1] == ["now 0 of U2"]


def test_user_revision_mixed_times(pg, tmp_path, convd_factory):
    """001 plus the user's own revision (a column, an index, a table, a
    seed index renamed), at Alembic revision e4f1c2d3b5a6, with UTC
    (datetime.utcnow) and local times mixed: setup stops; read as
    Asia/Taipei, the local ones are right and the UTC ones 8 hours early,
    as documented, and still listed in their order; the user's objects
    are kept and the seed's indexes, found by their definition, replaced."""
    leg = Legacy(pg, tmp_path, "user", "Asia/Taipei")
    leg.write("U3", "utcnow:3,now:3")
    leg.sql("UPDATE simple_conversation_history SET sentiment = 1")
    leg.sql("INSERT INTO bot_feedback VALUES (1, 1, 5)")
    objects = leg.objects()
    assert {"i my_report_idx", "i history_by_time", "r bot_feedback"} <= \
        objects

    r = leg.db("setup")
    assert r.returncode == 1 and "may not all be UTC" in r.stderr, \
        r.stdout + r.stderr
    r = leg.db("setup", "--legacy-timezone", "Asia/Taipei")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "at revision 'e4f1c2d3b5a6'" in r.stdout
    assert "legacy index history_by_time" in r.stdout
    assert "kept column simple_conversation_history.sentiment integer" \
        in r.stdout
    assert "kept index CREATE INDEX my_report_idx" in r.stdout
    assert "kept table bot_feedback" in r.stdout
    after = leg.objects()
    assert {"i my_report_idx", "r bot_feedback",
            "i bot_feedback_pkey"} <= after
    assert "i history_by_time" not in after
    assert leg.sql("SELECT count(*), sum(sentiment)"
                   " FROM simple_conversation_history") == "6|6"
    assert leg.sql("SELECT score FROM bot_feedback") == "5"
    r = leg.db("history")
    assert "at revision 'e4f1c2d3b5a6'" in r.stdout
    r = leg.db("check")
    assert r.returncode == 0, r.stdout + r.stderr

    d = leg.convd(convd_factory)
    with d.client() as c:
        seen = instants(c, "U3")
        utc = [s for s in seen if s[0].startswith("utcnow")]
        local = [s for s in seen if s[0].startswith("now")]
        assert_written_at(leg, local)
        assert_written_at(leg, utc, shift=-HOURS8)
        assert [s[0] for s in seen] == [s[0] for s in utc + local]
        assert_new_after_old(leg, c, "U3")


# ------------------------------------------------ what convd refuses

def test_unadopted_and_stamped_legacy_untouched(pg, tmp_path,
                                                convd_factory):
    """convd on a legacy database that setup has not adopted, with
    retention on: it refuses the schema and deletes nothing.  After `db
    stamp head` on the unconverted tables, db check, health and convd
    refuse (a 4-byte serial, naive times), no message suggests stamp, and
    retention still deletes nothing."""
    leg = Legacy(pg, tmp_path, "readme", "UTC", retention=30)
    leg.write("U4", "old:3")
    d = leg.convd(convd_factory, retention={"days_to_keep": 30})
    with d.client() as c:
        wait_until(lambda: "waiting until convd accepts the database "
                   "schema" in d.log(), timeout=convdtest.scaled(10),
                   what="retention to wait")
        h = c.call("health")
        assert h["schema"] == "missing" and not STAMP.search(h["message"])
    r = leg.db("stamp", "head")
    assert r.returncode == 0
    assert "simple_conversation_history.id is integer NOT NULL, but " \
        "revision 3f9c2a7d41e0 promises bigint NOT NULL" in r.stderr
    r = leg.db("check")
    assert r.returncode == 1 and "check:      FAILED" in r.stdout
    assert "simple_conversation_history.id is integer" in r.stdout
    assert "created_at is timestamp without time zone" in r.stdout
    with d.client() as c:
        h = wait_until(lambda: (lambda h: h if h["schema"] == "mismatch"
                                else None)(c.call("health")),
                       timeout=convdtest.scaled(10), what="mismatch")
        assert h["ok"] is False and not STAMP.search(h["message"]), h
        assert "promises" in h["message"], h
        with pytest.raises(RpcError) as e:
            c.call("add_message", "U4", "anthropic", "user", "x")
        assert e.value.code == "unavailable"
        r = d.convctl("health")
        assert r.returncode == 1
        with pytest.raises(RpcError):
            c.call("cleanup_old_conversations", 30)
    time.sleep(1)
    assert leg.sql("SELECT count(*) FROM simple_conversation_history") == "3"
    assert "retention: deleted" not in d.log()
