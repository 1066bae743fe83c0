"""Issue 18 through the Python client (clients/python, convd_client),
against the real convd and PostgreSQL: get_context windows that keep tool
exchanges whole, get_messages paging and iter_messages back through a
long history, delete_message refused for another user's message,
search_messages in Traditional Chinese, English and mixed text with users
kept apart, forget_user leaving nothing in any table, and which of these
calls the client sends again after a lost answer.  The asyncio manager
is checked on the same calls."""

import asyncio
import sys

import pytest

import convdtest
from convdtest import DroppingProxy, sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConvdConnectionError, ConvdError,
                          ConversationManager, NotFoundError)

HIST = "simple_conversation_history"


@pytest.fixture
def mgr(convd):
    m = ConversationManager(convd.socket)
    yield m
    m.close()


CALLS = {"tool_calls": [{"id": "call_a1", "type": "function",
                         "function": {"name": "weather", "arguments": "{}"}},
                        {"id": "call_b2", "type": "function",
                         "function": {"name": "time", "arguments": "{}"}}]}


def tool_exchange(m, user, conv):
    """Q1, A1, a question, an assistant message calling two tools, their
    results (out of order), the answer: 10 + 10 + 10 + 20 + 15 + 15 + 10
    = 90 tokens."""
    add = [("user", "Q1", 10, None), ("assistant", "A1", 10, None),
           ("user", "weather and time?", 10, None),
           ("assistant", CALLS, 20, None),
           ("tool", "14:05", 15, "call_b2"),
           ("tool", "21°C", 15, "call_a1"),
           ("assistant", "21°C at 14:05", 10, None)]
    for role, content, tokens, call in add:
        m.add_message(user, "openai", role, content, conversation_id=conv,
                      tokens=tokens, tool_call_id=call)


def contents(ctx):
    return [r["content"] for r in ctx["messages"]]


# ------------------------------------------------------------ get_context

def test_get_context_keeps_tool_exchanges_whole(mgr):
    user = uid()
    tool_exchange(mgr, user, "w")

    def ctx(max_tokens, **kw):
        return mgr.get_context(user, "openai", max_tokens,
                               conversation_id="w", **kw)

    whole = ctx(1000)
    assert contents(whole) == ["Q1", "A1", "weather and time?", CALLS,
                               "14:05", "21°C", "21°C at 14:05"]
    assert (whole["total_tokens"], whole["truncated"]) == (90, False)
    assert whole["messages"][4]["tool_call_id"] == "call_b2"
    assert all(isinstance(r["id"], int) for r in whole["messages"])
    assert [r["id"] for r in whole["messages"]] == sorted(
        r["id"] for r in whole["messages"])
    exact = ctx(90)
    assert (len(exact["messages"]), exact["truncated"]) == (7, False)
    cut = ctx(89)
    assert contents(cut)[0] == "A1"
    assert (cut["total_tokens"], cut["truncated"]) == (80, True)
    # the exchange (call + both results + answer) fits exactly
    four = ctx(60)
    assert contents(four) == [CALLS, "14:05", "21°C", "21°C at 14:05"]
    assert four["total_tokens"] == 60
    # one token less: the exchange goes as a whole, never its results alone
    one = ctx(59)
    assert contents(one) == ["21°C at 14:05"]
    assert (one["total_tokens"], one["truncated"]) == (10, True)
    # a budget smaller than the newest message
    none = ctx(5)
    assert (none["messages"], none["total_tokens"], none["truncated"]) == \
        ([], 0, True)
    # two messages at most: the newest two would start with a result
    assert contents(ctx(1000, max_messages=2)) == ["21°C at 14:05"]
    for bad in (dict(max_tokens=0), dict(max_tokens=10000001)):
        with pytest.raises(ConvdError) as ei:
            mgr.get_context(user, "openai", conversation_id="w", **bad)
        assert ei.value.code == "invalid_params"


def test_get_context_system_messages_and_estimates(mgr):
    user = uid()
    mgr.add_message(user, "openai", "system", "You are a travel guide.",
                    conversation_id="s", tokens=5)
    tool_exchange(mgr, user, "s")
    got = mgr.get_context(user, "openai", 65, conversation_id="s",
                          include_system=True)
    assert contents(got) == ["You are a travel guide.", CALLS, "14:05",
                             "21°C", "21°C at 14:05"]
    assert (got["total_tokens"], got["truncated"]) == (65, True)
    # without stored tokens: the estimate, about a token per CJK character
    # and one per few bytes of Latin text
    zh, en = uid("zh"), uid("en")
    mgr.add_message(zh, "openai", "user", "台灣的夜市小吃非常有名" * 10)
    mgr.add_message(en, "openai", "user", "The night markets of Taiwan "
                    "are famous for their food. " * 7)
    zh_tokens = mgr.get_context(zh, "openai", 100000)["total_tokens"]
    en_tokens = mgr.get_context(en, "openai", 100000)["total_tokens"]
    assert 70 <= zh_tokens <= 220, zh_tokens          # 110 characters
    assert 50 <= en_tokens <= 200, en_tokens          # 385 bytes


# ---------------------------------------------------- get_messages paging

def test_get_messages_pages_back_through_everything(mgr, pg):
    user = uid()
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content) SELECT {q(user)}, 'line', 'openai', CASE WHEN g % 2 = 0"
            f" THEN 'user' ELSE 'assistant' END, 'm' || g FROM "
            f"generate_series(1, 2500) g")
    mgr.add_message(user, "openai", "user", "elsewhere", conversation_id="x")
    ids = [int(x) for x in pg.psql(
        f"SELECT id FROM {HIST} WHERE user_id = {q(user)} AND "
        f"conversation_id = '' ORDER BY id DESC").split()]
    first = mgr.get_messages(user, "openai")
    assert [r["content"] for r in first["messages"]] == \
        [f"m{g}" for g in range(2401, 2501)]      # default 100, oldest first
    pages, before = [], None
    while True:
        page = mgr.get_messages(user, "openai", before_id=before, limit=1000)
        pages.append(page["messages"])
        before = page["next_before_id"]
        if before is None:
            break
        assert before == page["messages"][0]["id"]
    assert [len(p) for p in pages] == [1000, 1000, 500]
    assert [r["id"] for p in reversed(pages) for r in p] == ids[::-1]
    assert pages[2][0]["content"] == "m1"
    got = [r["id"] for r in mgr.iter_messages(user, "openai", page_size=700)]
    assert got == ids
    assert [r["content"] for r in mgr.iter_messages(
        user, "openai", conversation_id="x")] == ["elsewhere"]
    assert mgr.get_messages(uid(), "openai") == {"messages": [],
                                                 "next_before_id": None}
    with pytest.raises(ConvdError) as ei:
        mgr.get_messages(user, "openai", limit=1001)
    assert ei.value.code == "invalid_params"


# --------------------------------------------------------- delete_message

def test_delete_message_only_the_users_own(mgr, pg):
    user, other = uid(), uid()
    mgr.add_message(user, "openai", "user", "keep")
    mgr.add_message(user, "openai", "user", "drop", conversation_id="c")
    mgr.add_message(other, "openai", "user", "not yours")
    mine = {r["content"]: r["id"] for r in mgr.iter_messages(user, "openai")}
    mine.update({r["content"]: r["id"] for r in mgr.iter_messages(
        user, "openai", conversation_id="c")})
    theirs = next(mgr.iter_messages(other, "openai"))["id"]
    assert mgr.delete_message(user, mine["drop"]) is True
    with pytest.raises(NotFoundError) as ei:
        mgr.delete_message(user, mine["drop"])
    assert ei.value.code == "not_found" and isinstance(ei.value, ConvdError)
    with pytest.raises(NotFoundError):
        mgr.delete_message(user, theirs)
    with pytest.raises(NotFoundError):
        mgr.delete_message(user, 2 ** 62)
    assert convdtest.history_contents(pg, user) == ["keep"]
    assert convdtest.history_contents(pg, other) == ["not yours"]


# -------------------------------------------------------- search_messages

def test_search_chinese_english_mixed_and_users_apart(mgr):
    a, b = uid("sa"), uid("sb")
    texts = ["我們明天去台北101看跨年煙火",
             "The weather in Taipei is lovely today",
             "明天的meeting改到下午三點, near Taipei Main Station",
             "完全無關的訊息"]
    for t in texts:
        mgr.add_message(a, "openai", "user", t)
    mgr.add_message(a, "anthropic", "assistant",
                    [{"type": "text", "text": "夜市 in 台北 is open late"}],
                    conversation_id="trip")
    mgr.add_message(b, "openai", "user", "台北101 is very tall")

    def found(user, query, **kw):
        return [r["content"] for r in mgr.search_messages(user, query, **kw)]

    assert found(a, "台北101") == [texts[0]]
    assert found(b, "台北101") == ["台北101 is very tall"]
    assert found(a, "跨年煙火") == [texts[0]]
    assert found(a, "weather") == [texts[1]]
    assert found(a, "meeting") == [texts[2]]
    assert found(a, "下午三點") == [texts[2]]
    assert found(a, "Taipei") == [texts[2], texts[1]]     # newest first
    assert found(a, "Taipei", limit=1) == [texts[2]]
    hit = mgr.search_messages(a, "夜市")
    assert [r["content"] for r in hit] == [[{"type": "text",
                                             "text": "夜市 in 台北 is open "
                                             "late"}]]
    assert hit[0]["conversation_id"] == "trip"
    assert hit[0]["model_provider"] == "anthropic"
    assert isinstance(hit[0]["id"], int) and hit[0]["created_at"]
    assert found(a, "台北", model_provider="openai") == [texts[0]]
    assert found(a, "台北", conversation_id="trip") == \
        [[{"type": "text", "text": "夜市 in 台北 is open late"}]]
    assert found(a, "no such words anywhere") == []
    assert found(uid(), "Taipei") == []
    for bad in ("", "x" * 257):
        with pytest.raises(ConvdError) as ei:
            mgr.search_messages(a, bad)
        assert ei.value.code == "invalid_params"


# ------------------------------------------------------------ forget_user

def rows_left(pg, user):
    """Rows that mention the user in every table that has a user_id."""
    tables = pg.psql("SELECT DISTINCT table_name FROM "
                     "information_schema.columns WHERE column_name = "
                     "'user_id' AND table_schema = 'public'").split()
    assert HIST in tables and "conversation_state" in tables
    return {t: int(pg.psql(f'SELECT count(*) FROM "{t}" WHERE user_id = '
                           f"{q(user)}")) for t in tables}


def test_forget_user_leaves_nothing(mgr, pg):
    user, other = uid("fu"), uid("fo")
    for m_user in (user, other):
        mgr.add_message(m_user, "openai", "user", "hello")
        mgr.add_message(m_user, "anthropic", "assistant", "named",
                        conversation_id="c", metadata={"k": 1})
        mgr.add_message(m_user, "openai", "user", "on slack",
                        platform="slack")
        mgr.save_thread_id(m_user, "thread_1")
        mgr.set_state(m_user, "openai", {"r": 1}, conversation_id="c")
        mgr.set_state(m_user, "openai", {"r": 2}, platform="slack")
    mgr.import_message(user, "openai", "user", "imported, no key",
                       "2025-06-01T00:00:00Z")
    keys = int(pg.psql(f"SELECT count(idempotency_key) FROM {HIST} WHERE "
                       f"user_id = {q(user)}"))
    assert keys == 3
    before_other = rows_left(pg, other)
    got = mgr.forget_user(user)
    assert got == {"messages": 4, "threads": 1, "states": 2,
                   "idempotency_keys": 3}, got
    assert set(rows_left(pg, user).values()) == {0}
    assert rows_left(pg, other) == before_other
    assert mgr.forget_user(user) == {"messages": 0, "threads": 0,
                                     "states": 0, "idempotency_keys": 0}
    # one platform only
    got = mgr.forget_user(other, platform="slack")
    assert (got["messages"], got["states"]) == (1, 1)
    assert mgr.get_conversation_count(other) == 1
    assert mgr.get_thread_id_by_user_id(other) == "thread_1"


# -------------------------------------------------------------- retries

def test_reads_resent_deletes_not(mgr, pg, convd, tmp_path):
    user = uid()
    for i in range(3):
        mgr.add_message(user, "openai", "user", f"r{i}")
    ids = [r["id"] for r in mgr.iter_messages(user, "openai")]
    with DroppingProxy(convd.socket, str(tmp_path / "p1"), "get_messages",
                       drops=2) as read, \
            DroppingProxy(convd.socket, str(tmp_path / "p2"),
                          "delete_message", drops=1) as delete:
        m = ConversationManager(read.path)
        assert [r["content"] for r in
                m.get_messages(user, "openai")["messages"]] == \
            ["r0", "r1", "r2"]
        assert read.seen["get_messages"] == 3 and read.dropped == 2
        m.close()
        m = ConversationManager(delete.path)
        with pytest.raises(ConvdConnectionError) as ei:
            m.delete_message(user, ids[0])
        assert ei.value.code == "closed" and ei.value.sent is True
        assert delete.seen["delete_message"] == 1
        m.close()
    # it ran: sending it again would have said not_found
    assert convdtest.history_contents(pg, user) == ["r0", "r1"]


# ------------------------------------------------------------- asyncio

def test_async_manager(convd, pg):
    user = uid("ar")
    with ConversationManager(convd.socket) as sync:
        tool_exchange(sync, user, "a")

    async def main():
        async with AsyncConversationManager(convd.socket) as m:
            ctx = await m.get_context(user, "openai", 59,
                                      conversation_id="a")
            back = [r async for r in m.iter_messages(
                user, "openai", conversation_id="a", page_size=3)]
            found = await m.search_messages(user, "21°C",
                                            conversation_id="a")
            await m.delete_message(user, back[0]["id"])
            try:
                await m.delete_message(user, back[0]["id"])
                missing = False
            except NotFoundError:
                missing = True
            forgot = await m.forget_user(user)
            return ctx, back, found, missing, forgot

    ctx, back, found, missing, forgot = asyncio.run(
        asyncio.wait_for(main(), convdtest.scaled(60)))
    assert contents(ctx) == ["21°C at 14:05"] and ctx["truncated"] is True
    assert [r["content"] for r in back][:3] == ["21°C at 14:05", "21°C",
                                                "14:05"]
    assert len(back) == 7 and [r["id"] for r in back] == sorted(
        (r["id"] for r in back), reverse=True)
    assert [r["content"] for r in found] == ["21°C at 14:05", "21°C"]
    assert missing is True
    assert forgot["messages"] == 6
    assert convdtest.history_contents(pg, user) == []
