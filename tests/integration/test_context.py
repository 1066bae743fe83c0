"""get_context through the real convd (issue 18, point 1): the newest
messages that fit a token budget, with tool exchanges kept whole, in the
shapes the providers' APIs give them (Anthropic tool_use/tool_result
blocks, OpenAI Chat tool_calls and tool messages, OpenAI Responses
function_call items): several calls in one assistant message, results
out of order, an exchange larger than the budget, a budget smaller than
the newest message, include_system, the token estimate for Chinese and
English, and windows read in several pages.
"""
import math

import pytest

import convdtest
from convdtest import RpcError

P = "anthropic"


def estimate(text, mp_len=0):
    """convd-protocol(7) "Token estimate"."""
    cjk = other = 0
    for ch in text:
        c = ord(ch)
        if (0x1100 <= c <= 0x11ff or 0x2e80 <= c <= 0x2fdf or
                0x2ff0 <= c <= 0x303f or 0x3040 <= c <= 0x30ff or
                0x3100 <= c <= 0x33ff or 0x3400 <= c <= 0x4dbf or
                0x4e00 <= c <= 0x9fff or 0xa960 <= c <= 0xa97f or
                0xac00 <= c <= 0xd7ff or 0xf900 <= c <= 0xfaff or
                0xfe30 <= c <= 0xfe4f or 0xff00 <= c <= 0xffef or
                0x20000 <= c <= 0x3ffff):
            cjk += 1
        else:
            other += len(ch.encode())
    t = 4 + cjk + math.ceil(other / 4)
    tb = len(text.encode())
    if mp_len > tb:
        t += math.ceil((mp_len - tb) / 8)
    return t


class Conv:
    """Adds messages to one conversation; remembers their ids by label."""

    def __init__(self, c, user, conversation_id=None, provider=P):
        self.c, self.user, self.conv, self.provider = (
            c, user, conversation_id, provider)
        self.ids = {}

    def add(self, label, role, content, tokens=None, **extra):
        p = dict(user_id=self.user, provider=self.provider, role=role,
                 content=content, **extra)
        if tokens is not None:
            p["tokens"] = tokens
        if self.conv is not None:
            p["conversation_id"] = self.conv
        self.ids[label] = self.c.call("add_message", **p)["id"]
        return self.ids[label]

    def window(self, max_tokens, **kw):
        p = dict(user_id=self.user, provider=self.provider,
                 max_tokens=max_tokens, **kw)
        if self.conv is not None:
            p["conversation_id"] = self.conv
        r = self.c.call("get_context", **p)
        names = {v: k for k, v in self.ids.items()}
        return ("".join(names[m["id"]] for m in r["messages"]),
                r["total_tokens"], r["truncated"], r)


def anthropic_call(ids):
    return [{"type": "text", "text": "Let me check."}] + [
        {"type": "tool_use", "id": i, "name": "search",
         "input": {"q": "高鐵 時刻表"}} for i in ids]


def anthropic_results(ids):
    return [{"tool_use_id": i, "type": "tool_result",
             "content": [{"type": "text", "text": "08:00 台北 → 左營"}]}
            for i in ids]


def openai_call(ids):
    return {"content": None, "tool_calls": [
        {"id": i, "type": "function",
         "function": {"name": "get_weather",
                      "arguments": "{\"city\":\"Taipei\"}"}} for i in ids]}


def test_plain_budget(client):
    v = Conv(client, convdtest.uid())
    for label, role, tokens in [("a", "user", 10), ("b", "assistant", 20),
                                ("c", "user", 30), ("d", "assistant", 40)]:
        v.add(label, role, f"message {label}", tokens)
    assert v.window(1000)[:3] == ("abcd", 100, False)
    assert v.window(100)[:3] == ("abcd", 100, False)
    assert v.window(99)[:3] == ("bcd", 90, True)
    assert v.window(39)[:3] == ("", 0, True)     # smaller than the newest
    assert v.window(1000, max_messages=2)[:3] == ("cd", 70, True)
    # the rows are get_recent_conversations' rows, oldest first
    rows = v.window(1000)[3]["messages"]
    recent = client.call("get_recent_conversations", user_id=v.user,
                         provider=P, limit=2)
    assert rows == recent


def test_anthropic_several_calls_results_out_of_order(client):
    v = Conv(client, convdtest.uid())
    v.add("q", "user", "Trains to Kaohsiung?", 10)
    v.add("x", "assistant", anthropic_call(["toolu_01", "toolu_02"]), 30)
    v.add("r", "user", anthropic_results(["toolu_02", "toolu_01"]), 40)
    v.add("z", "assistant", "The 08:00.", 10)
    v.add("u", "user", "Thanks", 5)
    assert v.window(1000)[:3] == ("qxrzu", 95, False)
    assert v.window(85)[:3] == ("xrzu", 85, True)
    # an exchange larger than the budget is left out whole
    assert v.window(84)[:3] == ("zu", 15, True)
    # the structured content comes back exactly as sent
    msgs = v.window(1000)[3]["messages"]
    assert msgs[1]["content"] == anthropic_call(["toolu_01", "toolu_02"])
    assert msgs[2]["content"] == anthropic_results(["toolu_02", "toolu_01"])


def test_openai_chat_results_out_of_order(client):
    v = Conv(client, convdtest.uid(), conversation_id="chat-1",
             provider="openai")
    v.add("q", "user", "Weather in three cities?", 10)
    v.add("x", "assistant", openai_call(["call_A", "call_B", "call_C"]), 20)
    for label, cid in [("B", "call_B"), ("C", "call_C"), ("A", "call_A")]:
        v.add(label, "tool", "晴天 28°C", 5, tool_call_id=cid)
    v.add("z", "assistant", "All sunny.", 10)
    assert v.window(1000)[:3] == ("qxBCAz", 55, False)
    assert v.window(45)[:3] == ("xBCAz", 45, True)
    assert v.window(44)[:3] == ("z", 10, True)
    assert v.window(1000, max_messages=4)[:3] == ("z", 10, True)
    # the newest message is a tool result: never the first of a window
    v.add("D", "tool", "late", 1, tool_call_id="call_A")
    assert v.window(1)[:3] == ("", 0, True)
    # the default conversation of the same user is another conversation
    other = Conv(client, v.user, provider="openai")
    other.add("d", "user", "default", 3)
    assert other.window(1000)[:3] == ("d", 3, False)


def test_openai_responses(client):
    v = Conv(client, convdtest.uid(), provider="openai")
    v.add("q", "user", "Weather?", 10)
    v.add("x", "assistant", [{"type": "function_call", "call_id": "fc_1",
                              "name": "w", "arguments": "{}"}], 10)
    v.add("y", "assistant", [{"type": "function_call", "call_id": "fc_2",
                              "name": "w", "arguments": "{}"}], 10)
    v.add("Y", "tool", [{"type": "function_call_output", "call_id": "fc_2",
                         "output": "rain"}], 10)
    v.add("X", "tool", [{"type": "function_call_output", "call_id": "fc_1",
                         "output": "sun"}], 10)
    v.add("z", "assistant", "Mixed.", 10)
    assert v.window(1000)[:3] == ("qxyYXz", 60, False)
    assert v.window(50)[:3] == ("xyYXz", 50, True)
    assert v.window(49)[:3] == ("z", 10, True)


def test_pending_call_and_missing_result(client):
    v = Conv(client, convdtest.uid())
    v.add("q", "user", "Two lookups", 10)
    v.add("x", "assistant", anthropic_call(["toolu_1", "toolu_2"]), 30)
    v.add("r", "user", anthropic_results(["toolu_1"]), 40)
    v.add("z", "assistant", "Only one worked.", 10)
    assert v.window(1000)[:3] == ("qxrz", 90, False)
    # never begins with a call whose results are missing
    assert v.window(80)[:3] == ("z", 10, True)
    w = Conv(client, convdtest.uid())
    w.add("q", "user", "Book it", 10)
    w.add("x", "assistant", anthropic_call(["toolu_9"]), 20)
    assert w.window(1000)[:3] == ("qx", 30, False)
    assert w.window(25)[:3] == ("", 0, True)


def test_result_of_a_deleted_call(client):
    v = Conv(client, convdtest.uid(), provider="openai")
    v.add("a", "user", "old", 1)
    v.add("x", "assistant", openai_call(["call_gone"]), 1)
    v.add("r", "tool", "result", 1, tool_call_id="call_gone")
    v.add("q", "user", "new", 1)
    v.add("z", "assistant", "new", 1)
    assert v.window(1000)[:3] == ("axrqz", 5, False)
    client.call("delete_message", user_id=v.user, id=v.ids["x"])
    del v.ids["x"]
    assert v.window(1000)[:3] == ("qz", 2, True)


def test_include_system(client):
    v = Conv(client, convdtest.uid(), conversation_id="sys")
    v.add("s", "system", "You are a helpful bot.", 10)
    v.add("a", "user", "Hi", 10)
    v.add("b", "assistant", "Hello", 10)
    v.add("d", "developer", "Answer in Traditional Chinese.", 5)
    v.add("c", "user", "你好", 10)
    v.add("e", "assistant", "您好", 10)
    assert v.window(1000, include_system=True)[:3] == ("sdabce", 55, False)
    assert v.window(35, include_system=True)[:3] == ("sdce", 35, True)
    assert v.window(15, include_system=True)[:3] == ("sd", 15, True)
    assert v.window(14, include_system=True)[:3] == ("d", 5, True)
    assert v.window(1000, max_messages=3,
                    include_system=True)[:3] == ("sde", 25, True)
    assert v.window(35)[:3] == ("bdce", 35, True)
    # with a long history, the system prompt is found all the same
    for i in range(300):
        v.add(f"m{i}", "user" if i % 2 == 0 else "assistant", f"turn {i}", 1)
    names, total, trunc, _ = v.window(17, include_system=True)
    assert names == "sd" + "".join(f"m{i}" for i in range(298, 300))
    assert (total, trunc) == (17, True)
    # the newest system message that fits, then the newest others
    names, total, trunc, _ = v.window(13, include_system=True)
    assert names == "d" + "".join(f"m{i}" for i in range(292, 300))
    assert (total, trunc) == (13, True)


def test_estimates_chinese_english(client):
    v = Conv(client, convdtest.uid())
    zh = "請問明天早上去高雄的高鐵還有位子嗎？"
    en = "Please book two tickets to Kaohsiung for tomorrow morning."
    mixed = "我想用 Python 寫一個 LINE bot"
    blocks = [{"type": "text", "text": "今天天氣很好。"},
              {"type": "image", "source": {"type": "url",
                                           "url": "https://example.com/a.png"}}]
    v.add("z", "user", zh)
    v.add("e", "assistant", en)
    v.add("m", "user", mixed)
    v.add("b", "user", blocks)
    import msgpack
    mp_len = len(msgpack.packb(blocks, use_bin_type=True))
    want = [estimate(zh), estimate(en), estimate(mixed),
            estimate("今天天氣很好。", mp_len)]
    assert want[0] == 4 + 18 and want[1] == 4 + 15
    assert v.window(1000)[:3] == ("zemb", sum(want), False)
    assert v.window(sum(want) - 1)[:3] == ("emb", sum(want[1:]), True)
    # a stored count wins over the estimate
    v.add("t", "assistant", zh, 0)
    assert v.window(1000)[1] == sum(want)


def test_pages(client, schema):
    """A window longer than a page, with an exchange across pages."""
    v = Conv(client, convdtest.uid(), provider="openai")
    v.add("q", "user", "start", 1)
    v.add("x", "assistant", openai_call([f"c{i}" for i in range(40)]), 1)
    for i in range(40):
        v.add(f"r{i}", "tool", "ok", 1, tool_call_id=f"c{i}")
    schema.psql("INSERT INTO simple_conversation_history (user_id,"
                " model_provider, role, content, tokens, created_at)"
                f" SELECT {convdtest.sql_literal(v.user)}, 'openai',"
                " CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,"
                " 'bulk ' || i, 1, now() + (i + 1) * interval '1 second'"
                " FROM generate_series(0, 1499) i")
    r = client.call("get_context", user_id=v.user, provider="openai",
                    max_tokens=100000, max_messages=10000)
    assert len(r["messages"]) == 1542 and not r["truncated"]
    assert r["messages"][0]["id"] == v.ids["q"]
    assert r["total_tokens"] == 1542
    r = client.call("get_context", user_id=v.user, provider="openai",
                    max_tokens=1520, max_messages=10000)
    assert len(r["messages"]) == 1500 and r["truncated"]
    assert r["messages"][0]["content"] == "bulk 0"
    r = client.call("get_context", user_id=v.user, provider="openai",
                    max_tokens=1541, max_messages=10000)
    assert len(r["messages"]) == 1541 and r["truncated"]
    assert r["messages"][0]["id"] == v.ids["x"]
    r = client.call("get_context", user_id=v.user, provider="openai",
                    max_tokens=100000)
    assert len(r["messages"]) == 1000 and r["truncated"]


def test_unknown_and_invalid(client):
    r = client.call("get_context", user_id=convdtest.uid(), provider=P,
                    max_tokens=10)
    assert r == {"messages": [], "total_tokens": 0, "truncated": False}
    for bad in [dict(max_tokens=0), dict(max_tokens=10000001),
                dict(max_tokens=10, max_messages=0),
                dict(max_tokens=10, max_messages=10001),
                dict(max_tokens=10, include_system=1),
                dict(max_tokens=10, conversation_id=""),
                dict(max_tokens="10")]:
        with pytest.raises(RpcError) as e:
            client.call("get_context", user_id="u", provider=P, **bad)
        assert e.value.code == "invalid_params", bad
    # positional: user_id, provider, max_tokens, conversation_id,
    # max_messages, include_system, platform
    r = client.call("get_context", "u", P, 10, None, 5, True, "line")
    assert r["messages"] == []
