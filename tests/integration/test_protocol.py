"""The wire protocol, spoken over raw Unix sockets with python-msgpack only.

Nothing here uses convd's own client code: frames are built with
msgpack.packb (or by hand, byte by byte) exactly as a generic MessagePack-RPC
library in any language would, and replies are read with msgpack.Unpacker.
"""

import os
import random
import socket
import struct
import time

import msgpack
import pytest

import convdtest
from convdtest import Raw, scaled, uid

U32_MAX = 2 ** 32 - 1


def assert_error(msg, code, msgid):
    """msg is [1, msgid, {code, message}, nil]; msgid may be a tuple of the
    acceptable values."""
    assert isinstance(msg, list) and len(msg) == 4, msg
    assert msg[0] == 1, msg
    ok = msgid if isinstance(msgid, tuple) else (msgid,)
    assert msg[1] in ok, f"msgid {msg[1]!r} not in {ok!r}: {msg!r}"
    err = msg[2]
    assert isinstance(err, dict), msg
    assert err.get("code") == code, msg
    assert isinstance(err.get("message"), str) and err["message"], msg
    assert msg[3] is None, msg


@pytest.fixture
def raw(convd):
    with Raw(convd.socket) as r:
        yield r


# --------------------------------------------------------------- basics

def test_request_response_envelope(raw):
    raw.send(msgpack.packb([0, 1, "ping", []]))
    assert raw.recv() == [1, 1, None, "pong"]


@pytest.mark.parametrize("msgid", [0, 1, 127, 128, 255, 256, 65535, 65536,
                                   2 ** 31, U32_MAX])
def test_msgid_echoed_over_uint32_range(raw, msgid):
    raw.req(msgid, "ping")
    assert raw.recv() == [1, msgid, None, "pong"]


def test_unknown_method(raw):
    raw.req(5, "no_such_method_here", [])
    assert_error(raw.recv(), "no_such_method", 5)
    raw.req(6, "ping2", [])
    assert_error(raw.recv(), "no_such_method", 6)
    raw.req(7, "PING", [])
    assert_error(raw.recv(), "no_such_method", 7)
    raw.ping()


def test_notifications_never_answered(raw):
    # Separate writes: a known method, an unknown one, one whose params are
    # invalid, one with a bare map: none of them is answered.
    raw.send(msgpack.packb([2, "ping", []]))
    raw.send(msgpack.packb([2, "no_such_notification", [1, 2, 3]]))
    raw.send(msgpack.packb([2, "get_conversation_count", [{"bogus": 1}]]))
    raw.send(msgpack.packb([2, "ping", {}]))
    raw.req(77, "ping")
    assert raw.recv() == [1, 77, None, "pong"]
    # And all in one write, interleaved with requests.
    frames = b"".join([
        msgpack.packb([2, "ping", []]),
        msgpack.packb([0, 78, "ping", []]),
        msgpack.packb([2, "unknown.thing", []]),
        msgpack.packb([2, "ping", []]),
        msgpack.packb([0, 79, "ping", []]),
    ])
    raw.send(frames)
    assert raw.recv() == [1, 78, None, "pong"]
    assert raw.recv() == [1, 79, None, "pong"]
    assert raw.nothing_within(0.3)


# ------------------------------------------------------------ pipelining

def _mixed_requests(n, user, base=1):
    """n requests with deterministic replies: (frame, msgid, check)."""
    out = []
    for i in range(n):
        msgid = base + i
        k = i % 4
        if k == 0:
            frame = [0, msgid, "ping", []]
            check = lambda m, id_=msgid: m == [1, id_, None, "pong"]
        elif k == 1:
            frame = [0, msgid, "add_message",
                     [{"user_id": user, "provider": "anthropic",
                       "role": "user", "content": f"msg {i} \u4f60\u597d"}]]

            def check(m, id_=msgid):
                return (m[0] == 1 and m[1] == id_ and m[2] is None
                        and isinstance(m[3]["id"], int)
                        and isinstance(m[3]["created_at"], msgpack.Timestamp))
        elif k == 2:
            frame = [0, msgid, "no_such_method_x", []]

            def check(m, id_=msgid):
                return (m[1] == id_ and m[2]["code"] == "no_such_method"
                        and m[3] is None)
        else:
            frame = [0, msgid, "get_recent_conversations",
                     [{"user_id": user, "provider": "anthropic", "limit": 0}]]

            def check(m, id_=msgid):
                return (m[1] == id_ and m[2]["code"] == "invalid_params"
                        and m[3] is None)
        out.append((msgpack.packb(frame), msgid, check))
    return out


def _check_all(responses, reqs):
    by_id = {}
    for m in responses:
        assert isinstance(m, list) and len(m) == 4 and m[0] == 1, m
        assert m[1] not in by_id, f"two responses for msgid {m[1]}"
        by_id[m[1]] = m
    assert set(by_id) == {msgid for _, msgid, _ in reqs}
    for _, msgid, check in reqs:
        assert check(by_id[msgid]), by_id[msgid]


def _stored_contents(convd, user):
    with convdtest.Client(convd.socket) as c:
        rows = c.call("get_recent_conversations", user_id=user,
                      provider="anthropic", limit=1000)
    return sorted(r["content"] for r in rows)


def test_pipelining_many_requests_one_write(convd, raw):
    user = uid()
    reqs = _mixed_requests(400, user)
    raw.send(b"".join(f for f, _, _ in reqs))
    _check_all(raw.recv_n(len(reqs)), reqs)
    want = sorted(f"msg {i} \u4f60\u597d" for i in range(400) if i % 4 == 1)
    assert _stored_contents(convd, user) == want


def test_pipelining_two_clients_same_msgids(convd):
    # Two clients pipelining with the same msgids: each gets its own replies.
    users = [uid(), uid()]
    with Raw(convd.socket) as a, Raw(convd.socket) as b:
        ra = _mixed_requests(120, users[0])
        rb = _mixed_requests(120, users[1])
        a.send(b"".join(f for f, _, _ in ra))
        b.send(b"".join(f for f, _, _ in rb))
        _check_all(b.recv_n(len(rb)), rb)
        _check_all(a.recv_n(len(ra)), ra)
    for u in users:
        assert len(_stored_contents(convd, u)) == 30


def test_request_split_at_every_byte(convd, raw):
    user = uid()
    content = "split \u00e9\u4e2d\U0001f600 " * 3
    frame = msgpack.packb([0, 901, "add_message",
                           [{"user_id": user, "provider": "anthropic",
                             "role": "assistant", "content": content}]])
    for b in frame[:-1]:
        raw.send(bytes([b]))
        time.sleep(0.002)
    # Nothing may be answered before the frame is complete.
    assert raw.nothing_within(0.2)
    raw.send(frame[-1:])
    m = raw.recv()
    assert m[0] == 1 and m[1] == 901 and m[2] is None, m
    assert _stored_contents(convd, user) == [content]
    raw.ping()


def test_many_requests_random_splits(convd, raw):
    rng = random.Random(20261124)
    user = uid()
    reqs = _mixed_requests(200, user, base=5000)
    stream = b"".join(f for f, _, _ in reqs)
    pos = 0
    while pos < len(stream):
        n = rng.choice([1, 1, 2, 3, 5, 7, 13, 31, 64, 200, 1000])
        raw.send(stream[pos:pos + n])
        pos += n
        if rng.random() < 0.05:
            time.sleep(0.001)
    _check_all(raw.recv_n(len(reqs)), reqs)
    assert len(_stored_contents(convd, user)) == 50


def test_complete_requests_answered_before_a_trailing_partial(raw):
    frames = [msgpack.packb([0, i, "ping", []]) for i in range(1, 22)]
    last = frames[-1]
    raw.send(b"".join(frames[:-1]) + last[:3])
    got = raw.recv_n(20)
    assert sorted(m[1] for m in got) == list(range(1, 21))
    assert all(m == [1, m[1], None, "pong"] for m in got), got
    assert raw.nothing_within(0.2)
    raw.send(last[3:])
    assert raw.recv() == [1, 21, None, "pong"]


# ---------------------------------------------------------------- params

def test_params_named_positional_and_bare_map(raw):
    user = uid()
    # add_message three ways, then one with a positional platform.
    forms = [
        [{"user_id": user, "provider": "gemini", "role": "user",
          "content": "named"}],
        [user, "gemini", "assistant", "positional"],
        {"user_id": user, "provider": "gemini", "role": "user",
         "content": "bare map"},
    ]
    for i, params in enumerate(forms):
        raw.send(msgpack.packb([0, 100 + i, "add_message", params]))
        m = raw.recv()
        assert m[1] == 100 + i and m[2] is None, m
        assert isinstance(m[3]["id"], int), m
    raw.send(msgpack.packb([0, 110, "add_message",
                            [user, "gemini", "user", "on telegram",
                             "telegram"]]))
    m = raw.recv()
    assert m[2] is None, m

    # The count three ways (default platform "line": 3 messages).
    for i, params in enumerate([[{"user_id": user, "provider": "gemini"}],
                                [user, "gemini"],
                                {"user_id": user, "provider": "gemini"},
                                [{"user_id": user}],
                                [user]]):
        raw.send(msgpack.packb([0, 200 + i, "get_conversation_count",
                                params]))
        assert raw.recv() == [1, 200 + i, None, 3]
    # Positional platform after a positional provider.
    raw.send(msgpack.packb([0, 210, "get_conversation_count",
                            [user, "gemini", "telegram"]]))
    assert raw.recv() == [1, 210, None, 1]
    raw.send(msgpack.packb([0, 211, "get_recent_conversations",
                            [user, "gemini", 10, "line"]]))
    m = raw.recv()
    assert m[2] is None, m
    assert [r["content"] for r in m[3]] == ["named", "positional",
                                           "bare map"]
    # ping with no params, an empty named map, an empty bare map.
    for i, params in enumerate([[], [{}], {}]):
        raw.send(msgpack.packb([0, 300 + i, "ping", params]))
        assert raw.recv() == [1, 300 + i, None, "pong"]


# ------------------------------------------------------ invalid envelopes

ANY = "any"   # the msgid of the reply may be the request's or nil

INVALID_ENVELOPES = [
    ("str", "hello", None),
    ("int", 42, None),
    ("nil", None, None),
    ("map", {"type": 0, "msgid": 1}, None),
    ("empty array", [], None),
    ("three elements", [0, 11, "ping"], ANY),
    ("five elements", [0, 12, "ping", [], None], ANY),
    ("one element", [0], None),
    ("type 3", [3, 13, "ping", []], ANY),
    ("type -1", [-1, 14, "ping", []], ANY),
    ("type str", ["0", 15, "ping", []], ANY),
    ("type nil", [None, 16, "ping", []], ANY),
    ("msgid negative", [0, -1, "ping", []], None),
    ("msgid 2^32", [0, 2 ** 32, "ping", []], None),
    ("msgid 2^64-1", [0, 2 ** 64 - 1, "ping", []], None),
    ("msgid str", [0, "17", "ping", []], None),
    ("msgid nil", [0, None, "ping", []], None),
    ("msgid float", [0, 1.0, "ping", []], None),
    ("method int", [0, 18, 5, []], 18),
    ("method nil", [0, 19, None, []], 19),
    ("method array", [0, 20, ["ping"], []], 20),
    ("params str", [0, 21, "ping", "x"], 21),
    ("params int", [0, 22, "ping", 5], 22),
    ("params nil", [0, 23, "ping", None], 23),
    ("method empty", [0, 26, "", []], 26),
    ("method invalid utf-8", [0, 27, b"\xffping", []], 27),
    ("method with NUL", [0, 28, "pi\x00ng", []], 28),
    # Responses and notifications, malformed or not, are never answered:
    # test_rpc_spec.py.
]


def _pack_envelope(obj):
    # bytes in an envelope stand for a str holding those raw bytes
    if isinstance(obj, list) and any(isinstance(x, bytes) for x in obj):
        return convdtest.packb_raw(obj)
    return msgpack.packb(obj)


@pytest.mark.parametrize("name,obj,msgid", INVALID_ENVELOPES,
                         ids=[c[0] for c in INVALID_ENVELOPES])
def test_invalid_envelope(raw, name, obj, msgid):
    raw.send(_pack_envelope(obj))
    m = raw.recv()
    assert m is not None, "connection closed on a well-formed msgpack object"
    if msgid == ANY:
        want = (obj[1], None)
    else:
        want = msgid
    assert_error(m, "invalid_request", want)
    # The connection stays usable and nothing else was sent.
    raw.ping(msgid=4000)


def test_invalid_envelopes_pipelined_keep_connection(raw):
    frames = [_pack_envelope(o) for _, o, _ in INVALID_ENVELOPES]
    frames.insert(5, msgpack.packb([0, 5000, "ping", []]))
    frames.append(msgpack.packb([0, 5001, "ping", []]))
    raw.send(b"".join(frames))
    got = raw.recv_n(len(frames))
    pongs = [m for m in got if m[2] is None]
    assert sorted(m[1] for m in pongs) == [5000, 5001]
    errs = [m for m in got if m[2] is not None]
    assert len(errs) == len(INVALID_ENVELOPES)
    assert all(m[2]["code"] == "invalid_request" for m in errs), errs
    raw.ping()


# ----------------------------------------------- undecodable and oversized

@pytest.mark.parametrize("garbage", [
    b"\xc1",
    b"\xc1\xc1\xc1\xc1",
    b"\x94\x00\x01\xc1",
    b"\x94\x00\x01\xa4ping\x91\xc1",
    bytes([0xc1]) + os.urandom(64),
], ids=["c1", "c1x4", "c1-in-envelope", "c1-in-params", "c1-then-random"])
def test_undecodable_bytes_close_only_that_connection(convd, garbage):
    with Raw(convd.socket) as bystander, Raw(convd.socket) as bad:
        bystander.ping(1)
        # The bystander has a request half sent while the bad client fails.
        half = msgpack.packb([0, 2, "ping", []])
        bystander.send(half[:2])
        bad.ping(9)
        bad.send(garbage)
        msgs = bad.until_eof(5)
        assert len(msgs) == 1, msgs
        assert_error(msgs[0], "invalid_request", None)
        bystander.send(half[2:])
        assert bystander.recv() == [1, 2, None, "pong"]
        bystander.ping(3)
    with Raw(convd.socket) as again:
        again.ping()


def test_requests_before_bad_bytes_are_answered(convd):
    with Raw(convd.socket) as bad:
        bad.send(msgpack.packb([0, 1, "ping", []])
                 + msgpack.packb([0, 2, "get_thread", ["nobody-here"]])
                 + b"\xc1" + msgpack.packb([0, 3, "ping", []]))
        msgs = bad.until_eof(5)
        answers = {m[1]: m for m in msgs if m[1] is not None}
        assert answers == {1: [1, 1, None, "pong"], 2: [1, 2, None, None]}, \
            msgs
        errors = [m for m in msgs if m[1] is None]
        assert len(errors) == 1, msgs
        assert_error(errors[0], "invalid_request", None)


def test_half_close_gets_answers_then_eof(convd):
    user = uid()
    with Raw(convd.socket) as r:
        reqs = _mixed_requests(40, user)
        r.send(b"".join(f for f, _, _ in reqs))
        r.sock.shutdown(socket.SHUT_WR)
        msgs = r.until_eof(10)
        _check_all(msgs, reqs)


def test_truncated_frame_then_half_close(convd):
    with Raw(convd.socket) as bystander, Raw(convd.socket) as bad:
        bystander.ping(1)
        bad.send(b"\x94\x00\x01\xa4pi")
        bad.sock.shutdown(socket.SHUT_WR)
        msgs = bad.until_eof(5)
        for m in msgs:
            assert_error(m, "invalid_request", (1, None))
        bystander.ping(2)


def test_abrupt_disconnect_with_pending_requests(convd):
    # A client that pipelines work and vanishes does not disturb anyone.
    user = uid()
    with Raw(convd.socket) as bystander:
        for _ in range(5):
            with Raw(convd.socket) as gone:
                reqs = _mixed_requests(50, user)
                gone.send(b"".join(f for f, _, _ in reqs))
        bystander.ping(7)


def _str_header(n):
    if n < 32:
        return bytes([0xa0 | n])
    if n < 256:
        return b"\xd9" + bytes([n])
    if n < 65536:
        return b"\xda" + struct.pack(">H", n)
    return b"\xdb" + struct.pack(">I", n)


def _oversized_prefix(declared):
    """[0, 1, "add_message", ["u", "p", "user", <str of `declared` bytes>]]
    up to and including the last string's header: the body is never sent."""
    return (b"\x94\x00\x01" + msgpack.packb("add_message") + b"\x94"
            + msgpack.packb("u") + msgpack.packb("p") + msgpack.packb("user")
            + _str_header(declared))


def _assert_refused_promptly(path, prefix):
    """prefix (the start of a message, never completed) gets one
    invalid_request with a nil msgid, and the connection is closed at once,
    while another client goes on."""
    with Raw(path) as bystander, Raw(path) as big:
        t0 = time.monotonic()
        big.send(prefix)
        msgs = big.until_eof(3)
        elapsed = time.monotonic() - t0
        assert len(msgs) == 1, msgs
        assert_error(msgs[0], "invalid_request", None)
        assert elapsed < scaled(3)
        bystander.ping()


def test_oversized_frame_refused_after_header(convd):
    # A str32 declaring ~4 GiB: far above any max_request_bytes.
    _assert_refused_promptly(convd.socket, _oversized_prefix(U32_MAX))
    # A bin32 and an array32 declaring huge sizes likewise.
    _assert_refused_promptly(convd.socket,
                             b"\x94\x00\x01\xa4ping\x91\xc6\xff\xff\xff\xf0")
    _assert_refused_promptly(convd.socket, b"\xdd\xff\xff\xff\xff")


def test_max_request_bytes_limit(convd_factory, schema):
    d = convd_factory(schema, extra={"server": {"max_request_bytes": 4096,
                                                "max_content_bytes": 1000}})
    # A str declaring just past what fits in the frame: refused at once.
    _assert_refused_promptly(d.socket, _oversized_prefix(4096))
    _assert_refused_promptly(d.socket, _oversized_prefix(5000))
    # A frame within the limit is served (1000 bytes of content).
    with Raw(d.socket) as r:
        r.req(3, "add_message", [uid(), "p", "user", "x" * 1000])
        m = r.recv()
        assert m[1] == 3 and m[2] is None, m
        # A whole request just over the limit, sent in one write: the frame
        # size is checked before its params, and the connection is closed.
        big = msgpack.packb([0, 4, "add_message",
                             [{"user_id": "u" * 3200, "provider": "p",
                               "role": "user", "content": "y" * 990}]])
        assert len(big) > 4096
        r.send(big)
        msgs = r.until_eof(3)
        assert len(msgs) == 1, msgs
        assert_error(msgs[0], "invalid_request", None)
    with Raw(d.socket) as r:
        r.ping()


def nested(depth):
    """A request nested `depth` deep, the message counting as 1."""
    v = "deep"
    for _ in range(depth - 1):
        v = [v]
    return [0, 1, "ping", v]


# issue 17: a frame closes the connection only when it is not msgpack, is
# over max_request_bytes, or nests beyond the frame-level bound (1024);
# structured values deeper than 64, or of any number of values, are
# invalid_params (test_content_limits.py)
LIMIT_BREAKERS = [
    ("nesting-1025", b"\x94\x00\x01\xa4ping" + b"\x91" * 1023 + b"\x90"),
    ("nesting-10000", b"\x94\x00\x01\xa4ping" + b"\x91" * 9998 + b"\x90"),
]


@pytest.mark.parametrize("name,frame", LIMIT_BREAKERS,
                         ids=[x[0] for x in LIMIT_BREAKERS])
def test_structure_limits_close_the_connection(convd, name, frame):
    with Raw(convd.socket) as bystander, Raw(convd.socket) as r:
        r.send(frame)
        msgs = r.until_eof(5)
        assert len(msgs) == 1, msgs
        assert_error(msgs[0], "invalid_request", None)
        bystander.ping()


def test_structure_within_limits(raw):
    # Depth 67 and 1024 (the message counting as 1), 500 and 600
    # elements, 250 pairs, 9 arrays of 60: decoded, then refused by the
    # method's validation, and the connection stays.
    raw.send(msgpack.packb(nested(67)))
    assert_error(raw.recv(), "invalid_params", 1)
    raw.send(b"\x94\x00\x01\xa4ping" + b"\x91" * 1022 + b"\x90")
    assert_error(raw.recv(), "invalid_params", 1)
    raw.send(msgpack.packb([0, 2, "add_message", ["x"] * 500]))
    assert_error(raw.recv(), "invalid_params", 2)
    raw.send(msgpack.packb([0, 2, "add_message", ["x"] * 600]))
    assert_error(raw.recv(), "invalid_params", 2)
    raw.send(msgpack.packb([0, 3, "ping", [{f"k{i}": i
                                            for i in range(250)}]]))
    assert_error(raw.recv(), "invalid_params", 3)
    raw.send(msgpack.packb([0, 4, "add_message",
                            [[i for i in range(60)] for _ in range(9)]]))
    assert_error(raw.recv(), "invalid_params", 4)
    raw.ping()


def test_timestamp_wire_formats(schema, convd):
    """convd writes the smallest timestamp format that holds the value."""
    user = uid()
    schema.psql(
        "INSERT INTO simple_conversation_history (user_id, platform, "
        "model_provider, role, content, created_at) VALUES "
        f"('{user}', 'line', 'p', 'user', 'ts32', "
        "'2030-01-02 03:04:05+00'), "
        f"('{user}', 'line', 'p', 'user', 'ts64', "
        "'2030-01-02 03:04:06.123456+00'), "
        f"('{user}', 'line', 'p', 'user', 'ts96', "
        "'2600-01-01 00:00:00.5+00')")
    with Raw(convd.socket) as r:
        r.req(9, "get_recent_conversations", [user, "p"])
        data = b""
        while True:
            chunk = r.sock.recv(65536)
            assert chunk, "EOF"
            data += chunk
            try:
                m = msgpack.unpackb(data, timestamp=0, strict_map_key=False)
                break
            except (msgpack.ExtraData, ValueError):
                continue
    assert m[2] is None, m
    got = {x["content"]: x["created_at"] for x in m[3]}
    s32 = 1893553445            # 2030-01-02T03:04:05Z
    s600 = 19880899200          # 2600-01-01T00:00:00Z
    assert got["ts32"] == msgpack.Timestamp(s32, 0)
    assert got["ts64"] == msgpack.Timestamp(s32 + 1, 123456000)
    assert got["ts96"] == msgpack.Timestamp(s600, 500000000)
    assert b"\xd6\xff" + struct.pack(">I", s32) in data
    assert b"\xd7\xff" + struct.pack(">Q", (123456000 << 34) | (s32 + 1)) \
        in data
    assert b"\xc7\x0c\xff" + struct.pack(">Iq", 500000000, s600) in data


def test_client_that_does_not_read_is_disconnected(schema, convd_factory):
    """A client that pipelines without reading its answers is cut off once
    its queued output passes max_output_bytes; convd and its other clients
    carry on."""
    d = convd_factory(schema, extra={"server": {
        "max_request_bytes": 4096, "max_content_bytes": 1000,
        "max_output_bytes": 4096}})
    burst = b"".join(msgpack.packb([0, i, "ping", []]) for i in range(1000)) \
        + b"".join(msgpack.packb([0, i, "no_such_method", []])
                   for i in range(300))
    with Raw(d.socket) as bystander:
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bad.connect(d.socket)
        bad.settimeout(0.2)
        closed = False
        deadline = time.monotonic() + scaled(20)
        try:
            while not closed and time.monotonic() < deadline:
                try:
                    bad.sendall(burst)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                except socket.timeout:
                    pass    # our send buffer is full: keep pushing
            bystander.ping(1)
        finally:
            bad.close()
        assert closed, "a client that never reads was not disconnected"
        bystander.ping(2)
    assert d.proc.poll() is None, "convd died:\n" + d.log()
    with Raw(d.socket) as again:
        again.ping()


# ------------------------------------------------ generic client encodings

def test_old_style_raw_strings_and_bytes_method(convd):
    """As msgpack-rpc-python and other pre-2013 libraries: every string is
    the old raw type (no str8, no bin), the method name is raw bytes, and
    replies are read back as raw bytes."""
    user = uid().encode()
    with Raw(convd.socket, raw=True) as r:
        r.send(msgpack.packb([0, 1, b"add_message",
                              [user, b"ollama", b"user",
                               "caf\u00e9 \u2615".encode()]],
                             use_bin_type=False))
        m = r.recv()
        assert m[0] == 1 and m[1] == 1 and m[2] is None, m
        assert isinstance(m[3][b"id"], int)
        r.send(msgpack.packb([0, 2, b"get_recent_conversations",
                              [{b"user_id": user, b"provider": b"ollama"}]],
                             use_bin_type=False))
        m = r.recv()
        assert m[2] is None, m
        assert [x[b"content"] for x in m[3]] == ["caf\u00e9 \u2615".encode()]
        r.send(msgpack.packb([0, 3, b"ping", []], use_bin_type=False))
        assert r.recv() == [1, 3, None, b"pong"]


def test_non_minimal_encodings(raw):
    """Encoders that always use wide forms (array32, uint64 msgid, int64
    msgid, str32 method, map16 params) must be understood."""
    def str32(s):
        b = s.encode()
        return b"\xdb" + struct.pack(">I", len(b)) + b

    user = uid()
    frames = [
        # array32 envelope, uint64 msgid, str32 method, array16 params
        b"\xdd\x00\x00\x00\x04" + b"\x00" + b"\xcf" + struct.pack(">Q", 31)
        + str32("ping") + b"\xdc\x00\x00",
        # array16 envelope, int64 msgid, uint8 type code
        b"\xdc\x00\x04" + b"\xcc\x00" + b"\xd3" + struct.pack(">q", 32)
        + b"\xd9\x04ping" + b"\x90",
        # int8 type, uint32 msgid, map16 params with str32 keys and values
        b"\x94" + b"\xd0\x00" + b"\xce" + struct.pack(">I", 33)
        + str32("get_conversation_count") + b"\x91"
        + b"\xde\x00\x02" + str32("user_id") + str32(user)
        + str32("provider") + str32("gemini"),
        # uint16 msgid, fixmap params inside array32
        b"\x94\x00\xcd" + struct.pack(">H", 34) + b"\xa4ping"
        + b"\xdd\x00\x00\x00\x00",
    ]
    raw.send(b"".join(frames))
    got = {m[1]: m for m in raw.recv_n(4)}
    assert got[31] == [1, 31, None, "pong"]
    assert got[32] == [1, 32, None, "pong"]
    assert got[33] == [1, 33, None, 0]
    assert got[34] == [1, 34, None, "pong"]


def test_limit_as_various_int_encodings(raw):
    user = uid()
    for i in range(3):
        raw.req(i + 1, "add_message", [user, "anthropic", "user", f"m{i}"])
        assert raw.recv()[2] is None
    # limit=1 as positive fixint, uint64 and int16: the last 2 rows each time.
    for k, enc in enumerate([b"\x01", b"\xcf" + struct.pack(">Q", 1),
                             b"\xd1" + struct.pack(">h", 1)]):
        frame = (b"\x94\x00" + bytes([50 + k])
                 + msgpack.packb("get_recent_conversations") + b"\x93"
                 + msgpack.packb(user) + msgpack.packb("anthropic") + enc)
        raw.send(frame)
        m = raw.recv()
        assert m[2] is None, m
        assert [r["content"] for r in m[3]] == ["m1", "m2"]
