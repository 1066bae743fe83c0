"""Export pages are bounded by bytes as well as rows (issue 14, point 11).

A page never exceeds max_output_bytes: convd returns fewer rows instead
of result_too_large as long as one row fits, and `convctl export` pages
until an empty page, so it exports any history: here a user with 1,000
messages of 17 KB (17 MB, far over the 1 MiB max_output_bytes set here).
"""
import json

import msgpack
import pytest

import convdtest
from convdtest import Client, RpcError, scaled

N = 1000
SIZE = 17 * 1024


@pytest.fixture(scope="module")
def big(schema):
    # 1,000 messages of 17 KB each, made by PostgreSQL itself
    schema.psql(
        "INSERT INTO simple_conversation_history"
        " (user_id, platform, model_provider, role, content)"
        " SELECT 'big', 'line', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,"
        " 'user', lpad(i::text, 17408, 'x')"
        " FROM generate_series(1, 1000) AS i")
    return schema


def small(out):
    """[server] limits with max_output_bytes = out."""
    return {"max_output_bytes": out, "max_request_bytes": min(out, 65536),
            "max_content_bytes": min(out, 65536) // 2}


def recv_sized(c):
    """The next response and its size in bytes on the wire."""
    up = msgpack.Unpacker(raw=False, timestamp=3, max_buffer_size=1 << 30)
    while True:
        data = c.sock.recv(1 << 20)
        assert data, "closed"
        up.feed(data)
        try:
            m = up.unpack()
        except msgpack.OutOfData:
            continue
        return m, up.tell()


def test_pages_fit_max_output_bytes(big, convd_factory):
    limit = 1 << 20
    d = convd_factory(big, extra={"server": small(limit)})
    with Client(d.socket, timeout=scaled(30)) as c:
        after, got = 0, []
        while True:
            mid = c.request("export_history", {"user_id": "big",
                                               "after_id": after})
            m, size = recv_sized(c)
            assert m[1] == mid and m[2] is None, m
            assert size <= limit, size
            if not m[3]:
                break
            assert len(m[3]) < 1000      # bounded by bytes, not rows
            got += m[3]
            after = m[3][-1]["id"]
        assert len(got) == N
        assert [r["content"] for r in got] == \
            [str(i).rjust(SIZE, "x") for i in range(1, N + 1)]
        # a row larger than max_output_bytes on its own: result_too_large
    d2 = convd_factory(big, extra={"server": small(16384)})
    with Client(d2.socket) as c:
        with pytest.raises(RpcError) as e:
            c.call("export_history", user_id="big")
        assert e.value.code == "result_too_large"


def test_convctl_exports_any_history(big, convd_factory):
    d = convd_factory(big, extra={"server": small(1 << 20)})
    r = d.convctl("export", "big", check=True)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == N
    assert rows[0]["content"] == "1".rjust(SIZE, "x")
    assert rows[-1]["content"] == str(N).rjust(SIZE, "x")
    assert [x["id"] for x in rows] == sorted(x["id"] for x in rows)
    r = d.convctl("export", "big", "--provider", "b", check=True)
    assert len(r.stdout.splitlines()) == N // 2
