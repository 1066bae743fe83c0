"""get_messages and delete_message through the real convd (issue 18,
points 2 and 3): paging back through 10,000 messages (many with equal
created_at), pages bounded by bytes, cursors that are not the user's;
deleting one message, refused for another user's.
"""
import pytest

import convdtest
from convdtest import RpcError

H = "simple_conversation_history"


def all_pages(c, user, provider, limit, conversation_id=None):
    pages, before = [], None
    while True:
        p = dict(user_id=user, provider=provider, limit=limit)
        if before is not None:
            p["before_id"] = before
        if conversation_id is not None:
            p["conversation_id"] = conversation_id
        r = c.call("get_messages", **p)
        pages.append(r["messages"])
        before = r["next_before_id"]
        if before is None:
            return pages
        assert before == r["messages"][0]["id"]


def test_paging_10000(client, schema):
    user = convdtest.uid()
    # 10,000 messages; ten share each created_at, and ids do not follow
    # time everywhere (an import of older messages after newer ones)
    schema.psql(f"INSERT INTO {H} (user_id, model_provider, role, content,"
                f" created_at) SELECT {convdtest.sql_literal(user)}, 'gemini',"
                " CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,"
                " 'message ' || i, timestamptz '2026-01-01'"
                " + (i / 10) * interval '1 second'"
                " FROM generate_series(1, 9000) i")
    schema.psql(f"INSERT INTO {H} (user_id, model_provider, role, content,"
                f" created_at) SELECT {convdtest.sql_literal(user)}, 'gemini', 'user',"
                " 'imported ' || i, timestamptz '2025-06-01'"
                " + i * interval '1 minute' FROM generate_series(1, 1000) i")
    # another provider, conversation and user: never in the pages
    schema.psql(f"INSERT INTO {H} (user_id, model_provider, role, content)"
                f" VALUES ({convdtest.sql_literal(user)}, 'openai', 'user', 'x'),"
                f" ('other', 'gemini', 'user', 'x')")
    client.call("add_message", user_id=user, provider="gemini", role="user",
                content="in another conversation", conversation_id="c2")
    want = [int(x) for x in schema.psql(
        f"SELECT id FROM {H} WHERE user_id = {convdtest.sql_literal(user)}"
        " AND model_provider = 'gemini' AND conversation_id = ''"
        " ORDER BY created_at, id").split()]
    assert len(want) == 10000
    for limit in (1000, 333):
        pages = all_pages(client, user, "gemini", limit)
        assert len(pages) == -(-10000 // limit)
        pos = {i: n for n, i in enumerate(want)}
        for p in pages:
            # each page oldest first
            ids = [m["id"] for m in p]
            assert ids == sorted(ids, key=pos.__getitem__)
        got = [m["id"] for p in reversed(pages) for m in p]
        assert got == want, limit
    # the default limit is 100
    r = client.call("get_messages", user_id=user, provider="gemini")
    assert [m["id"] for m in r["messages"]] == want[-100:]
    assert r["next_before_id"] == want[-100]
    # the other conversation pages by itself
    r = client.call("get_messages", user_id=user, provider="gemini",
                    conversation_id="c2")
    assert [m["content"] for m in r["messages"]] == [
        "in another conversation"]
    assert r["messages"][0]["conversation_id"] == "c2"
    assert r["next_before_id"] is None


def test_cursor_not_found(client):
    a, b = convdtest.uid(), convdtest.uid()
    ida = [client.call("add_message", user_id=a, provider="p", role="user",
                       content=f"a{i}")["id"] for i in range(3)]
    idb = client.call("add_message", user_id=b, provider="p", role="user",
                      content="b")["id"]
    # another user's message, another provider's, a deleted one
    for before, prov in [(idb, "p"), (ida[2], "q"), (2**63 - 2, "p")]:
        with pytest.raises(RpcError) as e:
            client.call("get_messages", user_id=a, provider=prov,
                        before_id=before)
        assert e.value.code == "not_found"
    r = client.call("get_messages", user_id=a, provider="p",
                    before_id=ida[1])
    assert [m["id"] for m in r["messages"]] == ida[:1]
    assert r["next_before_id"] is None
    r = client.call("get_messages", user_id=a, provider="p",
                    before_id=ida[0])
    assert r == {"messages": [], "next_before_id": None}
    for bad in [dict(limit=0), dict(limit=1001), dict(before_id=0),
                dict(before_id=-1), dict(conversation_id="")]:
        with pytest.raises(RpcError) as e:
            client.call("get_messages", user_id=a, provider="p", **bad)
        assert e.value.code == "invalid_params"


def test_pages_bounded_by_bytes(client, convd):
    user = convdtest.uid()
    big = "長" * 100000           # 300,000 bytes
    ids = [client.call("add_message", user_id=user, provider="p",
                       role="user", content=big)["id"] for _ in range(120)]
    got, before, pages = [], None, 0
    while True:
        p = dict(user_id=user, provider="p", limit=1000)
        if before:
            p["before_id"] = before
        r = client.call("get_messages", **p)
        pages += 1
        got = [m["id"] for m in r["messages"]] + got
        before = r["next_before_id"]
        if before is None:
            break
    assert got == ids and pages > 1


def test_delete_message(client, schema):
    a, b = convdtest.uid(), convdtest.uid()
    m1 = client.call("add_message", user_id=a, provider="p", role="user",
                     content="one", idempotency_key="key-1")["id"]
    m2 = client.call("add_message", user_id=a, provider="p", role="user",
                     content="two")["id"]
    mb = client.call("add_message", user_id=b, provider="p", role="user",
                     content="b's")["id"]
    # another user's message: not_found, and it stays
    with pytest.raises(RpcError) as e:
        client.call("delete_message", user_id=a, id=mb)
    assert e.value.code == "not_found"
    # the same words for a message that does not exist at all
    with pytest.raises(RpcError) as e2:
        client.call("delete_message", user_id=a, id=2**63 - 2)
    assert e2.value.code == "not_found"
    assert e.value.message == e2.value.message
    # another platform's
    with pytest.raises(RpcError) as e:
        client.call("delete_message", user_id=a, id=m1, platform="slack")
    assert e.value.code == "not_found"
    assert client.call("delete_message", user_id=a, id=m1) == {"deleted": 1}
    with pytest.raises(RpcError) as e:
        client.call("delete_message", a, m1)
    assert e.value.code == "not_found"
    left = schema.psql(f"SELECT id FROM {H} WHERE id IN ({m1}, {m2}, {mb})"
                       " ORDER BY id").split()
    assert left == [str(m2), str(mb)]
    # its key went with it: the key stores a new message
    r = client.call("add_message", user_id=a, provider="p", role="user",
                    content="one again", idempotency_key="key-1")
    assert "duplicate" not in r
