"""convctl carries every field of issue 17 (audit items 1, 4 and 10),
through the real convd and PostgreSQL:

- `convctl -s A export U | convctl -s B import` between two convd on two
  databases keeps conversation_id, tool_call_id, name, model, tokens,
  metadata, idempotency_key and structured content byte for byte (bin
  signatures, a non-shortest integer), compared row by row in the tables;
- lines of the old format still import; a line import cannot carry
  whole is refused with its line number;
- `convctl add` takes every field and all five roles; `clear` and `count`
  act on the default conversation unless --conversation names one;
  `delete-conversation` deletes a named one.
"""

import base64
import json
import subprocess

import msgpack
import pytest

import convdtest
from convdtest import sql_literal as q, uid

HIST = "simple_conversation_history"
# one line per row: the text as JSON (it may hold newlines)
COLS = ("platform, model_provider, conversation_id, role, to_json(content),"
        " encode(content_mp, 'hex'),"
        " (extract(epoch FROM created_at) * 1000000)::bigint,"
        " tool_call_id, name, model, tokens, encode(metadata, 'hex'),"
        " idempotency_key")


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def raw_add(path, fields):
    """add_message with named params given as (key, msgpack bytes) pairs,
    so that a value's encoding is chosen byte by byte."""
    body = b"".join(packb(k) + v for k, v in fields)
    n = len(fields)
    assert n < 16
    with convdtest.Client(path) as c:
        c.send_raw(b"\x94\x00\x01" + packb("add_message") + b"\x91"
                   + bytes([0x80 | n]) + body)
        resp = c.recv()
    assert resp[2] is None, resp
    return resp[3]["id"]


def rows(pg, user, db=None):
    return pg.psql(f"SELECT {COLS} FROM {HIST} WHERE user_id = {q(user)}"
                   f" ORDER BY id", db=db).splitlines()


@pytest.fixture(scope="module")
def second(schema):
    """A second database on the cluster, set up, with its own convd."""
    schema.createdb("convd_b")
    convdtest.setup_schema(schema, "convd_b")
    d = convdtest.Convd(schema, extra={"database": {"name": "convd_b"}})
    d.start()
    yield d
    d.stop()
    assert d.sanitizer_report() is None


def thinking(sig):
    """An Anthropic turn: a thinking block with a binary signature, and an
    int 64 holding 3 where a packer writes one byte."""
    content = packb([
        {"type": "thinking", "thinking": "weather?", "signature": sig},
        {"type": "redacted_thinking", "data": b"\x00\x01opaque\xff"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
         "input": {"city": "\u53f0\u5317", "days": 3}},
    ])
    content = content.replace(b"\xa4days\x03",
                              b"\xa4days\xd3" + (3).to_bytes(8, "big"))
    assert b"\xd3\x00\x00\x00\x00\x00\x00\x00\x03" in content
    return content


def history_with_every_field(path, u):
    """Several conversations and providers, every field, structured
    content with bin and a non-shortest integer; returns the structured
    content's bytes."""
    s = packb
    sig = bytes(range(256)) + b"\x00" * 7
    turn = thinking(sig)
    odd_meta = b"\x82" + s("title") + s("Weather") + s("n") + b"\xcd\x00\x05"
    calls = s({"content": None, "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "get_weather",
                      "arguments": "{\"city\":\"Taipei\"}"}}]})
    base = [("user_id", s(u))]
    raw_add(path, base + [("provider", s("anthropic")), ("role", s("user")),
                          ("content", s("plain, default conversation")),
                          ("idempotency_key", s("k1-" + u))])
    raw_add(path, base + [("provider", s("anthropic")),
                          ("role", s("system")), ("content", s("be brief")),
                          ("conversation_id", s("conv_a"))])
    raw_add(path, base + [("provider", s("anthropic")),
                          ("role", s("assistant")), ("content", turn),
                          ("conversation_id", s("conv_a")),
                          ("model", s("claude-x")), ("tokens", s(77)),
                          ("metadata", s({"title": "Weather", "ok": True,
                                          "list": [1, -2, "x", None]})),
                          ("idempotency_key", s("k2-" + u))])
    raw_add(path, base + [("provider", s("anthropic")), ("role", s("tool")),
                          ("content", s("{\"temp_c\": 22}")),
                          ("conversation_id", s("conv_a")),
                          ("tool_call_id", s("toolu_01")),
                          ("name", s("get_weather"))])
    raw_add(path, base + [("provider", s("openai")),
                          ("role", s("developer")), ("content", s("dev")),
                          ("conversation_id", s("conv_b")),
                          ("metadata", odd_meta)])
    raw_add(path, base + [("provider", s("openai")),
                          ("role", s("assistant")), ("content", calls),
                          ("conversation_id", s("conv_b")),
                          ("model", s("gpt-4.1")), ("tokens", s(0)),
                          ("metadata", s({"sig": b"\x00\xff",
                                          "t": 1.5}))])
    raw_add(path, base + [("provider", s("openai")), ("role", s("tool")),
                          ("content", s([{"type": "text", "text": "22"},
                                         {"type": "text", "text": "C"}])),
                          ("conversation_id", s("conv_b")),
                          ("tool_call_id", s("call_9")),
                          ("name", s("get_weather"))])
    raw_add(path, base + [("provider", s("gemini")), ("role", s("user")),
                          ("content", s("quote \" tab\t \u4f60\u597d"))])
    # "text" values that are no text: bytes with a NUL, bytes that are
    # not UTF-8 (as bin: convd refuses such strs, convd-protocol(7))
    raw_add(path, base + [("provider", s("gemini")),
                          ("role", s("assistant")),
                          ("content", b"\x93" + s({"text": b"a\x00b"})
                           + b"\x81" + s("text") + b"\xc4\x02\xff\xfe"
                           + s({"text": "ok"}))])
    # another user's message: not exported
    raw_add(path, [("user_id", s(u + "-other")), ("provider", s("gemini")),
                   ("role", s("user")), ("content", s("not mine"))])
    return turn, odd_meta


def pipe(a, b, user, *export_args):
    """`convctl -s A export USER | convctl -s B import`: (export, import)
    CompletedProcess-like results."""
    exp = subprocess.Popen([convdtest.CONVCTL, "-s", a.socket, "export",
                            user, *export_args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    imp = subprocess.run([convdtest.CONVCTL, "-s", b.socket, "import"],
                         stdin=exp.stdout, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         timeout=convdtest.scaled(60))
    exp.stdout.close()
    err = exp.stderr.read()
    assert exp.wait(convdtest.scaled(60)) == 0, err
    return imp


def test_round_trip_every_field_between_databases(convd, second, schema):
    u = uid("rt")
    turn, odd_meta = history_with_every_field(convd.socket, u)
    src = rows(schema, u)
    assert len(src) == 9, src

    # the export: text for jq, exact bytes beside it
    r = convd.convctl("export", u, check=True)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 9
    byconv = {(x["provider"], x.get("conversation_id"), x["role"]): x
              for x in lines}
    a = byconv[("anthropic", "conv_a", "assistant")]
    assert a["content"] == "Let me check."
    assert base64.b64decode(a["content_mp"]) == turn
    assert a["metadata"] == {"title": "Weather", "ok": True,
                             "list": [1, -2, "x", None]}
    assert "metadata_mp" not in a
    assert (a["model"], a["tokens"], a["idempotency_key"]) == \
        ("claude-x", 77, "k2-" + u)
    # metadata that JSON cannot give back byte for byte: base64 msgpack
    d = byconv[("openai", "conv_b", "developer")]
    assert base64.b64decode(d["metadata_mp"]) == odd_meta
    assert "metadata" not in d
    bin_meta = byconv[("openai", "conv_b", "assistant")]
    assert msgpack.unpackb(base64.b64decode(bin_meta["metadata_mp"])) == \
        {"sig": b"\x00\xff", "t": 1.5}
    assert bin_meta["tokens"] == 0
    t = byconv[("anthropic", "conv_a", "tool")]
    assert (t["tool_call_id"], t["name"]) == ("toolu_01", "get_weather")
    assert "content_mp" not in t
    # the text convd derives (the content column), not the odd strs
    assert byconv[("gemini", None, "assistant")]["content"] == "ok"
    plain = byconv[("anthropic", None, "user")]
    assert set(plain) == {"id", "user_id", "platform", "provider", "role",
                          "content", "created_at", "idempotency_key"}

    # export | import into the second database: every column equal
    imp = pipe(convd, second, u)
    assert imp.returncode == 0, imp.stderr
    assert imp.stdout == "imported 9 messages, skipped 0 already present\n"
    dst = rows(schema, u, db="convd_b")
    assert dst == src
    assert bytes.fromhex(schema.psql(
        f"SELECT encode(content_mp, 'hex') FROM {HIST} WHERE user_id ="
        f" {q(u)} AND role = 'assistant' AND model_provider = 'anthropic'",
        db="convd_b")) == turn
    # again: nothing stored twice (keys, or every column equal)
    imp = pipe(convd, second, u)
    assert imp.returncode == 0, imp.stderr
    assert imp.stdout == "imported 0 messages, skipped 9 already present\n"
    assert rows(schema, u, db="convd_b") == src

    # one conversation, one provider
    r = convd.convctl("export", u, "--conversation", "conv_b", check=True)
    assert [json.loads(x)["role"] for x in r.stdout.splitlines()] == \
        ["developer", "assistant", "tool"]
    r = convd.convctl("export", u, "--provider", "anthropic",
                      "--conversation", "conv_a", check=True)
    assert len(r.stdout.splitlines()) == 3


def test_old_format_lines_still_import(convd, schema):
    """A line as convctl export wrote it before issue 17 means what it
    meant: the default conversation, no new fields."""
    u = uid("old")
    old = [{"id": 42, "user_id": u, "platform": "line",
            "provider": "anthropic", "role": "assistant",
            "content": "hello", "created_at": "2026-11-24T06:52:58.123456Z",
            "idempotency_key": "old-" + u},
           {"id": 43, "user_id": u, "platform": "line", "provider": "gemini",
            "role": "user", "content": "no key",
            "created_at": "2026-11-24T06:53:00.000001Z"}]
    r = convd.convctl("import", input="".join(json.dumps(x) + "\n"
                                              for x in old))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "imported 2 messages, skipped 0 already present\n"
    assert rows(schema, u) == [
        f'line|anthropic||assistant|"hello"||1795503178123456|||||'
        f"|old-{u}",
        'line|gemini||user|"no key"||1795503180000001||||||']


def test_hand_written_json_content_and_metadata(convd, schema):
    """content as a JSON array and metadata as a JSON object (what people
    write with jq) are packed as msgpack."""
    u = uid("hand")
    line = {"user_id": u, "provider": "openai", "role": "assistant",
            "created_at": "2026-01-01T00:00:00Z", "conversation_id": "c1",
            "content": [{"type": "text", "text": "hi"}],
            "metadata": {"k": [1, "v"]}, "tokens": None, "model": None}
    r = convd.convctl("import", input=json.dumps(line) + "\n")
    assert r.returncode == 0, r.stderr
    got = rows(schema, u)
    assert got == ['line|openai|c1|assistant|"hi"|'
                   + packb([{"type": "text", "text": "hi"}]).hex()
                   + "|1767225600000000|||||"
                   + packb({"k": [1, "v"]}).hex() + "|"]


@pytest.mark.parametrize("bad,want", [
    ('{"later": 1}', 'unknown member "later"'),
    ('{"content_mp": "not base64!"}', "'content_mp' is not base64"),
    ('{"content": "edited", "content_mp": "%s"}'
     % base64.b64encode(packb([{"text": "orig"}])).decode(),
     "'content' is not the text of 'content_mp'"),
    ('{"tokens": -3}', "'tokens' must be an integer"),
    ('{"metadata": [1]}', "'metadata' must be an object"),
    ('{"metadata_mp": "%s"}' % base64.b64encode(packb([1])).decode(),
     "'metadata_mp' is not one msgpack map"),
])
def test_malformed_line_refused_with_its_number(convd, schema, bad, want):
    """The first line import cannot carry whole stops it, named by its
    number; the lines before it stay stored."""
    u = uid("bad")
    good = {"user_id": u, "provider": "gemini", "role": "user",
            "content": "x", "created_at": "2025-01-02T03:04:05Z"}
    third = dict(good, **json.loads(bad))
    if "content_mp" in json.loads(bad) and "content" not in json.loads(bad):
        del third["content"]
    text = (json.dumps(good) + "\n\n"
            + json.dumps(dict(good, content="y")) + "\n"
            + json.dumps(third) + "\n" + json.dumps(dict(good, content="z"))
            + "\n")
    r = convd.convctl("import", input=text)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "convctl: line 4: " in r.stderr and want in r.stderr, r.stderr
    assert "stopped: imported 2, skipped 0 before the error" in r.stderr
    assert schema.psql(f"SELECT string_agg(content, ',' ORDER BY id) FROM"
                       f" {HIST} WHERE user_id = {q(u)}") == "x,y"


# ------------------------------------------------------------------ add

def test_add_takes_every_field_and_role(convd, schema):
    u = uid("add")
    r = convd.convctl("--json", "add", u, "openai", "tool", "22 C",
                      "--conversation", "conv_t", "--tool-call-id", "call_1",
                      "--name", "get_weather", "--model", "gpt-4.1",
                      "--tokens", "2147483647",
                      "--metadata", '{"latency_ms": 812, "tags": ["a"]}')
    assert r.returncode == 0, r.stderr
    mid = json.loads(r.stdout)["id"]
    assert schema.psql(
        f"SELECT conversation_id, role, content, tool_call_id, name, model,"
        f" tokens, encode(metadata, 'hex') FROM {HIST} WHERE id = {mid}") \
        == ("conv_t|tool|22 C|call_1|get_weather|gpt-4.1|2147483647|"
            + packb({"latency_ms": 812, "tags": ["a"]}).hex())
    content = [{"type": "text", "text": "Hello"},
               {"type": "image", "url": "https://x/y.png"}]
    r = convd.convctl("--json", "add", u, "openai", "assistant", "-",
                      "--structured", "--conversation", "conv_t",
                      input=json.dumps(content) + "\n")
    assert r.returncode == 0, r.stderr
    mid = json.loads(r.stdout)["id"]
    assert schema.psql(f"SELECT content, encode(content_mp, 'hex') FROM"
                       f" {HIST} WHERE id = {mid}") == \
        "Hello|" + packb(content).hex()
    for role in ("user", "assistant", "system", "developer", "tool"):
        r = convd.convctl("add", u, "gemini", role, "as " + role)
        assert r.returncode == 0, (role, r.stderr)
    assert schema.psql(f"SELECT string_agg(role, ',' ORDER BY id) FROM {HIST}"
                       f" WHERE user_id = {q(u)} AND model_provider ="
                       f" 'gemini'") == "user,assistant,system,developer,tool"


@pytest.mark.parametrize("args,want", [
    (("--metadata", "[1]"), "--metadata: not a JSON object"),
    (("--metadata", "{"), "--metadata: not JSON"),
    (("--structured",), "--structured TEXT: not JSON"),
    (("--tokens", "-1"), "--tokens: '-1' is not a number"),
    (("--tokens", "2147483648"), "--tokens"),
])
def test_add_refuses_bad_fields(convd, schema, args, want):
    u = uid("addbad")
    r = convd.convctl("add", u, "openai", "user", "text", *args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert want in r.stderr, r.stderr
    assert schema.psql(f"SELECT count(*) FROM {HIST} WHERE user_id ="
                       f" {q(u)}") == "0"


def test_add_fields_only_for_add(convd):
    r = convd.convctl("count", "u", "--model", "m")
    assert r.returncode == 2
    assert "--model does not apply to 'count'" in r.stderr, r.stderr
    r = convd.convctl("export", "u", "--structured")
    assert r.returncode == 2
    assert "--structured does not apply to 'export'" in r.stderr, r.stderr


# ---------------------------------------------- clear, count, delete

def test_clear_count_default_conversation_unless_named(convd, schema):
    """Audit item 10: clear and count act on the default conversation
    only (the protocol's meaning); --conversation names another one;
    delete-conversation deletes a named one and its state."""
    u = uid("cc")
    for conv in (None, None, "conv_a", "conv_a", "conv_a"):
        args = ("--conversation", conv) if conv else ()
        convd.convctl("add", u, "openai", "user", "m", *args, check=True)
    convd.convctl("add", u, "gemini", "user", "m", "--conversation",
                  "conv_a", check=True)
    convd.convctl("state", "set", u, "openai", '{"r": "resp_1"}',
                  "--conversation", "conv_a", check=True)

    def count(*a):
        return convd.convctl("count", u, *a, check=True).stdout.strip()

    assert count() == "2"
    assert count("openai") == "2"
    assert count("--conversation", "conv_a") == "4"
    assert count("openai", "--conversation", "conv_a") == "3"
    assert count("gemini") == "0"

    r = convd.convctl("clear", u, "openai", check=True)
    assert r.stdout == "deleted 2 messages\n"
    assert count("--conversation", "conv_a") == "4"      # left alone
    r = convd.convctl("--json", "clear", u, "gemini", "--conversation",
                      "conv_a", check=True)
    assert json.loads(r.stdout) == {"deleted": 1}
    assert count("--conversation", "conv_a") == "3"

    r = convd.convctl("delete-conversation", u, "openai", "conv_a",
                      check=True)
    assert r.stdout == "deleted 3 messages\n"
    assert schema.psql(f"SELECT count(*) FROM {HIST} WHERE user_id ="
                       f" {q(u)}") == "0"
    r = convd.convctl("state", "get", u, "openai", "--conversation",
                      "conv_a", check=True)
    assert r.stdout == "(no state)\n"
    r = convd.convctl("--json", "delete-conversation", u, "openai", "conv_a",
                      check=True)
    assert json.loads(r.stdout) == {"deleted": 0}
    r = convd.convctl("delete-conversation", u, "openai")
    assert r.returncode == 2 and "usage" in r.stderr
