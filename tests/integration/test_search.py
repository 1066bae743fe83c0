"""search_messages through the real convd (issue 18, point 4): Traditional
Chinese, English and mixed text, structured content, wildcards taken
literally, filters, isolation between users, and the index at work; on a
database whose LC_CTYPE is C (PostgreSQL makes no trigrams of CJK
characters there) and on one whose LC_CTYPE is C.UTF-8 (it does).
"""
import os

import pytest

import convdtest
from convdtest import RpcError

H = "simple_conversation_history"

MESSAGES = [
    # (provider, conversation_id, role, content)
    ("openai", None, "user", "今天台北下大雨，記得帶傘。"),
    ("openai", None, "assistant", "Please REFUND my order #123, thanks."),
    ("anthropic", None, "user", "我想用 Python 寫一個 LINE bot"),
    ("anthropic", "trip", "assistant",
     [{"type": "text", "text": "高鐵票已經訂好了"},
      {"type": "image", "source": {"type": "url",
                                   "url": "https://example.com/高鐵.png"}}]),
    ("openai", "trip", "user", "I am 100% sure_thing; refund it"),
    ("gemini", None, "user", "台中的天氣如何？ weather in Taichung"),
]


@pytest.fixture(scope="module", params=["C", "C.UTF-8"])
def sconvd(request, pg):
    """A convd on a database of the given LC_CTYPE, with the messages
    above stored for one user and for another."""
    ctype = request.param
    db = "convd" if ctype == "C" else "convd_utf8"
    if db != pg.dbname:
        pg.psql(f"CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8'"
                f" LC_COLLATE 'C' LC_CTYPE '{ctype}'", db="postgres")
    convdtest.setup_schema(pg, dbname=db)
    d = convdtest.Convd(pg, extra={"database": {"name": db}}).start()
    users = (convdtest.uid("me"), convdtest.uid("other"))
    ids = {}
    with d.client() as c:
        for u in users:
            for n, (prov, conv, role, content) in enumerate(MESSAGES):
                p = dict(user_id=u, provider=prov, role=role, content=content)
                if conv:
                    p["conversation_id"] = conv
                ids[(u, n)] = c.call("add_message", **p)["id"]
        # the same user on another platform
        c.call("add_message", user_id=users[0], provider="openai",
               role="user", content="台北 on slack", platform="slack")
    d.db, d.users, d.ids = db, users, ids
    yield d
    d.stop()
    assert d.sanitizer_report() is None


def found(c, user, query, **kw):
    return [m["content"] for m in
            c.call("search_messages", user_id=user, query=query, **kw)]


def text(n):
    return MESSAGES[n][3]


@pytest.mark.parametrize("query,want", [
    ("台北", [0]),                       # two characters: no trigram
    ("下大雨", [0]),
    ("記得帶傘", [0]),
    ("refund", [4, 1]),                  # any case, newest first
    ("REFUND MY", [1]),
    ("python 寫", [2]),                  # mixed
    ("LINE bot", [2]),
    ("高鐵票", [3]),                      # the text of structured content
    ("台", [5, 0]),                      # one character
    ("weather in 台中", []),
    ("天氣如何？ weather", [5]),
    ("100%", [4]),                       # % and _ are not wildcards
    ("e_t", [4]),
    ("e%t", []),
    ("sure\\thing", []),
    ("nowhere to be found", []),
])
def test_finds(sconvd, query, want):
    with sconvd.client() as c:
        got = found(c, sconvd.users[0], query)
    assert got == [text(n) for n in want], query


def test_rows_and_filters(sconvd):
    me, other = sconvd.users
    with sconvd.client() as c:
        rows = c.call("search_messages", user_id=me, query="高鐵")
        assert len(rows) == 1
        r = rows[0]
        assert r["id"] == sconvd.ids[(me, 3)]
        assert r["provider"] == "anthropic"
        assert r["conversation_id"] == "trip"
        assert r["role"] == "assistant" and "created_at" in r
        assert r["content"] == text(3)      # exactly as sent
        # the default conversation's rows carry no conversation_id
        r = c.call("search_messages", user_id=me, query="下大雨")[0]
        assert "conversation_id" not in r
        assert found(c, me, "refund", provider="openai",
                     conversation_id="trip") == [text(4)]
        assert found(c, me, "refund", conversation_id="trip") == [text(4)]
        assert found(c, me, "refund", provider="anthropic") == []
        assert found(c, me, "台", limit=1) == [text(5)]
        assert found(c, me, "台北", platform="slack") == ["台北 on slack"]
        # positional: user_id, query, provider, conversation_id,
        # platform, limit
        assert [m["content"] for m in c.call(
            "search_messages", me, "refund", "openai", None, "line",
            5)] == [text(4), text(1)]
        # another user's messages never match: same words, other ids
        mine = {m["id"] for m in c.call("search_messages", user_id=me,
                                        query="e", limit=100)}
        theirs = {m["id"] for m in c.call("search_messages", user_id=other,
                                          query="e", limit=100)}
        assert mine and theirs and not mine & theirs
        assert all(sconvd.ids[(other, n)] in theirs
                   for n in (1, 2, 4, 5))
        assert found(c, convdtest.uid(), "台北") == []
        for bad in [dict(query=""), dict(query="x" * 257),
                    dict(query="a\x00b"), dict(query="x", limit=0),
                    dict(query="x", limit=101), dict(query=5),
                    dict(query="x", conversation_id="")]:
            with pytest.raises(RpcError) as e:
                c.call("search_messages", user_id=me, **bad)
            assert e.value.code == "invalid_params", bad


def idx_scans(pg, db):
    return int(pg.psql("SELECT coalesce(sum(idx_scan), 0) FROM"
                       " pg_stat_user_indexes WHERE indexrelname LIKE"
                       " '%search\\_idx'", db=db))


def test_served_by_the_index(sconvd, pg):
    """A busy user's search is answered from the search index (among
    other users: a user who is the whole table is read faster in full)."""
    user = convdtest.uid("busy")
    pg.psql(f"INSERT INTO {H} (user_id, model_provider, role, content)"
            f" SELECT {convdtest.sql_literal(user)}, 'openai', 'user',"
            " 'message number ' || i || ' about the weather in Taipei'"
            " FROM generate_series(1, 20000) i;"
            f" INSERT INTO {H} (user_id, model_provider, role, content)"
            " SELECT 'crowd-' || (i % 1000), 'openai', 'user',"
            " 'another user''s message ' || i FROM generate_series(1, 40000) i;"
            f" INSERT INTO {H} (user_id, model_provider, role, content)"
            f" VALUES ({convdtest.sql_literal(user)}, 'openai', 'user',"
            " 'the xylophone lesson'); ANALYZE " + H, db=sconvd.db)
    before = idx_scans(pg, sconvd.db)
    with sconvd.client() as c:
        assert found(c, user, "Xylophone") == ["the xylophone lesson"]
    # an idle backend reports its statistics within 10 s (PostgreSQL
    # 15's PGSTAT_IDLE_INTERVAL)
    convdtest.wait_until(lambda: idx_scans(pg, sconvd.db) > before,
                         timeout=convdtest.scaled(15), interval=0.5,
                         what="an index scan of search_idx")
