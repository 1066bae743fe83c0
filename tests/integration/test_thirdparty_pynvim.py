"""convd driven by a MessagePack-RPC client nobody here wrote: pynvim's
msgpack_rpc session (Debian's python3-pynvim), over convd's Unix socket
(issue 14, point 4).

pynvim opens every session with a notification whose method name is
msgpack bin (nvim_set_client_info), answers any response it cannot match
with an error of its own, and decodes the timestamp extension (-1) into
msgpack.Timestamp.  Every method is called; errors arrive as error
responses with their msgid; 100 requests are pipelined on one session.
"""
import time

import msgpack
import pytest

import convdtest
from convdtest import scaled

greenlet = pytest.importorskip("greenlet")
msgpack_rpc = pytest.importorskip("pynvim.msgpack_rpc")


class RpcFailed(Exception):
    """pynvim hands error responses to session.error_wrapper."""

    def __init__(self, err):
        super().__init__(err)
        self.code = err.get("code") if isinstance(err, dict) else None


@pytest.fixture
def session(convd):
    s = msgpack_rpc.socket_session(convd.socket)
    s.error_wrapper = RpcFailed
    yield s
    s.close()


def call(s, method, **named):
    return s.request(method, named)


def test_every_method(session, convd):
    s = session
    assert s.request("ping") == "pong"
    assert s.request(b"ping") == "pong"             # a bin method name
    r = call(s, "add_message", user_id="nv", provider="openai", role="user",
             content="hi from pynvim", idempotency_key="nv-1")
    assert isinstance(r["created_at"], msgpack.Timestamp)
    assert abs(r["created_at"].to_unix() - time.time()) < 60
    again = call(s, "add_message", user_id="nv", provider="openai",
                 role="user", content="hi from pynvim",
                 idempotency_key="nv-1")
    assert again == dict(r, duplicate=True)
    s.request("add_message", "nv", "openai", "assistant", "hello")
    recent = call(s, "get_recent_conversations", user_id="nv",
                  provider="openai")
    assert [m["content"] for m in recent] == ["hi from pynvim", "hello"]
    assert recent[0]["created_at"] == r["created_at"]
    assert call(s, "get_conversation_count", user_id="nv") == 2
    st = call(s, "get_user_statistics", user_id="nv")
    assert st["total_messages"] == 2
    assert isinstance(st["providers"]["openai"]["last_message_at"],
                      msgpack.Timestamp)
    assert call(s, "get_thread", user_id="nv") is None
    assert call(s, "save_thread", user_id="nv", thread_id="t-9") is True
    assert call(s, "get_thread", user_id="nv") == "t-9"
    assert call(s, "delete_thread", user_id="nv") == {"deleted": 1}
    page = call(s, "export_history", user_id="nv")
    assert [m["id"] for m in page] == sorted(m["id"] for m in page)
    imp = call(s, "import_message", user_id="nv2", provider="p",
               role="user", content="old", created_at=1_500_000_000_000_000)
    assert imp["imported"] is True
    old = call(s, "export_history", user_id="nv2")[0]["created_at"]
    assert old == msgpack.Timestamp(1_500_000_000, 0)
    assert call(s, "clear_user_history", user_id="nv",
                provider="openai") == {"deleted": 2}
    cleaned = call(s, "cleanup_old_conversations", days_to_keep=36500)
    assert cleaned["deleted"] == 0
    assert "methods" in s.request("stats")
    assert s.request("health")["ok"] is True
    # errors: each an error response pynvim matches to its request
    with pytest.raises(RpcFailed) as e:
        call(s, "add_message", user_id="nv", provider="p", role="robot",
             content="x")
    assert e.value.code == "invalid_params"
    with pytest.raises(RpcFailed) as e:
        s.request("no_such_method")
    assert e.value.code == "no_such_method"
    with pytest.raises(RpcFailed) as e:
        s.request(b"no_such_bin_method")
    assert e.value.code == "no_such_method"
    # the session still works, and nothing echoes between the two
    before = s.request("stats")["protocol_errors"]
    time.sleep(0.3)
    assert s.request("ping") == "pong"
    assert s.request("stats")["protocol_errors"] == before


def test_100_pipelined_requests(session):
    """100 requests in flight at once on one pynvim session (each in a
    greenlet: pynvim sends them without waiting), answered by msgid."""
    s = session
    n = 100
    results = {}

    def one(i):
        try:
            if i % 10 == 9:
                s.request("add_message", {"user_id": "nvp", "role": "x"})
            else:
                results[i] = s.request(
                    "add_message", {"user_id": "nvp", "provider": "p",
                                    "role": "user", "content": f"m{i}"})
        except RpcFailed as e:
            results[i] = e
        if len(results) == n:
            s.stop()

    def setup():
        for i in range(n):
            greenlet.greenlet(one).switch(i)

    s.run(lambda *a: None, lambda *a: None, setup)
    assert len(results) == n
    errors = [i for i, r in results.items() if isinstance(r, RpcFailed)]
    assert errors == [i for i in range(n) if i % 10 == 9]
    assert all(results[i].code == "invalid_params" for i in errors)
    ids = [results[i]["id"] for i in range(n) if i % 10 != 9]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    recent = s.request("get_recent_conversations",
                       {"user_id": "nvp", "provider": "p", "limit": 100})
    assert [m["content"] for m in recent] == \
        [f"m{i}" for i in range(n) if i % 10 != 9]


# ------------------------------------------- issue 17's protocol (AUDIT 19)

TOOL_TURNS = [
    dict(role="user", content="Weather in Taipei?", tokens=5),
    dict(role="assistant",
         content={"content": None, "tool_calls": [
             {"id": "call_9", "type": "function",
              "function": {"name": "get_weather",
                           "arguments": "{\"city\":\"Taipei\"}"}}]},
         model="gpt-4.1", tokens=30),
    dict(role="tool", content="{\"temp_c\": 22}", tool_call_id="call_9",
         name="get_weather", tokens=10),
    dict(role="assistant", content="It is 22 C in Taipei.", model="gpt-4.1",
         tokens=9, metadata={"finish_reason": "stop"}),
]


def thinking_turn(sig):
    return [{"type": "thinking", "thinking": "The user wants days.",
             "signature": sig},
            {"type": "text", "text": "Three days."}]


def test_conversations_state_and_context(session, schema):
    """Issue 17 through pynvim: a tool exchange in a named conversation
    read back equal, a thinking block's bin signature byte-exact (also in
    the table), set_state/get_state with expected_version and `conflict`
    as pynvim's error for that call, list/delete_conversation, and a
    get_context budget that keeps the tool exchange whole; then issue 18's
    get_messages, search_messages, delete_message and forget_user."""
    s = session
    u = convdtest.uid("nv17")
    conv = "conv_" + u
    for t in TOOL_TURNS:
        call(s, "add_message", user_id=u, provider="openai",
             conversation_id=conv, **t)
    rows = call(s, "get_recent_conversations", user_id=u, provider="openai",
                conversation_id=conv, limit=10)
    assert len(rows) == len(TOOL_TURNS)
    for got, want in zip(rows, TOOL_TURNS):
        for k, v in want.items():
            assert got[k] == v, (k, got)
        assert got["conversation_id"] == conv
    # the default conversation holds none of it
    assert call(s, "get_recent_conversations", user_id=u,
                provider="openai") == []

    # Anthropic thinking block with a bin signature: byte-exact
    sig = bytes(range(256)) + b"\x00\xff"
    r = call(s, "add_message", user_id=u, provider="anthropic",
             role="assistant", content=thinking_turn(sig),
             conversation_id="think")
    back = call(s, "get_recent_conversations", user_id=u,
                provider="anthropic", conversation_id="think")
    assert back[0]["content"] == thinking_turn(sig)
    assert isinstance(back[0]["content"][0]["signature"], bytes)
    assert back[0]["content"][0]["signature"] == sig
    stored = schema.psql("SELECT encode(content_mp, 'hex') FROM"
                         f" simple_conversation_history WHERE id = {r['id']}")
    assert msgpack.unpackb(bytes.fromhex(stored), raw=False) == \
        thinking_turn(sig)
    assert sig.hex() in stored

    # versioned provider state
    assert call(s, "get_state", user_id=u, provider="openai",
                conversation_id=conv) is None
    st1 = {"conversation": "conv_abc", "previous_response_id": "resp_1"}
    assert call(s, "set_state", user_id=u, provider="openai",
                conversation_id=conv, state=st1,
                expected_version=0) == {"version": 1}
    st2 = dict(st1, previous_response_id="resp_2")
    assert call(s, "set_state", user_id=u, provider="openai",
                conversation_id=conv, state=st2,
                expected_version=1) == {"version": 2}
    with pytest.raises(RpcFailed) as e:     # a second worker, stale version
        call(s, "set_state", user_id=u, provider="openai",
             conversation_id=conv, state=dict(st1, previous_response_id="x"),
             expected_version=1)
    assert e.value.code == "conflict"
    assert s.request("ping") == "pong"      # the session still works
    got = call(s, "get_state", user_id=u, provider="openai",
               conversation_id=conv)
    assert got["state"] == st2 and got["version"] == 2
    assert isinstance(got["updated_at"], msgpack.Timestamp)

    # list and delete
    lst = call(s, "list_conversations", user_id=u)
    seen = {(c["provider"], c["conversation_id"]): c["message_count"]
            for c in lst["conversations"]}
    assert seen == {("openai", conv): 4, ("anthropic", "think"): 1}
    assert lst["next"] is None
    assert call(s, "delete_conversation", user_id=u, provider="anthropic",
                conversation_id="think") == {"deleted": 1}
    lst = call(s, "list_conversations", user_id=u)
    assert [c["conversation_id"] for c in lst["conversations"]] == [conv]

    # get_context: 9 + 10 fit in 25, but the tool result may not come
    # without its call, so only the answer does
    ctx = call(s, "get_context", user_id=u, provider="openai",
               conversation_id=conv, max_tokens=25)
    assert [m["content"] for m in ctx["messages"]] == \
        [TOOL_TURNS[3]["content"]]
    assert ctx["total_tokens"] == 9 and ctx["truncated"] is True
    # 49 holds the whole exchange (30 + 10 + 9), not the question (5)
    ctx = call(s, "get_context", user_id=u, provider="openai",
               conversation_id=conv, max_tokens=49)
    assert [m["role"] for m in ctx["messages"]] == \
        ["assistant", "tool", "assistant"]
    assert ctx["messages"][0]["content"] == TOOL_TURNS[1]["content"]
    assert ctx["messages"][1]["tool_call_id"] == "call_9"
    assert ctx["total_tokens"] == 49 and ctx["truncated"] is True
    ctx = call(s, "get_context", user_id=u, provider="openai",
               conversation_id=conv, max_tokens=1000)
    assert len(ctx["messages"]) == 4 and ctx["truncated"] is False

    # issue 18's methods: paging, search, deleting one message
    page = call(s, "get_messages", user_id=u, provider="openai",
                conversation_id=conv, limit=3)
    assert [m["id"] for m in page["messages"]] == \
        [m["id"] for m in rows[1:]]
    assert page["next_before_id"] == rows[1]["id"]
    page = call(s, "get_messages", user_id=u, provider="openai",
                conversation_id=conv, limit=3,
                before_id=page["next_before_id"])
    assert [m["content"] for m in page["messages"]] == \
        [TOOL_TURNS[0]["content"]]
    assert page["next_before_id"] is None
    found = call(s, "search_messages", user_id=u, query="taipei")
    assert [m["id"] for m in found] == [rows[3]["id"], rows[0]["id"]]
    assert call(s, "delete_message", user_id=u, id=rows[0]["id"]) == \
        {"deleted": 1}
    with pytest.raises(RpcFailed) as e:
        call(s, "delete_message", user_id=u, id=rows[0]["id"])
    assert e.value.code == "not_found"
    assert s.request("ping") == "pong"
    assert call(s, "get_conversation_count", user_id=u, provider="openai",
                conversation_id=conv) == 3
    # and the admin method that forgets the user (a second call: zeros)
    assert call(s, "forget_user", user_id=u) == \
        {"messages": 3, "threads": 0, "states": 1, "idempotency_keys": 0}
    assert call(s, "forget_user", user_id=u) == \
        {"messages": 0, "threads": 0, "states": 0, "idempotency_keys": 0}


def test_structured_content_at_its_limits(session):
    """issue 17 through pynvim's session: a content of 100,000 values
    (within max_content_bytes) stored and read back; content, metadata and
    state 65 deep answered invalid_params, and the session goes on."""
    s = session
    user = convdtest.uid("nvc")
    content = [{"type": "text", "text": "a"}] + list(range(99999))
    r = call(s, "add_message", user_id=user, provider="openai", role="user",
             content=content)
    assert r["id"] > 0
    back = call(s, "get_recent_conversations", user_id=user,
                provider="openai")
    assert back[0]["content"] == content
    deep = {}
    for _ in range(64):
        deep = {"k": deep}      # 65 maps
    for method, named in (
            ("add_message", dict(provider="openai", role="user",
                                 content=[deep])),
            ("add_message", dict(provider="openai", role="user",
                                 content="x", metadata=deep)),
            ("set_state", dict(provider="openai", state=deep))):
        with pytest.raises(RpcFailed) as ei:
            call(s, method, user_id=user, **named)
        assert ei.value.code == "invalid_params", ei.value
        assert "nested more than 64 deep" in ei.value.args[0]["message"]
    # 64 levels are kept
    assert call(s, "set_state", user_id=user, provider="openai",
                state=deep["k"]) == {"version": 1}
    assert call(s, "get_state", user_id=user,
                provider="openai")["state"] == deep["k"]
    assert s.request("ping") == "pong"
