"""The msgpack-rpc spec as other people's clients read it (issue 14,
points 1-3), on raw sockets against the real convd.

- A notification is never answered, however malformed; nor is a
  response (convd sends no requests): answering either is how two peers
  echo errors at each other forever.
- Method names may be msgpack bin as well as str.
- Every error carries the request's msgid whenever it can be read, also
  the refusals of a whole connection (overloaded, permission_denied),
  which answer the first request before the connection ends, without a
  reset.  A nil msgid is left for what cannot be decoded.
"""
import socket
import time

import msgpack
import pytest

import convdtest
from convdtest import Client, scaled


MALFORMED_UNANSWERED = [
    [2, b"nvim_set_client_info", ["client", {}, "remote", {}, {}]],  # bin
    [2, "no_such_notification", [1, 2, 3]],
    [2, "ping"],                        # two elements
    [2, "ping", [], 1],                 # four elements
    [2, 5, []],                         # method int
    [2, "ping", "x"],                   # params str
    [2, b"", []],                       # empty bin method
    [1, None, "an error", None],        # a response with a nil msgid
    [1, 0, "Received invalid message", None],   # pynvim's answer to one
    [1, 24, None, "pong"],
    [1, 25, {"code": "x", "message": "y"}, None],
    [1, 26],                            # malformed response
]


def test_notifications_and_responses_never_answered(convd):
    with convd.client() as c:
        c.send_raw(b"".join(msgpack.packb(m, use_bin_type=True)
                            for m in MALFORMED_UNANSWERED))
        c.send_raw(msgpack.packb([0, 4242, "ping", []]))
        # the first thing convd sends is the pong: nothing else answered
        assert c.recv() == [1, 4242, None, "pong"]
        c.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv()


def test_no_echo_loop_with_a_peer_that_answers_errors(convd):
    """A peer that answers every unexpected message with an error (as
    pynvim does) exchanges nothing more with convd."""
    with convd.client() as c:
        c.send_raw(msgpack.packb([2, b"nvim_set_client_info", []],
                                 use_bin_type=True))
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c.recv()
        c.sock.settimeout(10)
        before = c.call("stats")
        for _ in range(20):
            assert c.call("ping") == "pong"
        after = c.call("stats")
    # nothing grew behind our back while we only pinged
    assert before["protocol_errors"] == after["protocol_errors"], \
        (before["protocol_errors"], after["protocol_errors"])


@pytest.mark.parametrize("method", [b"ping", "ping"])
def test_method_name_bin_or_str(convd, method):
    with convd.client() as c:
        c.send_raw(msgpack.packb([0, 77, method, []], use_bin_type=True))
        assert c.recv() == [1, 77, None, "pong"]
        c.send_raw(msgpack.packb(
            [0, 78, b"get_conversation_count", ["bin-user"]],
            use_bin_type=True))
        assert c.recv() == [1, 78, None, 0]
        c.send_raw(msgpack.packb([0, 79, b"no_such", []],
                                 use_bin_type=True))
        m = c.recv()
        assert m[1] == 79 and m[2]["code"] == "no_such_method", m


@pytest.mark.parametrize("obj", [
    [3, 13, "ping", []],                # unknown type, request's shape
    [-1, 14, "ping", []],
    [0, 15, "ping", "x"],               # params str
    [0, 16, 5, []],                     # method int
    [0, 17, "ping"],                    # three elements
])
def test_errors_carry_a_readable_msgid(convd, obj):
    with convd.client() as c:
        c.send_raw(msgpack.packb(obj))
        m = c.recv()
        want = obj[1]
        if len(obj) != 4:
            assert m[1] in (want, None), m  # no request's shape
        else:
            assert m[1] == want, m
        assert m[2]["code"] == "invalid_request", m


def _refused(path, send, then_more=b""):
    """Connects, sends `send`, returns (messages until EOF).  Fails on a
    connection reset."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(scaled(10))
    s.connect(path)
    if send:
        s.sendall(send)
    if then_more:
        time.sleep(0.1)
        try:
            s.sendall(then_more)
        except (BrokenPipeError, ConnectionResetError):
            pass
    up = msgpack.Unpacker(raw=False)
    out = []
    while True:
        data = s.recv(65536)        # a reset raises ConnectionResetError
        if not data:
            break
        up.feed(data)
        out.extend(up)
    s.close()
    return out


def test_overloaded_answers_the_first_request_with_its_msgid(
        schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"max_clients": 1}})
    c1 = convdtest.wait_until(lambda: Client(d.socket), timeout=scaled(10))
    try:
        assert c1.call("ping") == "pong"
        got = _refused(d.socket, msgpack.packb([0, 31337, "ping", []]),
                       then_more=msgpack.packb([0, 31338, "ping", []]))
        assert len(got) == 1, got
        assert got[0][0] == 1 and got[0][1] == 31337, got
        assert got[0][2]["code"] == "overloaded", got
        # pipelined requests sent together are each answered
        got = _refused(d.socket, b"".join(
            msgpack.packb([0, i, "ping", []]) for i in (5, 6, 7)))
        assert [m[1] for m in got] == [5, 6, 7], got
        assert all(m[2]["code"] == "overloaded" for m in got), got
        # a notification first is not answered; the request after it is
        got = _refused(d.socket, msgpack.packb([2, "ping", []]) +
                       msgpack.packb([0, 8, "ping", []]))
        assert [m[1] for m in got] == [8], got
        # a client that sends nothing gets the refusal with a nil msgid
        t0 = time.monotonic()
        got = _refused(d.socket, b"")
        assert len(got) == 1 and got[0][1] is None, got
        assert got[0][2]["code"] == "overloaded", got
        assert time.monotonic() - t0 < scaled(6)
        assert c1.call("ping") == "pong"
        assert c1.call("stats")["clients"]["connected"] == 1
    finally:
        c1.close()


def test_permission_denied_answers_with_the_msgid(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"allow_users": "nobody"}},
                      wait=False)
    convdtest.wait_until(lambda: __import__("os").path.exists(d.socket),
                         timeout=scaled(15), what="the socket")
    got = convdtest.wait_until(
        lambda: _refused(d.socket, msgpack.packb([0, 4711, "ping", []])),
        timeout=scaled(10))
    assert len(got) == 1 and got[0][1] == 4711, got
    assert got[0][2]["code"] == "permission_denied", got
