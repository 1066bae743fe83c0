"""forget_user on the partitioned history layout (issue 18, point 5; the
layout of issue 19, point 7, made by `convctl db setup --layout
partitioned`): a user's messages in several monthly partitions (before
this month in p0, this month, next month), of several providers,
platforms and conversations, with idempotency keys (kept in the layout's
key table), threads and states all go, checked partition by partition in
the tables themselves; another user's rows stay as they were, row for
row; the keys are free again.  Real PostgreSQL, real convd."""

import uuid

import pytest

import convdtest
from test_forget import fill

H = "simple_conversation_history"
KEYS = H + "_keys"
OLD_USEC = 1_500_000_000 * 1_000_000        # 2017-07-14: partition p0


@pytest.fixture(scope="module")
def part(pg):
    """(database name, convd) of a database set up with the partitioned
    layout, and a convd on it (no retention: the old rows stay)."""
    db = "fp_" + uuid.uuid4().hex[:10]
    pg.createdb(db)
    convdtest.setup_schema(pg, dbname=db, layout="partitioned")
    d = convdtest.Convd(pg, extra={"database": {"name": db},
                                   "retention": {"days_to_keep": 0}}).start()
    yield db, d
    convdtest.stop_ok(d)
    pg.dropdb(db)


def sql(pg, db, text):
    return pg.psql(text, db=db)


def partitions(pg, db):
    """The history's partitions, by name."""
    return sql(pg, db, f"SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                       f" ON c.oid = i.inhrelid WHERE i.inhparent = "
                       f"'{H}'::regclass ORDER BY 1").split()


def per_partition(pg, db, user):
    """{partition: the user's rows in it (id, platform, provider,
    conversation, content) as text}, every partition read on its own
    (FROM ONLY), empty ones left out."""
    u = convdtest.sql_literal(user)
    out = {}
    for p in partitions(pg, db):
        rows = sql(pg, db, f"SELECT id, platform, model_provider,"
                           f" conversation_id, content, idempotency_key"
                           f" FROM ONLY {p} WHERE user_id = {u}"
                           f" ORDER BY id")
        if rows:
            out[p] = rows.splitlines()
    return out


def others(pg, db, user):
    """Everything of the user outside the history: keys, threads,
    states, as text rows."""
    u = convdtest.sql_literal(user)
    return {
        "keys": sql(pg, db, f"SELECT platform, idempotency_key, id,"
                            f" created_at FROM {KEYS} WHERE user_id = {u}"
                            f" ORDER BY 1, 2").splitlines(),
        "threads": sql(pg, db, f"SELECT platform, thread_id FROM"
                               f" user_thread_table WHERE user_id = {u}"
                               f" ORDER BY 1").splitlines(),
        "states": sql(pg, db, f"SELECT platform, model_provider,"
                              f" conversation_id, version FROM"
                              f" conversation_state WHERE user_id = {u}"
                              f" ORDER BY 1, 2, 3").splitlines(),
    }


def fill_partitions(c, user, next_usec):
    """fill() (this month: 12 messages, 6 keys, 2 threads, 2 states), and
    on each platform one message with a key in p0, one with a key next
    month and one without a key next month in conversation c3."""
    fill(c, user)
    for platform in ("line", "slack"):
        for created, key, conv in ((OLD_USEC, f"old-{platform}", None),
                                   (next_usec, f"next-{platform}", None),
                                   (next_usec + 1000, None, "c3")):
            args = dict(user_id=user, provider="gemini", role="user",
                        content=f"{platform} {created}", created_at=created,
                        platform=platform)
            if key:
                args["idempotency_key"] = key
            if conv:
                args["conversation_id"] = conv
            assert c.call("import_message", **args)["imported"] is True


def test_forget_user_on_partitioned_layout(pg, part):
    db, d = part
    assert sql(pg, db, f"SELECT relkind FROM pg_class WHERE oid = "
                       f"'{H}'::regclass") == "p"
    # a moment in the next monthly partition (setup makes three ahead)
    next_usec = int(sql(pg, db, "SELECT (extract(epoch FROM date_trunc("
                                "'month', now() AT TIME ZONE 'UTC') + "
                                "interval '1 month 2 days') * 1000000)"
                                "::bigint"))
    me, other = convdtest.uid("fp"), convdtest.uid("fp")
    with d.client() as c:
        fill_partitions(c, me, next_usec)
        fill_partitions(c, other, next_usec)
        mine = per_partition(pg, db, me)
        kept_rows, kept_rest = per_partition(pg, db, other), \
            others(pg, db, other)
        # the data really is spread: p0, this month and next month
        assert len(mine) == 3 and f"{H}_p0" in mine, mine
        assert sum(map(len, mine.values())) == 18, mine
        assert {k: len(v) for k, v in others(pg, db, me).items()} == \
            {"keys": 10, "threads": 2, "states": 2}
        # one platform first: its rows in every partition go
        r = c.call("forget_user", user_id=me, platform="slack")
        assert r == {"messages": 9, "threads": 1, "states": 1,
                     "idempotency_keys": 5}, r
        left = per_partition(pg, db, me)
        assert len(left) == 3 and all(
            row.split("|")[1] == "line" for rows in left.values()
            for row in rows), left
        assert {k: len(v) for k, v in others(pg, db, me).items()} == \
            {"keys": 5, "threads": 1, "states": 1}
        # then every platform
        r = c.call("forget_user", me)
        assert r == {"messages": 9, "threads": 1, "states": 1,
                     "idempotency_keys": 5}, r
        assert per_partition(pg, db, me) == {}
        assert others(pg, db, me) == {"keys": [], "threads": [],
                                      "states": []}
        # nothing of the user anywhere, the parent read as a whole too
        u = convdtest.sql_literal(me)
        for table in (H, KEYS, "user_thread_table", "conversation_state"):
            assert sql(pg, db, f"SELECT count(*) FROM {table} WHERE "
                               f"user_id = {u}") == "0", table
        assert c.call("forget_user", user_id=me) == {
            "messages": 0, "threads": 0, "states": 0, "idempotency_keys": 0}
        # the other user keeps every row, in the same partitions
        assert per_partition(pg, db, other) == kept_rows
        assert others(pg, db, other) == kept_rest
        # the keys are free again, in p0 as this month
        r = c.call("import_message", user_id=me, provider="gemini",
                   role="user", content="again", created_at=OLD_USEC,
                   platform="line", idempotency_key="old-line")
        assert r["imported"] is True, r
        r = c.call("add_message", user_id=me, provider="openai",
                   role="user", content="back",
                   idempotency_key="line-openai-1")
        assert "duplicate" not in r, r
        assert sql(pg, db, f"SELECT count(*) FROM {KEYS} WHERE user_id = "
                           f"{u}") == "2"
