"""Every RPC method and every error code, through convdtest.Client against a
real convd and a private PostgreSQL (checked with psql behind convd's back).
"""

import os
import shutil
import subprocess
import time
import uuid

import msgpack
import pytest

import convdtest
from convdtest import (Client, RpcError, pinged_client, scaled,
                       sql_literal as q, uid, wait_until)

HIST = "simple_conversation_history"
THREADS = "user_thread_table"


@pytest.fixture(scope="module")
def convd(schema):
    """The module's convd, with the retention timer off so that rows the
    tests insert with old time stamps stay until a test removes them."""
    d = convdtest.Convd(schema, extra={"retention": {"days_to_keep": 0}})
    d.start()
    yield d
    d.stop()
    report = d.sanitizer_report()
    shutil.rmtree(d.tmp, ignore_errors=True)
    assert report is None, report


def rpc_error(client, method, *params, **named):
    with pytest.raises(RpcError) as ei:
        client.call(method, *params, **named)
    return ei.value


def db_usec(pg, where):
    out = pg.psql(f"SELECT (extract(epoch FROM created_at) * 1000000)::bigint"
                  f" FROM {HIST} WHERE {where} ORDER BY id")
    return [int(x) for x in out.splitlines()]


def add(client, user, provider="anthropic", role="user", content="hi",
        platform=None):
    named = {"user_id": user, "provider": provider, "role": role,
             "content": content}
    if platform is not None:
        named["platform"] = platform
    return client.call("add_message", **named)


# ----------------------------------------------------------- simple ones

def test_ping(client):
    assert client.call("ping") == "pong"


def test_health(client):
    # the first schema check (which also compares the live columns with
    # what the revisions promise) may still be running just after start
    h = wait_until(lambda: (lambda h: h if h["schema"] != "unknown" else
                            None)(client.call("health")), timeout=10,
                   what="the first schema check")
    assert isinstance(h, dict)
    assert {"ok", "database", "schema"} <= set(h), h
    assert h["ok"] is True, h


def test_stats_is_a_map(client):
    client.call("ping")
    s = client.call("stats")
    assert isinstance(s, dict) and s, s


# ----------------------------------------------------------- add_message

def test_add_message_result_and_commit(pg, client):
    user = uid()
    ids = []
    for i, role in enumerate(["user", "assistant", "system", "user"]):
        before = time.time()
        r = add(client, user, role=role, content=f"hello {i}")
        after = time.time()
        assert set(r) == {"id", "created_at"}, r
        assert isinstance(r["id"], int) and r["id"] > 0
        assert isinstance(r["created_at"], msgpack.Timestamp), r
        # Committed before the reply: another session sees the row now.
        row = pg.psql(f"SELECT user_id, model_provider, role, content, "
                      f"platform FROM {HIST} WHERE id = {r['id']}")
        assert row == f"{user}|anthropic|{role}|hello {i}|line"
        # created_at is the stored value, in UTC, about now.
        assert db_usec(pg, f"id = {r['id']}") == \
            [convdtest.ts_usec(r["created_at"])]
        t = r["created_at"].to_unix_nano() / 1e9
        assert before - 5 <= t <= after + 5, (before, t, after)
        ids.append(r["id"])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_add_message_pipelined_each_committed(pg, convd):
    user = uid()
    with convd.client() as c:
        msgids = [c.request("add_message", user, "gemini", "user", f"p{i}")
                  for i in range(50)]
        seen = {}
        for _ in msgids:
            m = c.recv()
            assert m[0] == 1 and m[2] is None, m
            seen[m[1]] = m[3]["id"]
            # Each acknowledged row is already visible.
            assert pg.psql(f"SELECT count(*) FROM {HIST} "
                           f"WHERE id = {m[3]['id']}") == "1"
        assert set(seen) == set(msgids)
    assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = {q(user)}") \
        == "50"


# -------------------------------------------------- get_recent_conversations

def test_recent_is_newest_2limit_oldest_first(client):
    user = uid()
    added = []
    for i in range(30):
        role = "user" if i % 2 == 0 else "assistant"
        r = add(client, user, role=role, content=f"turn {i:02d}")
        added.append((r["id"], role, f"turn {i:02d}", r["created_at"]))

    rows = client.call("get_recent_conversations", user_id=user,
                       provider="anthropic", limit=5)
    assert len(rows) == 10
    for row, (id_, role, content, created) in zip(rows, added[-10:]):
        assert set(row) == {"id", "role", "content", "created_at",
                            "provider"}, row
        assert row["id"] == id_
        assert row["role"] == role
        assert row["content"] == content
        assert row["provider"] == "anthropic"
        assert row["created_at"] == created
    # Default limit 10 -> 20 rows.
    rows = client.call("get_recent_conversations", user_id=user,
                       provider="anthropic")
    assert [r["content"] for r in rows] == [a[2] for a in added[-20:]]
    # Positional limit; limits past the end give everything.
    for limit in (15, 16, 1000):
        rows = client.call("get_recent_conversations", user, "anthropic",
                           limit)
        assert [r["id"] for r in rows] == [a[0] for a in added]
    rows = client.call("get_recent_conversations", user, "anthropic", 1)
    assert [r["content"] for r in rows] == ["turn 28", "turn 29"]


def test_recent_unknown_user_is_empty(client):
    assert client.call("get_recent_conversations", user_id=uid(),
                       provider="anthropic") == []


def test_recent_ties_broken_by_id(pg, client):
    user = uid()
    # A..F inserted in this order (ids ascending); times: A=t, B=t-1s,
    # C=t, D=t+1s, E=t, F=t-1s.  Ordered by (created_at, id): B F A C E D.
    t = "(date_trunc('second', now()) - interval '1 hour')"
    offs = {"A": "0", "B": "-1", "C": "0", "D": "1", "E": "0", "F": "-1"}
    values = ",".join(
        f"({q(user)}, 'line', 'anthropic', 'user', {q(k)}, "
        f"{t} + interval '{v} second')" for k, v in offs.items())
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES {values}")

    def contents(limit):
        rows = client.call("get_recent_conversations", user_id=user,
                           provider="anthropic", limit=limit)
        return "".join(r["content"] for r in rows), rows

    got, rows = contents(3)
    assert got == "BFACED"
    ids = [r["id"] for r in rows]
    assert ids[2] < ids[3] < ids[4]          # A C E share created_at
    assert rows[2]["created_at"] == rows[3]["created_at"] \
        == rows[4]["created_at"]
    assert contents(2)[0] == "ACED"
    assert contents(1)[0] == "ED"

    # The cut falls inside a group of equal times: the highest ids win.
    user2 = uid()
    values = ",".join(f"({q(user2)}, 'line', 'anthropic', 'user', "
                      f"{q(str(i))}, {t})" for i in range(8))
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES {values}")
    for limit, want in ((1, ["6", "7"]), (2, ["4", "5", "6", "7"]),
                        (3, ["2", "3", "4", "5", "6", "7"])):
        for _ in range(3):      # stable from call to call
            rows = client.call("get_recent_conversations", user_id=user2,
                               provider="anthropic", limit=limit)
            assert [r["content"] for r in rows] == want


# ------------------------------------------------- platform and provider

def test_platform_separation(pg, client):
    user = uid()
    add(client, user, content="line 1")
    add(client, user, content="line 2", platform="line")
    for i in range(3):
        add(client, user, content=f"tg {i}", platform="telegram")
    assert pg.psql(f"SELECT platform, count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)} GROUP BY platform ORDER BY platform") == \
        "line|2\ntelegram|3"

    def hist(**kw):
        return [r["content"] for r in client.call(
            "get_recent_conversations", user_id=user, provider="anthropic",
            **kw)]
    assert hist() == ["line 1", "line 2"]
    assert hist(platform="line") == ["line 1", "line 2"]
    assert hist(platform="telegram") == ["tg 0", "tg 1", "tg 2"]
    assert hist(platform="discord") == []
    assert client.call("get_conversation_count", user_id=user) == 2
    assert client.call("get_conversation_count", user_id=user,
                       platform="telegram") == 3
    assert client.call("get_conversation_count", user_id=user,
                       provider="anthropic", platform="telegram") == 3
    st = client.call("get_user_statistics", user_id=user, platform="telegram")
    assert st["total_messages"] == 3
    assert st["providers"]["anthropic"]["message_count"] == 3
    assert client.call("get_user_statistics", user)["total_messages"] == 2

    assert client.call("clear_user_history", user_id=user,
                       provider="anthropic", platform="telegram") == \
        {"deleted": 3}
    assert hist(platform="telegram") == []
    assert hist() == ["line 1", "line 2"]

    # Threads are per platform too.
    assert client.call("save_thread", user_id=user, thread_id="th-line") \
        is True
    assert client.call("save_thread", user_id=user, thread_id="th-tg",
                       platform="telegram") is True
    assert client.call("get_thread", user_id=user) == "th-line"
    assert client.call("get_thread", user_id=user, platform="telegram") == \
        "th-tg"
    assert client.call("get_thread", user, "discord") is None
    assert client.call("delete_thread", user_id=user, platform="telegram") \
        == {"deleted": 1}
    assert client.call("get_thread", user_id=user) == "th-line"
    assert client.call("get_thread", user_id=user, platform="telegram") \
        is None


def test_provider_separation_count_and_clear(pg, client):
    user, other = uid(), uid()
    for i in range(3):
        add(client, user, provider="anthropic", content=f"a{i}")
    for i in range(2):
        add(client, user, provider="gemini", content=f"g{i}")
    add(client, other, provider="anthropic", content="other")

    def contents(provider):
        return [r["content"] for r in client.call(
            "get_recent_conversations", user_id=user, provider=provider)]
    assert contents("anthropic") == ["a0", "a1", "a2"]
    assert contents("gemini") == ["g0", "g1"]
    assert [r["provider"] for r in client.call(
        "get_recent_conversations", user_id=user, provider="gemini")] == \
        ["gemini", "gemini"]
    assert contents("ollama") == []

    assert client.call("get_conversation_count", user_id=user) == 5
    assert client.call("get_conversation_count", user) == 5
    assert client.call("get_conversation_count", user_id=user,
                       provider="anthropic") == 3
    assert client.call("get_conversation_count", user, "gemini") == 2
    assert client.call("get_conversation_count", user_id=uid()) == 0

    assert client.call("clear_user_history", user_id=user,
                       provider="anthropic") == {"deleted": 3}
    assert client.call("get_conversation_count", user_id=user) == 2
    assert client.call("get_conversation_count", user_id=user,
                       provider="anthropic") == 0
    assert contents("gemini") == ["g0", "g1"]
    assert client.call("get_conversation_count", user_id=other) == 1
    assert client.call("clear_user_history", user, "anthropic") == \
        {"deleted": 0}
    assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "2"


def test_user_statistics(client):
    user = uid()
    last = {}
    for i in range(3):
        last["anthropic"] = add(client, user, provider="anthropic",
                                content=f"a{i}")["created_at"]
    for i in range(2):
        last["gemini"] = add(client, user, provider="gemini",
                             content=f"g{i}")["created_at"]
    add(client, user, provider="ollama", content="elsewhere",
        platform="telegram")
    st = client.call("get_user_statistics", user_id=user)
    assert st == {
        "total_messages": 5,
        "providers": {
            "anthropic": {"message_count": 3,
                          "last_message_at": last["anthropic"]},
            "gemini": {"message_count": 2, "last_message_at": last["gemini"]},
        },
    }
    for v in st["providers"].values():
        assert isinstance(v["last_message_at"], msgpack.Timestamp)
    assert client.call("get_user_statistics", uid()) == \
        {"total_messages": 0, "providers": {}}


# ---------------------------------------------------------------- threads

def test_threads(pg, client):
    user = uid()
    assert client.call("get_thread", user_id=user) is None
    assert client.call("save_thread", user_id=user, thread_id="thread_abc") \
        is True
    assert client.call("get_thread", user_id=user) == "thread_abc"
    assert pg.psql(f"SELECT thread_id, platform FROM {THREADS} WHERE "
                   f"user_id = {q(user)}") == "thread_abc|line"
    # Upsert: the value is replaced and created_at reset.
    pg.psql(f"UPDATE {THREADS} SET created_at = now() - interval '10 days' "
            f"WHERE user_id = {q(user)}")
    assert client.call("save_thread", user, "thread_xyz") is True
    assert client.call("get_thread", user) == "thread_xyz"
    assert pg.psql(f"SELECT thread_id, created_at > now() - interval "
                   f"'1 hour' FROM {THREADS} WHERE user_id = {q(user)}") == \
        "thread_xyz|t"
    assert client.call("delete_thread", user_id=user) == {"deleted": 1}
    assert client.call("get_thread", user_id=user) is None
    assert client.call("delete_thread", user_id=user) == {"deleted": 0}
    assert pg.psql(f"SELECT count(*) FROM {THREADS} WHERE user_id = "
                   f"{q(user)}") == "0"


# ---------------------------------------------------------------- cleanup

def deleted(r):
    """{deleted: n} (a "skipped": false beside it is allowed: it says that
    no other convd held the retention lock)."""
    assert isinstance(r, dict) and "deleted" in r, r
    assert set(r) <= {"deleted", "skipped"} and not r.get("skipped"), r
    assert isinstance(r["deleted"], int), r
    return r["deleted"]


def test_cleanup_old_conversations(pg, client):
    user = uid()
    rows = [("old", "40 days"), ("old", "31 days"), ("old", "400 days"),
            ("keep", "29 days"), ("keep", "1 hour"), ("keep", "0 seconds")]
    values = ",".join(
        f"({q(user)}, 'line', 'anthropic', 'user', {q(c)}, "
        f"now() - interval '{age}')" for c, age in rows)
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES {values}")
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES ({q(user)}, 'telegram', 'gemini', "
            f"'assistant', 'old', now() - interval '35 days')")
    pg.psql(f"INSERT INTO {THREADS} (user_id, platform, thread_id, "
            f"created_at) VALUES ({q(user)}, 'line', 'ancient-thread', "
            f"now() - interval '400 days')")
    r = client.call("cleanup_old_conversations", days_to_keep=30)
    assert deleted(r) == 4
    assert pg.psql(f"SELECT content, count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)} GROUP BY content") == "keep|3"
    # Threads are never touched.
    assert client.call("get_thread", user) == "ancient-thread"
    assert deleted(client.call("cleanup_old_conversations", 30)) == 0
    # A smaller window removes the 29-day row.
    assert deleted(client.call("cleanup_old_conversations",
                               days_to_keep=28)) == 1


def test_cleanup_days_to_keep_range(pg, client):
    user = uid()
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES ({q(user)}, 'line', 'p', 'user', "
            f"'1990', '1990-06-01 12:00:00+00'), ({q(user)}, 'line', 'p', "
            f"'user', 'today', now())")
    try:
        # The largest windows reach back before 1970: nothing is that old.
        for days in (36500, 20000):
            assert deleted(client.call("cleanup_old_conversations",
                                       days)) == 0
        # days_to_keep 0 keeps nothing older than now.
        assert deleted(client.call("cleanup_old_conversations", 0)) >= 2
        assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                       f"{q(user)}") == "0"
    finally:
        pg.psql(f"DELETE FROM {HIST} WHERE user_id = {q(user)}")


def test_cleanup_default_days_from_config(pg_factory, convd_factory):
    own = pg_factory()      # exact counts: no other test's rows here
    d = convd_factory(own, extra={"retention": {"days_to_keep": 45,
                                                "interval": 86400}})
    user = uid()
    own.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, "
             f"role, content, created_at) VALUES "
             f"({q(user)}, 'line', 'p', 'user', 'forty', "
             f"now() - interval '40 days'), "
             f"({q(user)}, 'line', 'p', 'user', 'fifty', "
             f"now() - interval '50 days')")
    with d.client() as c:
        r = c.call("cleanup_old_conversations")
    # The retention timer's first run (a few seconds after start) may
    # have got there first, or hold the retention lock right now.
    if r.get("skipped"):
        wait_until(lambda: own.psql(
            f"SELECT string_agg(content, ',') FROM {HIST}") == "forty",
            timeout=scaled(30), what="the retention run")
    else:
        assert deleted(r) in (0, 1), r
    assert own.psql(f"SELECT content FROM {HIST}") == "forty"


# ---------------------------------------------------------------- Unicode

UNICODE = [
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u3053\u3093\u306b\u3061\u306f",
    "\U0001f600\U0001f44d\U0001f3fd\U0001f468\u200d\U0001f469\u200d"
    "\U0001f467\u200d\U0001f466",
    "\ud55c\uad6d\uc5b4 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 "
    "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "e\u0301 \u00e9 \u200b\ufeff \U0010ffff \u0080 \u07ff \u0800 \uffff",
    "line one\nline two\r\n\ttabbed | pipe ' quote \" dq \\ backslash",
]


def test_unicode_round_trip(pg, client):
    user = "\u30e6\u30fc\u30b6\u30fc\U0001f642-" + uuid.uuid4().hex
    provider = "\u63d0\u4f9b\u8005"
    ids = [add(client, user, provider=provider, content=c)["id"]
           for c in UNICODE]
    rows = client.call("get_recent_conversations", user_id=user,
                       provider=provider)
    assert [r["content"] for r in rows] == UNICODE
    assert all(r["provider"] == provider for r in rows)
    # Byte-exact in the database.
    for id_, content in zip(ids, UNICODE):
        hexed = pg.psql(f"SELECT encode(convert_to(content, 'UTF8'), 'hex') "
                        f"|| ':' || encode(convert_to(user_id, 'UTF8'), "
                        f"'hex') FROM {HIST} WHERE id = {id_}")
        assert hexed == content.encode().hex() + ":" + user.encode().hex()
    assert client.call("save_thread", user, "\u7dda\U0001f9f5") is True
    assert client.call("get_thread", user) == "\u7dda\U0001f9f5"


def test_content_size_limit(convd_factory, schema):
    d = convd_factory(schema, extra={"server": {"max_content_bytes": 1000}})
    user = uid()
    with d.client() as c:
        for ok in ("\u00e9" * 500, "a" * 1000, "\u20ac" * 333 + "a",
                   "\U0001f600" * 250):
            assert len(ok.encode()) == 1000
            r = add(c, user, content=ok)
            assert schema.psql(f"SELECT octet_length(content) FROM {HIST} "
                               f"WHERE id = {r['id']}") == "1000"
        for bad in ("\u00e9" * 500 + "a", "a" * 1001, "\U0001f600" * 251,
                    "a" * 5000):
            e = rpc_error(c, "add_message", user_id=user,
                          provider="anthropic", role="user", content=bad)
            assert e.code == "invalid_params", e
            assert "content" in e.message, e
        assert c.call("ping") == "pong"
        assert c.call("get_conversation_count", user) == 4


def test_default_content_limit_is_1mib(client, pg):
    user = uid()
    r = add(client, user, content="x" * (1 << 20))
    assert pg.psql(f"SELECT octet_length(content) FROM {HIST} WHERE id = "
                   f"{r['id']}") == str(1 << 20)
    try:
        add(client, user, content="x" * ((1 << 20) + 1))
    except RpcError as e:
        assert e.code == "invalid_params" and "content" in e.message, e
    except OSError:
        pass    # refused by max_request_bytes instead: also a refusal
    else:
        raise AssertionError("content of 1 MiB + 1 byte accepted")
    assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "1"


# ------------------------------------------------------------- validation

class RawStr(bytes):
    """Bytes to be sent as a msgpack *str* (e.g. invalid UTF-8)."""


BASE = {
    "add_message": {"user_id": "v-user", "provider": "anthropic",
                    "role": "user", "content": "hello"},
    "get_recent_conversations": {"user_id": "v-user",
                                 "provider": "anthropic"},
    "clear_user_history": {"user_id": "v-user", "provider": "anthropic"},
    "get_conversation_count": {"user_id": "v-user"},
    "get_user_statistics": {"user_id": "v-user"},
    "get_thread": {"user_id": "v-user"},
    "save_thread": {"user_id": "v-user", "thread_id": "t-1"},
    "delete_thread": {"user_id": "v-user"},
    "cleanup_old_conversations": {},
}
# Positional order (HACKING.md).
ORDER = {
    "add_message": ["user_id", "provider", "role", "content", "platform",
                    "idempotency_key"],
    "get_recent_conversations": ["user_id", "provider", "limit", "platform"],
    "clear_user_history": ["user_id", "provider", "platform"],
    "get_conversation_count": ["user_id", "provider", "platform"],
    "get_user_statistics": ["user_id", "platform"],
    "get_thread": ["user_id", "platform"],
    "save_thread": ["user_id", "thread_id", "platform"],
    "delete_thread": ["user_id", "platform"],
    "cleanup_old_conversations": ["days_to_keep"],
    "ping": [],
    "stats": [],
    "health": [],
}
STR_KIND = {"user_id": 255, "thread_id": 255, "provider": 50, "platform": 50,
            "role": None, "content": None}
REQUIRED = {m: list(p) for m, p in BASE.items()}

INVALID_UTF8 = [b"\xff", b"ab\xfe", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
                b"\xf8\x88\x80\x80\x80", b"ab\xe4\xb8", b"\x80", b"a\xe4b"]


def _cases():
    cases = []

    def case(id_, method, params, name):
        cases.append(pytest.param(method, params, name, id=id_))

    for method, base in BASE.items():
        # (nil is "not given": for an optional parameter that is its
        # default, so nil is only tested on required ones.)
        for p in REQUIRED[method]:
            named = {k: v for k, v in base.items() if k != p}
            case(f"{method}-missing-{p}", method, [named], p)
        params = list(base) + [p for p in ("platform",)
                               if p in ORDER[method]]
        for p in params:
            if p not in STR_KIND:
                continue
            for label, bad in (("int", 5), ("array", ["x"]),
                               ("map", {"a": "b"}), ("bool", True),
                               ("float", 1.5), ("bin", b"bytes"),
                               ("nil", None) if p in REQUIRED[method]
                               else ("neg", -1),
                               ("empty", ""), ("nul", "a\x00b"),
                               ("nul-only", "\x00")):
                case(f"{method}-{p}-{label}", method,
                     [dict(base, **{p: bad})], p)
            for i, bad in enumerate(INVALID_UTF8):
                case(f"{method}-{p}-utf8-{i}", method,
                     [dict(base, **{p: RawStr(bad)})], p)
            maxlen = STR_KIND[p]
            if maxlen:
                case(f"{method}-{p}-too-long", method,
                     [dict(base, **{p: "x" * (maxlen + 1)})], p)
                case(f"{method}-{p}-too-long-multibyte", method,
                     [dict(base, **{p: "\u00e9" * ((maxlen + 2) // 2)})], p)
        # Unknown named parameter; too many positional ones.
        case(f"{method}-unknown-param", method,
             [dict(base, no_such_param=1)], "no_such_param")
        positional = [base.get(k, "line") if k != "days_to_keep" else 30
                      for k in ORDER[method]]
        if method == "get_recent_conversations":
            positional[2] = 5
        case(f"{method}-too-many-positional", method,
             positional + ["extra"], None)
    for method in ("ping", "stats", "health"):
        case(f"{method}-too-many-positional", method, ["extra"], None)
        case(f"{method}-unknown-param", method, [{"bogus": 1}], "bogus")
    for bad in ("admin", "User", "ASSISTANT", "user ", " user", "tool",
                "function", "usr"):
        case(f"role-{bad.strip() or 'x'}-{len(bad)}", "add_message",
             [dict(BASE["add_message"], role=bad)], "role")
    for label, bad in (("0", 0), ("1001", 1001), ("-1", -1), ("str", "5"),
                       ("bool", True), ("float", 2.0), ("huge", 2 ** 40),
                       ("u64", 2 ** 64 - 1)):
        case(f"limit-{label}", "get_recent_conversations",
             [dict(BASE["get_recent_conversations"], limit=bad)], "limit")
    for label, bad in (("-1", -1), ("36501", 36501), ("str", "30"),
                       ("float", 30.0), ("huge", 2 ** 63)):
        case(f"days_to_keep-{label}", "cleanup_old_conversations",
             [{"days_to_keep": bad}], "days_to_keep")
    # Positional values are checked the same way.
    case("add_message-positional-content-int", "add_message",
         ["v-user", "anthropic", "user", 5], "content")
    case("add_message-positional-role", "add_message",
         ["v-user", "anthropic", "robot", "x"], "role")
    case("add_message-positional-missing-content", "add_message",
         ["v-user", "anthropic", "user"], "content")
    case("add_message-positional-utf8", "add_message",
         ["v-user", RawStr(b"\xff"), "user", "x"], "provider")
    case("get_recent-positional-limit", "get_recent_conversations",
         ["v-user", "anthropic", 0], "limit")
    return cases


def _has_raw(obj):
    if isinstance(obj, RawStr):
        return True
    if isinstance(obj, dict):
        return any(_has_raw(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_raw(v) for v in obj)
    return False


def send_params(client, method, params, msgid):
    frame = [0, msgid, method, params]
    if _has_raw(params):
        # Every str and bytes object becomes a msgpack str.
        data = convdtest.packb_raw(frame)
    else:
        data = msgpack.packb(frame, use_bin_type=True)
    client.send_raw(data)
    m = client.recv()
    assert m is not None, "connection closed"
    assert m[0] == 1 and m[1] == msgid, m
    return m


@pytest.mark.parametrize("method,params,name", _cases())
def test_invalid_params(client, method, params, name):
    m = send_params(client, method, params, 71)
    err = m[2]
    assert err is not None, f"accepted: {m!r}"
    assert err["code"] == "invalid_params", m
    if name:
        assert name in err["message"], m
    assert m[3] is None
    # The connection stays usable.
    assert client.call("ping") == "pong"


def test_rejected_requests_store_nothing(pg, client):
    user = uid()
    send_params(client, "add_message",
                [dict(BASE["add_message"], user_id=user, role="robot")], 1)
    send_params(client, "add_message",
                [dict(BASE["add_message"], user_id=user,
                      content=RawStr(b"\xff"))], 2)
    send_params(client, "save_thread",
                [{"user_id": user, "thread_id": ""}], 3)
    assert pg.psql(f"SELECT (SELECT count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)}) + (SELECT count(*) FROM {THREADS} WHERE "
                   f"user_id = {q(user)})") == "0"


@pytest.mark.parametrize("param,maxlen", [("user_id", 255), ("provider", 50),
                                          ("platform", 50)])
def test_length_boundaries_accepted(pg, client, param, maxlen):
    params = dict(BASE["add_message"], user_id=uid())
    # Exactly the maximum in bytes, in ASCII and in 2-byte characters.
    for value in ("x" * maxlen, "\u00e9" * (maxlen // 2) + "z" * (maxlen % 2)):
        params[param] = value
        m = send_params(client, "add_message", [params], 5)
        assert m[2] is None, m
        col = {"provider": "model_provider"}.get(param, param)
        assert pg.psql(f"SELECT octet_length({col}) FROM {HIST} WHERE id = "
                       f"{m[3]['id']}") == str(maxlen)


def test_thread_id_length_boundary(client):
    user = uid()
    for value in ("t" * 255, "\u00e9" * 127 + "t"):
        assert client.call("save_thread", user, value) is True
        assert client.call("get_thread", user) == value
    e = rpc_error(client, "save_thread", user, "t" * 256)
    assert e.code == "invalid_params" and "thread_id" in e.message


def test_nil_means_default(pg, client):
    user = uid()
    for i in range(25):
        add(client, user, content=str(i))
    rows = client.call("get_recent_conversations", user, "anthropic", None,
                       None)
    assert [r["content"] for r in rows] == [str(i) for i in range(5, 25)]
    r = client.call("add_message", user_id=user, provider="anthropic",
                    role="user", content="nil platform", platform=None)
    assert pg.psql(f"SELECT platform FROM {HIST} WHERE id = {r['id']}") == \
        "line"
    assert client.call("get_conversation_count", user, None, None) == 26
    e = rpc_error(client, "get_thread", None)
    assert e.code == "invalid_params" and "user_id" in e.message


def test_limit_boundaries_accepted(client):
    user = uid()
    add(client, user)
    for limit in (1, 1000):
        rows = client.call("get_recent_conversations", user_id=user,
                           provider="anthropic", limit=limit)
        assert len(rows) == 1


# ------------------------------------------------------------ error codes

def test_unavailable_when_database_down(pg_factory, convd_factory):
    own = pg_factory()
    d = convd_factory(own, extra={"pool": {"size": 2, "max_overflow": 0,
                                           "timeout": 2}})
    user = uid()
    with d.client(timeout=scaled(30)) as c:
        add(c, user, content="before")
        own.stop("immediate")
        for _ in range(2):
            t0 = time.monotonic()
            e = rpc_error(c, "get_conversation_count", user_id=user)
            assert e.code in ("unavailable", "timeout"), e
            assert time.monotonic() - t0 < scaled(10)
            e = rpc_error(c, "add_message", user_id=user,
                          provider="anthropic", role="user", content="lost")
            assert e.code in ("unavailable", "timeout"), e
        # Requests that need no database are still served.
        assert c.call("ping") == "pong"
        assert isinstance(c.call("stats"), dict)
        own.start()

        def works():
            try:
                return add(c, user, content="after")
            except RpcError as e:
                assert e.code in ("unavailable", "timeout"), e
                return None
        r = wait_until(works, timeout=scaled(40), interval=0.2,
                       what="convd to reconnect")
        assert isinstance(r["id"], int)
    assert own.psql(f"SELECT string_agg(content, ',' ORDER BY id) FROM "
                    f"{HIST} WHERE user_id = {q(user)}") == "before,after"


def test_timeout_when_pool_exhausted(pg, convd_factory):
    d = convd_factory(pg, extra={"pool": {"size": 1, "max_overflow": 0,
                                          "timeout": 1}})
    user = uid()
    with d.client() as a, d.client() as b:
        add(a, user, content="warm-up")   # the one connection is open
        locker = subprocess.Popen(
            [pg.bin("psql"), "-h", pg.sockdir, "-p", str(pg.port), "-U",
             pg.user, "-d", pg.dbname, "-X", "-q", "-c",
             f"BEGIN; LOCK TABLE {HIST} IN ACCESS EXCLUSIVE MODE; "
             f"SELECT pg_sleep(60); COMMIT;"],
            env=dict(os.environ, PGAPPNAME="convd-test-locker"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        locks = (f"SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                 f"c.oid = l.relation WHERE c.relname = '{HIST}' AND ")
        try:
            wait_until(lambda: pg.psql(
                locks + "l.mode = 'AccessExclusiveLock' AND l.granted") == "1",
                timeout=scaled(10), what="the table lock")
            # a's insert takes the only connection and blocks on the lock.
            msgid = a.request("add_message", user, "anthropic", "user",
                              "blocked")
            wait_until(lambda: pg.psql(locks + "NOT l.granted") != "0",
                       timeout=scaled(10),
                       what="convd's insert to wait on the lock")
            # b can get no connection: timeout after about 1 s.
            t0 = time.monotonic()
            e = rpc_error(b, "get_conversation_count", user_id=user)
            elapsed = time.monotonic() - t0
            assert e.code == "timeout", e
            assert 0.7 <= elapsed <= scaled(5), elapsed
            assert b.call("ping") == "pong"
        finally:
            pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'convd-test-locker'")
            locker.wait(10)
        m = a.recv()
        assert m[0] == 1 and m[1] == msgid and m[2] is None, m
        assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE id = "
                       f"{m[3]['id']} AND content = 'blocked'") == "1"
        assert b.call("get_conversation_count", user_id=user) == 2


def test_permission_denied_for_non_admin(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"admin_users": "nobody",
                                                "admin_groups": "nogroup"}})
    user = uid()
    with d.client() as c:
        for params in ((), ({"days_to_keep": 30},), (30,)):
            e = rpc_error(c, "cleanup_old_conversations", *params)
            assert e.code == "permission_denied", e
        # Everything else is still allowed, on the same connection.
        assert c.call("ping") == "pong"
        add(c, user)
        assert c.call("get_conversation_count", user) == 1
        assert c.call("save_thread", user, "t") is True


def test_overloaded_when_max_clients_exceeded(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"max_clients": 2}})

    c1 = wait_until(lambda: pinged_client(d.socket),
                    timeout=scaled(10), what="first client")
    c2 = wait_until(lambda: pinged_client(d.socket),
                    timeout=scaled(10), what="second client")
    try:
        with Client(d.socket, timeout=scaled(5)) as c3:
            m = c3.recv()
            assert m is not None, "closed without an error"
            assert m[0] == 1 and m[1] is None, m
            assert m[2]["code"] == "overloaded", m
            assert c3.recv() is None, "connection not closed"
        assert c1.call("ping") == "pong"
        assert c2.call("ping") == "pong"
    finally:
        c1.close()
    # A slot is free again once c1 is gone.
    c4 = wait_until(lambda: pinged_client(d.socket),
                    timeout=scaled(10), what="a freed slot")
    c4.close()
    c2.close()
