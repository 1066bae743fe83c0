"""Conversations as LLM apps keep them (issue 17) through the real convd:
named conversations beside the default one, the message fields (tool
calls, names, models, tokens, metadata) in rows only when set, structured
content stored and returned byte-exact (Anthropic thinking blocks with
binary signatures, OpenAI tool calls), its text in the `content` column,
list_conversations and delete_conversation, versioned provider state with
two writers racing on expected_version, and export/import carrying every
field."""

import os
import threading

import msgpack
import pytest

import convdtest
from convdtest import RpcError, sql_literal as q, uid

HIST = "simple_conversation_history"


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def raw_call(path, method, params):
    """One request whose params are given as msgpack bytes (so that an
    encoding can be chosen byte by byte); returns (error, result bytes of
    the whole response)."""
    with convdtest.Client(path) as c:
        c.send_raw(b"\x94\x00\x01" + packb(method) + params)
        resp = c.recv()
    return resp


def db_hex(schema, sql):
    return schema.psql(sql)


def rows_keys(rows):
    return [sorted(r) for r in rows]


# ---------------------------------------------------------------- basics

def test_conversations_beside_the_default(client):
    u = uid()
    client.call("add_message", u, "openai", "user", "default one")
    client.call("add_message", user_id=u, provider="openai", role="user",
                content="in conv A", conversation_id="conv_A")
    client.call("add_message", user_id=u, provider="openai",
                role="assistant", content="answer in A",
                conversation_id="conv_A", model="gpt-5", tokens=12)
    d = client.call("get_recent_conversations", u, "openai")
    assert [r["content"] for r in d] == ["default one"]
    # a plain row has exactly the seed's five keys
    assert sorted(d[0]) == ["content", "created_at", "id", "provider", "role"]
    a = client.call("get_recent_conversations", user_id=u, provider="openai",
                    conversation_id="conv_A")
    assert [r["content"] for r in a] == ["in conv A", "answer in A"]
    assert all(r["conversation_id"] == "conv_A" for r in a)
    assert "model" not in a[0] and "tokens" not in a[0]
    assert a[1]["model"] == "gpt-5" and a[1]["tokens"] == 12
    assert client.call("get_conversation_count", u, "openai") == 1
    assert client.call("get_conversation_count", user_id=u, provider="openai",
                       conversation_id="conv_A") == 2
    # statistics count every conversation
    st = client.call("get_user_statistics", u)
    assert st["total_messages"] == 3
    # clearing the default conversation leaves the named one
    assert client.call("clear_user_history", u, "openai")["deleted"] == 1
    assert len(client.call("get_recent_conversations", user_id=u,
                           provider="openai", conversation_id="conv_A")) == 2
    assert client.call("clear_user_history", user_id=u, provider="openai",
                       conversation_id="conv_A")["deleted"] == 2


def test_roles_and_fields_validated(client):
    u = uid()
    for role in ("developer", "tool", "system"):
        client.call("add_message", u, "openai", role, "x")
    with pytest.raises(RpcError) as e:
        client.call("add_message", u, "openai", "function", "x")
    assert e.value.code == "invalid_params" and "developer, tool" in \
        e.value.message
    bad = [({"tokens": -1}, "tokens"), ({"tokens": 2 ** 31}, "tokens"),
           ({"metadata": [1]}, "metadata"), ({"metadata": "x"}, "metadata"),
           ({"metadata": {"k": "v" * 65536}}, "metadata"),
           ({"conversation_id": ""}, "conversation_id"),
           ({"tool_call_id": "x" * 256}, "tool_call_id"),
           ({"content": 5}, "content")]
    for extra, name in bad:
        args = dict(user_id=u, provider="openai", role="user", content="x")
        args.update(extra)
        with pytest.raises(RpcError) as e:
            client.call("add_message", **args)
        assert e.value.code == "invalid_params", extra
        assert e.value.message.startswith(name + ":"), e.value.message


# ------------------------------------------------------ structured content

def anthropic_turn(sig):
    return [
        {"type": "thinking", "thinking": "The user wants the weather.",
         "signature": sig},
        {"type": "redacted_thinking", "data": b"\x00\x01opaque\xff"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
         "input": {"city": "\u53f0\u5317", "units": "c", "days": 3}},
    ]


def test_thinking_blocks_with_binary_signatures_byte_exact(convd, schema):
    """The content as sent, bytes and all: the signature's every byte, a
    bin still a bin, and even an integer's (non-minimal) encoding."""
    u = uid()
    sig = bytes(range(256)) + b"\x00" * 7
    content = packb(anthropic_turn(sig))
    # an int64 encoding of 3 where msgpack would write one byte: kept
    content = content.replace(b"\xa4days\x03",
                              b"\xa4days\xd3" + (3).to_bytes(8, "big"))
    assert b"\xd3\x00\x00\x00\x00\x00\x00\x00\x03" in content
    params = (b"\x91\x84" + packb("user_id") + packb(u) + packb("provider")
              + packb("anthropic") + packb("role") + packb("assistant")
              + packb("content") + content)
    resp = raw_call(convd.socket, "add_message", params)
    assert resp[2] is None, resp
    mid = resp[3]["id"]
    stored = schema.psql(f"SELECT encode(content_mp, 'hex') FROM {HIST}"
                         f" WHERE id = {mid}")
    assert bytes.fromhex(stored) == content
    # the text of the content, for search and legacy readers
    assert schema.psql(f"SELECT content FROM {HIST} WHERE id = {mid}") == \
        "Let me check."
    # read back: the same value, bin as bytes
    with convd.client() as c:
        rows = c.call("get_recent_conversations", u, "anthropic")
    assert rows[0]["content"] == anthropic_turn(sig)
    assert isinstance(rows[0]["content"][0]["signature"], bytes)
    # and byte-exact inside the response itself
    with convdtest.Client(convd.socket) as c:
        c.send_raw(packb([0, 9, "get_recent_conversations",
                          [u, "anthropic"]]))
        buf = b""
        while content not in buf:
            chunk = c.sock.recv(65536)
            assert chunk, "the response lacks the exact bytes"
            buf += chunk


def test_tool_call_conversation_read_back_exactly(client, schema):
    """OpenAI Chat: assistant call -> tool result -> assistant answer;
    Anthropic: tool_use -> tool_result parts.  Stored and read back as
    they were, in order, with tool_call_id and name."""
    u = uid()
    conv = "conv_" + u
    turns = [
        dict(role="user", content="Weather in Taipei?"),
        dict(role="assistant",
             content={"content": None, "tool_calls": [
                 {"id": "call_9", "type": "function",
                  "function": {"name": "get_weather",
                               "arguments": "{\"city\":\"Taipei\"}"}}]},
             model="gpt-4.1", tokens=31),
        dict(role="tool", content="{\"temp_c\": 22}", tool_call_id="call_9",
             name="get_weather"),
        dict(role="assistant", content="It is 22 C in Taipei.",
             model="gpt-4.1", tokens=9,
             metadata={"finish_reason": "stop", "latency_ms": 812}),
        dict(role="user", content=[{"type": "tool_result",
                                    "tool_use_id": "toolu_01",
                                    "content": [{"type": "text",
                                                 "text": "22 C"}]}]),
    ]
    for t in turns:
        client.call("add_message", user_id=u, provider="openai",
                    conversation_id=conv, **t)
    rows = client.call("get_recent_conversations", user_id=u,
                       provider="openai", conversation_id=conv, limit=10)
    assert len(rows) == len(turns)
    for got, want in zip(rows, turns):
        for k, v in want.items():
            assert got[k] == v, (k, got)
        extra = set(got) - set(want) - {"id", "created_at", "provider",
                                        "conversation_id"}
        assert not extra, extra
    assert rows[2]["tool_call_id"] == "call_9" and rows[2]["name"] == \
        "get_weather"
    # the tool result's text: nested "text" values
    assert schema.psql(f"SELECT content FROM {HIST} WHERE id ="
                       f" {rows[4]['id']}") == "22 C"
    assert schema.psql(f"SELECT content FROM {HIST} WHERE id ="
                       f" {rows[1]['id']}") == ""


# ------------------------------------------------------- list and delete

def test_list_and_delete_conversations(client):
    u = uid()
    for i in range(5):
        client.call("add_message", user_id=u, provider="openai", role="user",
                    content=f"m{i}", conversation_id=f"c{i}")
    client.call("add_message", u, "anthropic", "user", "default")
    client.call("set_state", user_id=u, provider="openai",
                conversation_id="c3", state={"previous_response_id": "r"},
                metadata={"title": "Trip"})
    seen, after = [], None
    while True:
        args = dict(user_id=u, limit=2)
        if after:
            args["after"] = after
        page = client.call("list_conversations", **args)
        assert len(page["conversations"]) <= 2
        seen += page["conversations"]
        after = page["next"]
        if after is None:
            break
    # newest activity first: the default (anthropic) one was written last
    assert [c.get("conversation_id") for c in seen] == \
        [None, "c4", "c3", "c2", "c1", "c0"]
    assert "conversation_id" not in seen[0] and \
        seen[0]["provider"] == "anthropic"
    assert all(c["message_count"] == 1 for c in seen)
    assert seen[2]["metadata"] == {"title": "Trip"}
    assert "metadata" not in seen[1]
    only = client.call("list_conversations", user_id=u, provider="anthropic")
    assert len(only["conversations"]) == 1 and only["next"] is None
    with pytest.raises(RpcError) as e:
        client.call("list_conversations", user_id=u, after="garbage")
    assert e.value.code == "invalid_params"
    # delete: messages and state
    r = client.call("delete_conversation", user_id=u, provider="openai",
                    conversation_id="c3")
    assert r == {"deleted": 1}
    assert client.call("get_state", user_id=u, provider="openai",
                       conversation_id="c3") is None
    assert client.call("delete_conversation", user_id=u, provider="openai",
                       conversation_id="c3") == {"deleted": 0}
    with pytest.raises(RpcError) as e:
        client.call("delete_conversation", u, "openai")
    assert e.value.code == "invalid_params"


# ---------------------------------------------------------------- state

def test_state_versions_and_conflicts(client):
    u = uid()
    assert client.call("get_state", u, "openai") is None
    st = {"conversation": "conv_1", "previous_response_id": "resp_1",
          "blob": b"\x00\xff"}
    assert client.call("set_state", u, "openai", st, None, 0) == \
        {"version": 1}
    with pytest.raises(RpcError) as e:
        client.call("set_state", u, "openai", st, None, 0)
    assert e.value.code == "conflict" and "1" in e.value.message
    got = client.call("get_state", u, "openai")
    assert got["state"] == st and got["version"] == 1
    assert "updated_at" in got and "metadata" not in got
    st2 = dict(st, previous_response_id="resp_2")
    assert client.call("set_state", user_id=u, provider="openai", state=st2,
                       expected_version=1) == {"version": 2}
    with pytest.raises(RpcError) as e:
        client.call("set_state", user_id=u, provider="openai", state=st,
                    expected_version=1)
    assert e.value.code == "conflict" and "2" in e.value.message
    # unconditional
    assert client.call("set_state", u, "openai", st)["version"] == 3
    with pytest.raises(RpcError) as e:
        client.call("set_state", user_id=uid(), provider="openai", state=st,
                    expected_version=4)
    assert e.value.code == "conflict"
    # per conversation
    assert client.call("get_state", user_id=u, provider="openai",
                       conversation_id="other") is None
    with pytest.raises(RpcError) as e:
        client.call("set_state", u, "openai", ["not", "a", "map"])
    assert e.value.code == "invalid_params"



def test_set_state_keeps_metadata_unless_given(client):
    """Regression: every set_state replaced the metadata too, so a title
    set once was wiped by the next turn's set without metadata."""
    u = uid()
    st = {"previous_response_id": "resp_1"}
    client.call("set_state", user_id=u, provider="openai", state=st,
                metadata={"title": "Weather"}, expected_version=0)
    client.call("set_state", user_id=u, provider="openai",
                state={"previous_response_id": "resp_2"}, expected_version=1)
    client.call("set_state", u, "openai", {"previous_response_id": "resp_3"})
    got = client.call("get_state", u, "openai")
    assert got["version"] == 3 and got["metadata"] == {"title": "Weather"}
    convs = client.call("list_conversations", user_id=u)["conversations"]
    assert convs == [] or convs[0].get("metadata") == {"title": "Weather"}
    client.call("set_state", user_id=u, provider="openai", state=st,
                metadata={"title": "Rain"})
    assert client.call("get_state", u, "openai")["metadata"] == \
        {"title": "Rain"}
    client.call("set_state", user_id=u, provider="openai", state=st,
                metadata={})
    assert client.call("get_state", u, "openai")["metadata"] == {}



def test_reset_of_the_default_conversation(client):
    """README / convd-protocol(7): a bot's /reset of the default
    conversation is clear_user_history and set_state {}: no history, and
    no previous_response_id to continue from."""
    u = uid()
    client.call("add_message", u, "openai", "user", "hi")
    client.call("set_state", u, "openai", {"previous_response_id": "resp_1"})
    assert client.call("clear_user_history", u, "openai") == {"deleted": 1}
    client.call("set_state", u, "openai", {})
    got = client.call("get_state", u, "openai")
    assert got["state"] == {} and got["version"] == 2
    assert client.call("get_recent_conversations", u, "openai") == []


def test_creation_race_conflict_names_the_other_writer(convd):
    """Regression: of two writers creating a state at once with
    expected_version 0, the loser's conflict said "there is no state" (the
    statement's snapshot predates the winner's commit).  Both requests go
    pipelined on one connection, so convd runs them at once on two of its
    database connections."""
    messages = []
    with convd.client() as c:
        for _ in range(60):
            u = uid()
            for i in range(2):
                c.request("set_state", {"user_id": u, "provider": "openai",
                                        "state": {"w": i},
                                        "expected_version": 0})
            out = [c.recv(), c.recv()]
            assert sorted(r[2] is None for r in out) == [False, True], out
            err = [r[2] for r in out if r[2] is not None][0]
            assert err["code"] == "conflict", err
            messages.append(err["message"])
    assert not [m for m in messages if "there is no state" in m], messages

def test_two_writers_racing_on_set_state(convd):
    """Two webhook workers extend one response chain: each reads the state
    and sets the next with expected_version.  No update is lost: the final
    chain holds exactly the successful sets, and the losers were told
    `conflict`."""
    u = uid()
    with convd.client() as c:
        c.call("set_state", u, "openai", {"chain": []}, None, 0)
    wins, conflicts, errors = [0, 0], [0, 0], []

    def worker(i):
        try:
            with convd.client() as c:
                for k in range(40):
                    while True:
                        cur = c.call("get_state", u, "openai")
                        nxt = {"chain": cur["state"]["chain"] +
                               [f"w{i}-{k}"]}
                        try:
                            c.call("set_state", user_id=u, provider="openai",
                                   state=nxt,
                                   expected_version=cur["version"])
                            wins[i] += 1
                            break
                        except RpcError as e:
                            if e.code != "conflict":
                                raise
                            conflicts[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == []
    with convd.client() as c:
        final = c.call("get_state", u, "openai")
    assert sum(wins) == 80
    assert len(final["state"]["chain"]) == 80
    assert final["version"] == 81
    for i in range(2):      # each worker's links in its own order
        mine = [x for x in final["state"]["chain"] if x.startswith(f"w{i}-")]
        assert mine == [f"w{i}-{k}" for k in range(40)]
    print(f"conflicts seen: {conflicts}")


# ------------------------------------------------------- export / import

def test_export_import_round_trips_every_field(convd):
    u, v = uid(), uid()
    sig = os.urandom(64)
    with convd.client() as c:
        c.call("add_message", u, "anthropic", "user", "plain")
        c.call("add_message", user_id=u, provider="anthropic",
               role="assistant", content=anthropic_turn(sig),
               conversation_id="conv_x", tool_call_id="t1", name="n1",
               model="claude", tokens=77, metadata={"m": [1, b"\x00"]},
               idempotency_key="k-" + u)
        c.call("add_message", user_id=u, provider="openai", role="tool",
               content="r", conversation_id="conv_y", tool_call_id="call_1")
        rows = c.call("export_history", u)
        assert len(rows) == 3
        assert "conversation_id" not in rows[0]
        named = c.call("export_history", user_id=u, conversation_id="conv_x")
        assert len(named) == 1 and named[0]["content"] == anthropic_turn(sig)
        assert named[0]["idempotency_key"] == "k-" + u
        for r in rows:
            args = {k: r[k] for k in r if k not in ("id", "created_at",
                                                   "provider")}
            args.update(user_id=v, provider=r["provider"],
                        created_at=r["created_at"].to_unix_nano() // 1000)
            if "idempotency_key" in args:
                args["idempotency_key"] = "k-" + v
            assert c.call("import_message", **args)["imported"] is True
        back = c.call("export_history", v)
    strip = ("id", "idempotency_key")
    assert [{k: x for k, x in r.items() if k not in strip} for r in back] \
        == [{k: x for k, x in r.items() if k not in strip} for r in rows]



def test_import_keeps_messages_that_differ_only_in_fields(convd, pg):
    """Regression: import_message took a message equal in provider,
    created_at, role, content and conversation for one already stored, so
    the parallel tool results of one group commit (one created_at, the
    same output "ok", different tool_call_id) collapsed into one on
    import.  Every optional field now counts."""
    u, v = uid(), uid()
    n = 50
    with convd.client() as c:
        for i in range(n):      # pipelined: one group commit, one created_at
            c.request("add_message", {"user_id": u, "provider": "openai",
                                      "role": "tool", "content": "ok",
                                      "conversation_id": "conv_t",
                                      "tool_call_id": f"call_{i}"})
        for _ in range(n):
            r = c.recv()
            assert r[2] is None, r
        rows = c.call("export_history", user_id=u, conversation_id="conv_t",
                      limit=1000)
        assert len(rows) == n
        assert len({r["created_at"] for r in rows}) < n  # shared times
        # equal but for one field each: model, name, tokens, metadata
        base = {"user_id": u, "provider": "openai", "role": "assistant",
                "content": "same", "conversation_id": "conv_t",
                "created_at": 1700000000000000}
        variants = [{}, {"model": "m1"}, {"name": "n1"}, {"tokens": 5},
                    {"metadata": {"a": 1}}]
        for extra in variants:
            assert c.call("import_message", **base, **extra)["imported"]
        for r in rows:
            args = {k: r[k] for k in r if k not in ("id", "created_at",
                                                   "provider")}
            args.update(user_id=v, provider=r["provider"],
                        created_at=r["created_at"].to_unix_nano() // 1000)
            assert c.call("import_message", **args)["imported"] is True
            # the same message again is still not stored twice
            assert c.call("import_message", **args)["imported"] is False
        for extra in variants:
            assert not c.call("import_message", **base, **extra)["imported"]
    assert pg.psql("SELECT count(DISTINCT tool_call_id) FROM"
                   " simple_conversation_history WHERE user_id = "
                   + q(v)).strip() == str(n)
    assert pg.psql("SELECT count(*) FROM simple_conversation_history"
                   " WHERE user_id = " + q(u) + " AND content = 'same'"
                   ).strip() == str(len(variants))


# ------------------------------------------------------------- convctl

def test_convctl_conversations_state_and_history(convd):
    import json
    u = uid()
    with convd.client() as c:
        c.call("add_message", u, "openai", "user", "hi")
        c.call("add_message", user_id=u, provider="openai",
               role="assistant", conversation_id="conv_9",
               content={"tool_calls": [{"id": "call_9"}]}, model="gpt-4.1",
               tokens=31)
        c.call("add_message", user_id=u, provider="openai", role="tool",
               conversation_id="conv_9", content="22 C",
               tool_call_id="call_9", name="get_weather")

    def run(*args):
        return convd.convctl(*args)

    r = run("conversations", u)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "conv_9" in lines[0] and \
        "(default)" in lines[1] and "2 messages" in lines[0], r.stdout
    j = json.loads(run("--json", "conversations", u, "-n", "1").stdout)
    assert [x.get("conversation_id") for x in j] == ["conv_9", None]

    r = run("history", u, "openai", "--conversation", "conv_9")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].split() == ["TIME", "ROLE", "CONTENT"]
    assert '"tool_calls"' in out[1] and "call_9" in out[1]
    assert out[2].split() == ["model=gpt-4.1", "tokens=31"], out
    assert out[3].split()[1:] == ["tool", "22", "C"]
    assert out[4].split() == ["name=get_weather", "tool_call_id=call_9"]
    rows = json.loads(run("--json", "history", u, "openai",
                          "--conversation", "conv_9").stdout)
    assert rows[0]["content"] == {"tool_calls": [{"id": "call_9"}]}

    assert run("state", "get", u, "openai").stdout == "(no state)\n"
    r = run("state", "set", u, "openai",
            '{"conversation": "conv_9", "previous_response_id": "r1"}',
            "--expected-version", "0")
    assert r.returncode == 0 and r.stdout == "state saved, version 1\n", r
    r = run("state", "set", u, "openai", '{"previous_response_id": "r2"}',
            "--expected-version", "0")
    assert r.returncode == 1 and "conflict" in r.stderr, r
    r = run("--json", "state", "set", u, "openai", "[1]")
    assert r.returncode == 1 and "invalid_params" in r.stderr, r
    r = run("state", "set", u, "openai", "{not json")
    assert r.returncode == 2, r
    st = json.loads(run("--json", "state", "get", u, "openai").stdout)
    assert st["version"] == 1 and st["state"] == \
        {"conversation": "conv_9", "previous_response_id": "r1"}
    with convd.client() as c:
        assert c.call("get_state", u, "openai")["state"] == st["state"]
