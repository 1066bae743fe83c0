"""Structured values at their limits through the real convd and a raw
socket (issue 17): content, metadata and state hold any number of values
up to their byte limits (no cap from the request decoder's nodes); content
nested up to the depth limit (64) is kept and read back byte for byte, one
level more is answered invalid_params on a connection that stays usable;
only a frame nested beyond the frame-level bound (1024) closes the
connection; and the daemon's memory stays bounded through all of it
(convd-protocol(7), LIMITS)."""

import struct

import msgpack
import pytest

import convdtest
from convdtest import Raw, uid

CONTENT_MAX_DEPTH = 64
FRAME_MAX_DEPTH = 1024      # PROTO_MAX_DEPTH
HIST = "simple_conversation_history"


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def request(msgid, method, named_raw):
    """[0, msgid, method, [{name: value}]] with each value given as its
    msgpack bytes (so that encodings and depths msgpack-python will not
    write can be sent)."""
    out = b"\x94" + packb(0) + packb(msgid) + packb(method) + b"\x91"
    out += b"\xde" + struct.pack(">H", len(named_raw))
    for k, v in named_raw.items():
        out += packb(k) + v
    return out


def nested_arrays(depth, inner=b"\xa1x"):
    """depth arrays of one element around inner, as bytes (msgpack-python
    refuses to pack more than 511 levels)."""
    return b"\x91" * depth + inner


def recv_bytes(r):
    """The next whole message on Raw r and its exact bytes."""
    data = b""
    unpacker = msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False)
    while True:
        chunk = r.sock.recv(1 << 20)
        assert chunk, "convd closed the connection"
        data += chunk
        unpacker.feed(chunk)
        for msg in unpacker:
            return msg, data


def call_raw(r, msgid, method, named_raw):
    r.send(request(msgid, method, named_raw))
    return recv_bytes(r)


def store_and_read(r, user, **named_raw):
    """add_message with these values (msgpack bytes), then the user's
    recent messages: (decoded rows, the answer's exact bytes)."""
    m, _ = call_raw(r, 1, "add_message", dict(base(user), **named_raw))
    assert m[2] is None, m
    m, data = call_raw(r, 2, "get_recent_conversations",
                       {"user_id": packb(user), "provider": packb("openai")})
    assert m[2] is None, m
    return m[3], data


def base(user, provider="openai"):
    return {"user_id": packb(user), "provider": packb(provider),
            "role": packb("user")}


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_error(msg, code, msgid, text=None):
    assert msg[0] == 1 and msg[1] == msgid, msg
    assert isinstance(msg[2], dict) and msg[2]["code"] == code, msg
    if text is not None:
        assert msg[2]["message"] == text, msg


# ------------------------------------------------------------ many values

def content_100000():
    """100,000 values within max_content_bytes (1 MiB): every 100th a
    text part, the others integers in a non-minimal encoding (uint16 for
    small numbers: msgpack-python would write them shorter, so equal bytes
    on the way back mean the stored bytes were given back)."""
    parts, texts = [], []
    for i in range(100000):
        if i % 100 == 0:
            t = f"t{i}"
            texts.append(t)
            parts.append(packb({"type": "text", "text": t}))
        else:
            parts.append(b"\xcd" + struct.pack(">H", i % 50))
    return b"\xdd" + struct.pack(">I", len(parts)) + b"".join(parts), texts


def test_content_of_100000_values_byte_exact(convd, schema):
    user = uid()
    content, texts = content_100000()
    assert len(content) < 1 << 20
    with Raw(convd.socket, timeout=30) as r:
        rows, data = store_and_read(r, user, content=content)
        assert len(rows) == 1 and len(rows[0]["content"]) == 100000
        assert content in data      # spliced back byte for byte
    # its text in the content column: the 1,000 text parts
    got = schema.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                      f"'{user}'")
    assert got.strip() == "\n".join(texts)


def test_metadata_and_state_with_many_values(convd):
    user = uid()
    # maps of 6,000 pairs each, within their 64 KiB
    meta = packb({i: [i] for i in range(6000)})
    state = packb({f"k{i}": i for i in range(6000)})
    assert 16000 < len(meta) < 65536 and 16000 < len(state) < 65536
    with Raw(convd.socket, timeout=30) as r:
        rows, data = store_and_read(r, user, content=packb("hi"),
                                    metadata=meta)
        assert rows[0]["metadata"][5999] == [5999], rows
        assert meta in data
        m, _ = call_raw(r, 3, "set_state",
                        {"user_id": packb(user), "provider": packb("openai"),
                         "state": state})
        assert m[2] is None and m[3]["version"] == 1, m
        m, data = call_raw(r, 4, "get_state",
                           {"user_id": packb(user),
                            "provider": packb("openai")})
        assert m[2] is None and len(m[3]["state"]) == 6000, m
        assert state in data
        # one byte over 64 KiB: invalid_params, the connection stays
        big = packb({"k": "v" * (65536 - 6 + 1)})
        assert len(big) == 65537
        m, _ = call_raw(r, 5, "set_state",
                        {"user_id": packb(user), "provider": packb("openai"),
                         "state": big})
        assert_error(m, "invalid_params", 5,
                     "state: 65537 bytes encoded, more than 65536")
        r.ping()


# ------------------------------------------------------------------ depth

def test_content_at_the_depth_limit_is_kept(convd):
    user = uid()
    content = nested_arrays(CONTENT_MAX_DEPTH, b"\xc4\x01\x00")  # bin
    with Raw(convd.socket) as r:
        rows, data = store_and_read(r, user, content=content)
        v, depth = rows[0]["content"], 0
        while isinstance(v, list):
            v, depth = v[0], depth + 1
        assert depth == CONTENT_MAX_DEPTH and v == b"\0"
        assert content in data


@pytest.mark.parametrize("param", ["content", "metadata", "state"])
def test_one_level_over_is_invalid_params_and_the_connection_stays(
        convd, param):
    user = uid()
    deep = b"\x81\xa1k" * CONTENT_MAX_DEPTH + b"\x80"   # maps, 65 deep
    if param == "state":
        method = "set_state"
        named = {"user_id": packb(user), "provider": packb("openai"),
                 "state": deep}
    else:
        method = "add_message"
        named = dict(base(user), content=packb("x"))
        named[param] = deep
    with Raw(convd.socket) as r:
        m, _ = call_raw(r, 1, method, named)
        assert_error(m, "invalid_params", 1,
                     f"{param}: nested more than 64 deep")
        # the next request on the same connection succeeds
        m, _ = call_raw(r, 2, "add_message",
                        dict(base(user), content=packb([1, [2]])))
        assert m[2] is None, m
        r.ping()


def test_deep_frames(convd):
    user = uid()
    with Raw(convd.socket) as bystander:
        with Raw(convd.socket) as r:
            # 1,000 levels of content: read whole, refused as a
            # parameter; the connection stays
            m, _ = call_raw(r, 1, "add_message",
                            dict(base(user), content=nested_arrays(1000)))
            assert_error(m, "invalid_params", 1,
                         "content: nested more than 64 deep")
            # the frame at its bound: [0, id, m, [{content: ...}]] is 3
            m, _ = call_raw(r, 2, "add_message",
                            dict(base(user), content=nested_arrays(
                                FRAME_MAX_DEPTH - 3)))
            assert_error(m, "invalid_params", 2)
            r.ping()
            # one level more: the frame is refused, the connection closed
            r.send(request(3, "add_message",
                           dict(base(user), content=nested_arrays(
                               FRAME_MAX_DEPTH - 2))))
            msgs = r.until_eof(10)
            assert len(msgs) == 1, msgs
            assert_error(msgs[0], "invalid_request", None)
        # 10,000 levels: the same, and convd goes on serving others
        with Raw(convd.socket) as r:
            r.send(request(4, "add_message",
                           dict(base(user), content=nested_arrays(10000))))
            msgs = r.until_eof(10)
            assert [m[2]["code"] for m in msgs] == ["invalid_request"], msgs
        bystander.ping()
    assert convd.proc.poll() is None


def test_memory_stays_bounded(convd):
    """100 requests each of 10,000-deep nesting (connection closed), of
    1,000-deep content (invalid_params) and of 100,000 values (refused
    for its role after being read whole): convd's resident memory grows
    by less than 16 MiB over a warmed-up first round."""
    pid = convd.proc.pid
    user = uid()
    values, _ = content_100000()
    wide = dict(base(user), content=values, role=packb("nobody"))
    deep = dict(base(user), content=nested_arrays(1000))
    too_deep = dict(base(user), content=nested_arrays(10000))

    def round_(n):
        with Raw(convd.socket, timeout=30) as r:
            for i in range(n):
                m, _ = call_raw(r, i, "add_message", deep)
                assert_error(m, "invalid_params", i)
                m, _ = call_raw(r, i, "add_message", wide)
                assert_error(m, "invalid_params", i,
                             "role: must be one of user, assistant, "
                             "system, developer, tool")
        for i in range(n):
            with Raw(convd.socket) as r:
                r.send(request(i, "add_message", too_deep))
                assert len(r.until_eof(10)) == 1

    round_(5)
    before = vm_rss_kib(pid)
    round_(100)
    after = vm_rss_kib(pid)
    print(f"# convd VmRSS {before} KiB before, {after} KiB after 100 "
          f"requests of each kind")
    assert after - before < 16 * 1024, (before, after)
    with Raw(convd.socket) as r:
        r.ping()
