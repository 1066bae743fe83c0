"""Issue 17 through the Python client (clients/python, convd_client),
against the real convd and PostgreSQL: named conversations beside the
default one, the developer and tool roles, structured content stored and
returned exactly (binary signatures byte for byte), the optional message
fields, list_conversations, delete_conversation, provider state with
expected_version (two writers racing), the retry rule of a conditional
set_state, and export -> import of every field.  The asyncio manager is
checked on the same calls."""

import asyncio
import datetime
import os
import socket
import sys
import threading

import msgpack
import pytest

import convdtest
from convdtest import DroppingProxy, sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConflictError, ConvdConnectionError, ConvdError,
                          ConversationManager)

HIST = "simple_conversation_history"
SEED_KEYS = {"role", "content", "created_at", "model_provider"}


@pytest.fixture
def mgr(convd):
    m = ConversationManager(convd.socket)
    yield m
    m.close()


def raw_response(path, method, params):
    """The bytes of convd's whole response to one request."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(msgpack.packb([0, 1, method, [params]], use_bin_type=True))
    unpacker = msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            assert chunk, "convd closed the connection"
            data += chunk
            unpacker.feed(chunk)
            for msg in unpacker:
                assert msg[2] is None, msg[2]
                return data
    finally:
        s.close()


def iso_usec(text):
    """The client's ISO text (naive UTC) as microseconds since 1970."""
    d = datetime.datetime.fromisoformat(text) - datetime.datetime(1970, 1, 1)
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds


def db_row(pg, msg_id, cols):
    return pg.psql(f"SELECT {cols} FROM {HIST} WHERE id = {msg_id}")


def last_id(pg, user):
    return int(pg.psql(f"SELECT max(id) FROM {HIST} WHERE user_id = "
                       f"{q(user)}"))


# Content as LLM apps keep it.  A tool-call exchange in OpenAI Chat's shape
# and in the Responses API's shape, and Anthropic thinking blocks whose
# signatures are binary and must come back byte for byte.
SIG = bytes(range(256)) + os.urandom(64) + b"\x00\xff\xc1"   # not UTF-8
CHAT_CALL = {"tool_calls": [
    {"id": "call_a1", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "台北"}'}},
    {"id": "call_b2", "type": "function",
     "function": {"name": "get_time", "arguments": "{}"}}]}
THINKING = [
    {"type": "thinking", "thinking": "The user wants the weather.",
     "signature": SIG},
    {"type": "redacted_thinking", "data": SIG[::-1]},
    {"type": "text", "text": "Let me check."},
    {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
     "input": {"city": "Taipei", "days": 3, "units": None, "ratio": 0.5,
               "flags": [True, False], "big": 2 ** 63 - 1, "neg": -2 ** 63}},
]
TOOL_RESULT = [{"type": "tool_result", "tool_use_id": "toolu_01",
                "content": [{"type": "text", "text": "21°C, clear"}]}]


# ------------------------------------------------------------ conversations

def test_named_conversations_beside_the_default(mgr, pg):
    user = uid()
    mgr.add_message(user, "openai", "user", "default 1")
    mgr.add_message(user, "openai", "user", "named 1",
                    conversation_id="conv_abc")
    mgr.add_message(user, "openai", "assistant", "default 2")
    mgr.add_message(user, "openai", "assistant", "named 2",
                    conversation_id="conv_abc")
    mgr.add_message(user, "openai", "user", "other",
                    conversation_id="對話二")
    rows = mgr.get_recent_conversations(user, "openai")
    assert [r["content"] for r in rows] == ["default 1", "default 2"]
    # the default conversation's rows keep the seed's shape exactly
    assert all(set(r) == SEED_KEYS for r in rows), rows
    named = mgr.get_recent_conversations(user, "openai",
                                         conversation_id="conv_abc")
    assert [(r["content"], r["conversation_id"]) for r in named] == \
        [("named 1", "conv_abc"), ("named 2", "conv_abc")]
    assert mgr.get_conversation_count(user) == 2
    assert mgr.get_conversation_count(user, "openai",
                                      conversation_id="conv_abc") == 2
    assert mgr.get_conversation_count(user, conversation_id="對話二") == 1
    # stored as '' for the default conversation
    assert pg.psql(f"SELECT conversation_id, count(*) FROM {HIST} WHERE "
                   f"user_id = {q(user)} GROUP BY 1 ORDER BY 1") == \
        "|2\nconv_abc|2\n對話二|1"
    # statistics count every conversation
    assert mgr.get_user_statistics(user)["openai"]["message_count"] == 5
    # clearing one conversation leaves the others
    assert mgr.clear_user_history(user, "openai",
                                  conversation_id="conv_abc") is True
    assert mgr.get_conversation_count(user, conversation_id="conv_abc") == 0
    assert mgr.get_conversation_count(user) == 2
    assert mgr.get_conversation_count(user, conversation_id="對話二") == 1
    mgr.clear_user_history(user, "openai")
    assert mgr.get_conversation_count(user) == 0
    assert mgr.get_conversation_count(user, conversation_id="對話二") == 1


def test_conversation_id_limits(mgr):
    user = uid()
    for bad in ("", "x" * 256, "a\x00b"):
        with pytest.raises(ConvdError) as ei:
            mgr.add_message(user, "openai", "user", "x", conversation_id=bad)
        assert ei.value.code == "invalid_params", bad
        assert "conversation_id" in ei.value.message
    # 255 bytes of UTF-8 (85 three-byte characters) is the most
    longest = "對" * 85
    assert mgr.add_message(user, "openai", "user", "x",
                           conversation_id=longest) is True
    assert mgr.get_conversation_count(user, conversation_id=longest) == 1


def test_roles(mgr):
    user = uid()
    for role in ("user", "assistant", "system", "developer", "tool"):
        assert mgr.add_message(user, "openai", role, f"as {role}") is True
    assert [r["role"] for r in mgr.get_recent_conversations(
        user, "openai", limit=5)] == \
        ["user", "assistant", "system", "developer", "tool"]
    with pytest.raises(ConvdError) as ei:
        mgr.add_message(user, "openai", "function", "x")
    assert ei.value.code == "invalid_params"


# -------------------------------------------------------- structured content

def test_tool_call_conversation_read_back_exactly(mgr, pg, convd):
    """Assistant call -> tool results -> assistant answer, in OpenAI
    Chat's shape: stored and read back exactly, every field with it."""
    user = uid()
    meta = {"request_id": "req_1", "latency_ms": 812, "cached": False}
    mgr.add_message(user, "openai", "user", "Weather and time in Taipei?",
                    conversation_id="c1", tokens=9)
    mgr.add_message(user, "openai", "assistant", CHAT_CALL,
                    conversation_id="c1", model="gpt-4.1", tokens=40,
                    metadata=meta)
    mgr.add_message(user, "openai", "tool", '{"temp_c": 21}',
                    conversation_id="c1", tool_call_id="call_a1",
                    name="get_weather")
    mgr.add_message(user, "openai", "tool", [{"type": "text",
                                              "text": "14:05"}],
                    conversation_id="c1", tool_call_id="call_b2",
                    name="get_time")
    mgr.add_message(user, "openai", "assistant", "21°C and 14:05.",
                    conversation_id="c1", model="gpt-4.1", tokens=12)
    rows = mgr.get_recent_conversations(user, "openai",
                                        conversation_id="c1")
    for r in rows:
        r.pop("created_at")
    base = {"model_provider": "openai", "conversation_id": "c1"}
    assert rows == [
        dict(base, role="user", content="Weather and time in Taipei?",
             tokens=9),
        dict(base, role="assistant", content=CHAT_CALL, model="gpt-4.1",
             tokens=40, metadata=meta),
        dict(base, role="tool", content='{"temp_c": 21}',
             tool_call_id="call_a1", name="get_weather"),
        dict(base, role="tool", content=[{"type": "text", "text": "14:05"}],
             tool_call_id="call_b2", name="get_time"),
        dict(base, role="assistant", content="21°C and 14:05.",
             model="gpt-4.1", tokens=12),
    ]
    # the columns: text in `content`, the structured value's bytes in
    # content_mp, the fields in theirs
    got = pg.psql(f"SELECT role, content, content_mp IS NULL, tool_call_id, "
                  f"name, model, tokens, metadata IS NULL FROM {HIST} WHERE "
                  f"user_id = {q(user)} ORDER BY id").splitlines()
    assert got == [
        "user|Weather and time in Taipei?|t||||9|t",
        "assistant||f|||gpt-4.1|40|f",
        'tool|{"temp_c": 21}|t|call_a1|get_weather|||t',
        "tool|14:05|f|call_b2|get_time|||t",
        "assistant|21°C and 14:05.|t|||gpt-4.1|12|t",
    ]


def test_thinking_signatures_byte_exact(mgr, pg, convd):
    """Anthropic thinking blocks with binary signatures: bytes come back
    as bytes, identical; the stored value is the exact msgpack sent; the
    response carries those bytes as they are; `content` holds the text
    parts for search."""
    user = uid()
    mgr.add_message(user, "anthropic", "assistant", THINKING,
                    model="claude-opus-4", tokens=321)
    mgr.add_message(user, "anthropic", "user", TOOL_RESULT)
    rows = mgr.get_recent_conversations(user, "anthropic")
    assert rows[0]["content"] == THINKING
    assert rows[1]["content"] == TOOL_RESULT
    sig = rows[0]["content"][0]["signature"]
    assert type(sig) is bytes and sig == SIG
    assert rows[0]["content"][1]["data"] == SIG[::-1]
    first = last_id(pg, user) - 1
    sent = msgpack.packb(THINKING, use_bin_type=True)
    assert db_row(pg, first, "encode(content_mp, 'hex')") == sent.hex()
    assert db_row(pg, first, "content") == "Let me check."
    assert db_row(pg, first + 1, "content") == "21°C, clear"
    # spliced into convd's response byte for byte (bin stays bin)
    raw = raw_response(convd.socket, "get_recent_conversations",
                       {"user_id": user, "provider": "anthropic"})
    assert sent in raw
    assert msgpack.packb(TOOL_RESULT, use_bin_type=True) in raw


def nested(depth):
    v = "x"
    for _ in range(depth):
        v = [v]
    return v


def test_content_limits(mgr):
    user = uid()
    # 64 levels are kept; 65 are refused (in a request of named params,
    # by the request decoder's bound of 3 + 64 levels: invalid_request)
    with pytest.raises(ConvdError) as ei:
        mgr.add_message(user, "openai", "user", nested(65))
    assert ei.value.code in ("invalid_params", "invalid_request")
    assert mgr.add_message(user, "openai", "user", nested(64)) is True
    assert mgr.get_recent_conversations(user, "openai")[0]["content"] == \
        nested(64)
    assert mgr.get_conversation_count(user) == 1
    with pytest.raises(ConvdError) as ei:
        mgr.add_message(user, "openai", "user", 42)
    assert ei.value.code == "invalid_params"
    with pytest.raises(ConvdError) as ei:
        mgr.add_message(user, "openai", "user", "")
    assert ei.value.code == "invalid_params"


def test_field_limits(mgr):
    user = uid()
    bad = [
        dict(tokens=-1), dict(tokens=2 ** 31), dict(tokens="12"),
        dict(tool_call_id=""), dict(tool_call_id="x" * 256),
        dict(name="n" * 256), dict(model=""),
        dict(metadata=[1, 2]), dict(metadata={"blob": b"x" * 65536}),
    ]
    for kw in bad:
        with pytest.raises(ConvdError) as ei:
            mgr.add_message(user, "openai", "user", "x", **kw)
        assert ei.value.code == "invalid_params", kw
    assert mgr.get_conversation_count(user) == 0
    assert mgr.add_message(user, "openai", "user", "x", tokens=2 ** 31 - 1,
                           tool_call_id="t" * 255, name="n" * 255,
                           model="m" * 255,
                           metadata={"blob": b"x" * 60000}) is True
    r = mgr.get_recent_conversations(user, "openai")[0]
    assert r["tokens"] == 2 ** 31 - 1 and r["metadata"]["blob"] == \
        b"x" * 60000
    assert (r["tool_call_id"], r["name"], r["model"]) == \
        ("t" * 255, "n" * 255, "m" * 255)


# ------------------------------------------------------ list / delete

def test_list_conversations_pages_newest_first(mgr, pg):
    user = uid()
    names = [None, "a", "b", "c", "d"]
    for i, c in enumerate(names):
        for j in range(i + 1):
            mgr.add_message(user, "openai", "user", f"{c} {j}",
                            conversation_id=c)
        if c == "c":
            mgr.set_state(user, "openai", {"previous_response_id": "r1"},
                          conversation_id="c",
                          metadata={"title": "Trip to 台南"})
    mgr.add_message(user, "gemini", "user", "g", conversation_id="a")
    # "b" becomes the most recently active
    mgr.add_message(user, "openai", "assistant", "b again",
                    conversation_id="b")
    page = mgr.list_conversations(user, "openai")
    assert page["next"] is None
    got = [(c["conversation_id"], c["message_count"])
           for c in page["conversations"]]
    assert got == [("b", 4), ("d", 5), ("c", 4), ("a", 2), (None, 1)]
    for c in page["conversations"]:
        assert c["model_provider"] == "openai"
        assert c["first_message_at"] <= c["last_message_at"]
    by_id = {c["conversation_id"]: c for c in page["conversations"]}
    assert by_id["c"]["metadata"] == {"title": "Trip to 台南"}
    assert by_id["a"]["metadata"] is None
    want = pg.psql(f"SELECT (extract(epoch FROM min(created_at)) * 1e6)"
                   f"::bigint, (extract(epoch FROM max(created_at)) * 1e6)"
                   f"::bigint FROM {HIST} WHERE user_id = {q(user)} AND "
                   f"conversation_id = 'd'")
    assert f"{iso_usec(by_id['d']['first_message_at'])}|" \
        f"{iso_usec(by_id['d']['last_message_at'])}" == want
    # every provider; pages of two by the cursor
    everything = mgr.list_conversations(user)["conversations"]
    assert len(everything) == 6
    seen, after = [], None
    while True:
        page = mgr.list_conversations(user, after=after, limit=2)
        assert len(page["conversations"]) <= 2
        seen += page["conversations"]
        after = page["next"]
        if after is None:
            break
    assert seen == everything
    assert list(mgr.iter_conversations(user, page_size=4)) == everything
    assert mgr.list_conversations(uid()) == {"conversations": [],
                                             "next": None}
    with pytest.raises(ConvdError) as ei:
        mgr.list_conversations(user, limit=1001)
    assert ei.value.code == "invalid_params"


def test_delete_conversation(mgr, pg):
    user = uid()
    for i in range(3):
        mgr.add_message(user, "openai", "user", f"n{i}",
                        conversation_id="gone")
    mgr.add_message(user, "openai", "user", "kept default")
    mgr.add_message(user, "openai", "user", "kept", conversation_id="kept")
    mgr.set_state(user, "openai", {"x": 1}, conversation_id="gone")
    mgr.set_state(user, "openai", {"y": 2}, conversation_id="kept")
    assert mgr.delete_conversation(user, "openai", "gone") == 3
    assert mgr.get_state(user, "openai", "gone") is None
    assert mgr.get_state(user, "openai", "kept")["state"] == {"y": 2}
    assert sorted(pg.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                          f"{q(user)}").splitlines()) == ["kept",
                                                          "kept default"]
    assert int(pg.psql(f"SELECT count(*) FROM conversation_state WHERE "
                       f"user_id = {q(user)}")) == 1
    assert mgr.delete_conversation(user, "openai", "gone") == 0
    # the default conversation is not deleted this way
    with pytest.raises(ConvdError) as ei:
        mgr.call("delete_conversation", user_id=user, provider="openai")
    assert ei.value.code == "invalid_params"


# ------------------------------------------------------------------ state

def test_state_versions_and_conflicts(mgr, pg):
    user = uid()
    assert mgr.get_state(user, "openai") is None
    s1 = {"conversation": "conv_68a1", "previous_response_id": "resp_1"}
    assert mgr.set_state(user, "openai", s1, expected_version=0) == 1
    got = mgr.get_state(user, "openai")
    assert got["state"] == s1 and got["version"] == 1
    assert isinstance(got["updated_at"], str)
    with pytest.raises(ConflictError) as ei:
        mgr.set_state(user, "openai", {"other": 1}, expected_version=0)
    assert ei.value.code == "conflict" and isinstance(ei.value, ConvdError)
    assert "1" in ei.value.message
    s2 = dict(s1, previous_response_id="resp_2")
    assert mgr.set_state(user, "openai", s2, expected_version=1) == 2
    with pytest.raises(ConflictError) as ei:
        mgr.set_state(user, "openai", s1, expected_version=1)
    assert "2" in ei.value.message
    assert mgr.get_state(user, "openai")["state"] == s2
    # unconditional
    assert mgr.set_state(user, "openai", {"n": b"\x00\xff"}) == 3
    assert mgr.get_state(user, "openai") == {
        "state": {"n": b"\x00\xff"}, "version": 3,
        "updated_at": mgr.get_state(user, "openai")["updated_at"],
        "metadata": None}
    # one state per conversation, provider and platform
    assert mgr.get_state(user, "openai", conversation_id="c2") is None
    assert mgr.get_state(user, "anthropic") is None
    assert mgr.get_state(user, "openai", platform="slack") is None
    assert mgr.set_state(user, "openai", {"c": 2}, conversation_id="c2") == 1
    assert pg.psql(f"SELECT conversation_id, version FROM conversation_state"
                   f" WHERE user_id = {q(user)} ORDER BY 1") == "|3\nc2|1"
    # limits: a map, at most 64 KiB
    for bad in ([1], "resp_1", {"big": b"x" * 65536}):
        with pytest.raises(ConvdError) as ei:
            mgr.set_state(user, "openai", bad)
        assert ei.value.code == "invalid_params", bad
    with pytest.raises(ConvdError) as ei:
        mgr.set_state(user, "openai", {"a": 1}, expected_version=-1)
    assert ei.value.code == "invalid_params"
    # the thread methods keep their own data
    mgr.save_thread_id(user, "thread_legacy")
    assert mgr.get_thread_id_by_user_id(user) == "thread_legacy"
    assert mgr.get_state(user, "openai")["version"] == 3


def test_two_writers_race_on_set_state(convd):
    """Two webhook workers read version v and both write with
    expected_version v: exactly one wins.  Then 4 threads each add 25 to a
    counter by read-modify-write with expected_version, retrying on
    ConflictError: no increment is lost."""
    user = uid()
    m = ConversationManager(convd.socket)
    m.set_state(user, "openai", {"n": 0, "by": []})
    v = m.get_state(user, "openai")["version"]
    barrier = threading.Barrier(2)
    outcome = []

    def one(tag):
        barrier.wait()
        try:
            m.set_state(user, "openai", {"n": 1, "by": [tag]},
                        expected_version=v)
            outcome.append(("won", tag))
        except ConflictError:
            outcome.append(("conflict", tag))

    ts = [threading.Thread(target=one, args=(t,)) for t in ("a", "b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(o[0] for o in outcome) == ["conflict", "won"], outcome
    winner = next(tag for o, tag in outcome if o == "won")
    st = m.get_state(user, "openai")
    assert st["state"] == {"n": 1, "by": [winner]} and st["version"] == v + 1

    conflicts = []

    def add(tag):
        for _ in range(25):
            while True:
                cur = m.get_state(user, "openai")
                new = {"n": cur["state"]["n"] + 1,
                       "by": cur["state"]["by"] + [tag]}
                try:
                    m.set_state(user, "openai", new,
                                expected_version=cur["version"])
                    break
                except ConflictError:
                    conflicts.append(tag)

    assert convdtest.in_threads(add, [f"w{i}" for i in range(4)]) == []
    st = m.get_state(user, "openai")
    assert st["state"]["n"] == 101
    assert sorted(st["state"]["by"][1:]) == sorted(
        f"w{i}" for i in range(4) for _ in range(25))
    assert st["version"] == v + 101
    m.close()


def test_conditional_set_state_is_not_resent(convd, tmp_path):
    """The answer of a set_state is lost after convd ran it.  With
    expected_version the client does not send it again (a second attempt
    would fail with `conflict` although the first succeeded): it raises
    ConvdConnectionError, and get_state shows it ran.  Without
    expected_version it is sent again and succeeds."""
    user = uid()
    direct = ConversationManager(convd.socket)
    assert direct.set_state(user, "openai", {"r": 0}) == 1
    with DroppingProxy(convd.socket, str(tmp_path / "p1"), "set_state",
                       drops=1) as proxy:
        m = ConversationManager(proxy.path)
        with pytest.raises(ConvdConnectionError) as ei:
            m.set_state(user, "openai", {"r": 1}, expected_version=1)
        assert ei.value.code == "closed" and ei.value.sent is True
        assert proxy.seen["set_state"] == 1
        st = direct.get_state(user, "openai")
        assert st["version"] == 2 and st["state"] == {"r": 1}
        m.close()
    with DroppingProxy(convd.socket, str(tmp_path / "p2"), "set_state",
                       drops=1) as proxy:
        m = ConversationManager(proxy.path)
        assert m.set_state(user, "openai", {"r": 2}) == 4
        assert proxy.seen["set_state"] == 2 and proxy.dropped == 1
        m.close()
    assert direct.get_state(user, "openai")["state"] == {"r": 2}
    direct.close()


# ------------------------------------------------------- export / import

def test_export_import_every_field(mgr, pg):
    user, copy = uid("src"), uid("dst")
    mgr.add_message(user, "anthropic", "user", "plain")
    mgr.add_message(user, "anthropic", "assistant", THINKING,
                    conversation_id="chat-7", model="claude-opus-4",
                    tokens=77, metadata={"stop_reason": "tool_use"},
                    idempotency_key="evt-1")
    mgr.add_message(user, "anthropic", "user", TOOL_RESULT,
                    conversation_id="chat-7", tool_call_id="toolu_01",
                    name="get_weather")
    mgr.add_message(user, "anthropic", "developer", "Be brief.",
                    platform="slack")
    rows = list(mgr.export_history(user))
    assert [r["content"] for r in rows] == ["plain", THINKING, TOOL_RESULT]
    assert "conversation_id" not in rows[0] and "tokens" not in rows[0]
    assert rows[1]["conversation_id"] == "chat-7"
    assert rows[1]["content"][0]["signature"] == SIG
    assert (rows[1]["model"], rows[1]["tokens"], rows[1]["metadata"],
            rows[1]["idempotency_key"]) == \
        ("claude-opus-4", 77, {"stop_reason": "tool_use"}, "evt-1")
    assert (rows[2]["tool_call_id"], rows[2]["name"]) == \
        ("toolu_01", "get_weather")
    assert [r["content"] for r in mgr.export_history(
        user, conversation_id="chat-7")] == [THINKING, TOOL_RESULT]
    rows += list(mgr.export_history(user, platform="slack"))
    assert rows[-1]["role"] == "developer"
    fields = ("conversation_id", "tool_call_id", "name", "model", "tokens",
              "metadata", "idempotency_key")
    for r in rows:
        assert mgr.import_message(
            copy, r["provider"], r["role"], r["content"], r["created_at"],
            platform=r["platform"],
            **{k: r[k] for k in fields if k in r}) is True
    # with their keys, a second import stores nothing
    assert mgr.import_message(copy, "anthropic", "assistant", THINKING,
                              rows[1]["created_at"],
                              idempotency_key="evt-1") is False
    back = list(mgr.export_history(copy)) + \
        list(mgr.export_history(copy, platform="slack"))

    def strip(r):
        return {k: v for k, v in r.items() if k not in ("id", "user_id")}
    assert [strip(r) for r in back] == [strip(r) for r in rows]
    cols = ("platform, model_provider, role, content, content_mp, "
            "conversation_id, tool_call_id, name, model, tokens, metadata, "
            "created_at")
    assert pg.psql(f"SELECT {cols} FROM {HIST} WHERE user_id = {q(copy)} "
                   f"ORDER BY id") == \
        pg.psql(f"SELECT {cols} FROM {HIST} WHERE user_id = {q(user)} "
                f"ORDER BY id")


# ------------------------------------------------------------- asyncio

def test_async_manager(convd):
    user = uid("as")

    async def main():
        async with AsyncConversationManager(convd.socket) as m:
            await m.add_message(user, "openai", "assistant", CHAT_CALL,
                                conversation_id="c", tokens=5)
            await m.add_message(user, "openai", "tool", "ok",
                                conversation_id="c", tool_call_id="call_a1")
            rows = await m.get_recent_conversations(user, "openai",
                                                    conversation_id="c")
            convs = [c async for c in m.iter_conversations(user)]
            assert await m.set_state(user, "openai", {"p": "resp_1"},
                                     conversation_id="c",
                                     expected_version=0) == 1

            async def attempt():
                try:
                    await m.set_state(user, "openai", {"p": "resp_2"},
                                      conversation_id="c",
                                      expected_version=1)
                    return "won"
                except ConflictError:
                    return "conflict"
            results = await asyncio.gather(*(attempt() for _ in range(8)))
            st = await m.get_state(user, "openai", "c")
            deleted = await m.delete_conversation(user, "openai", "c")
            return rows, convs, sorted(results), st, deleted

    rows, convs, results, st, deleted = asyncio.run(
        asyncio.wait_for(main(), convdtest.scaled(60)))
    assert [r["content"] for r in rows] == [CHAT_CALL, "ok"]
    assert rows[0]["tokens"] == 5 and rows[1]["tool_call_id"] == "call_a1"
    assert [(c["conversation_id"], c["message_count"]) for c in convs] == \
        [("c", 2)]
    assert results == ["conflict"] * 7 + ["won"]
    assert st["version"] == 2 and st["state"] == {"p": "resp_2"}
    assert deleted == 2


# ------------------------------------------------------------- example

def test_example_responses_flow(convd, pg):
    """examples/responses_flow.py: the README's Responses API flow (state
    chained across turns, a tool call and its result stored, a conflict
    between two workers) against convd."""
    r = convdtest.run_python_example("responses_flow.py", convd.socket)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "reply: It is 21°C in Taipei." in out
    assert "chained from: [None, 'resp_0001', 'resp_0002']" in out
    assert "state version 2: resp_0003" in out
    lines = [ln.split() for ln in out.splitlines() if ln.startswith("  ")]
    assert [ln[0] for ln in lines] == ["user", "assistant", "tool",
                                       "assistant", "user", "assistant"]
    assert lines[1][-1] == "function_call"
    assert lines[2][1] == "call_0001"
    assert "conflict: True conflict" in out
    assert "conversations: [('chat', 6)]" in out
    assert "forgotten: {'messages': 6, 'threads': 0, 'states': 1, " \
        "'idempotency_keys': 6}" in out
