"""Idempotency keys on add_message and import_message (issue 14, point 6).

A second call with the same key for the same user and platform stores
nothing and answers the first call's {id, created_at} with duplicate: true,
whether the two calls are far apart, pipelined into one batch, or sent on
different connections at once.  Real convd, real PostgreSQL.
"""
import json
import threading

import msgpack
import pytest

import convdtest
from convdtest import Client, RpcError, scaled


def count(pg, user, platform="line"):
    return int(pg.psql("SELECT count(*) FROM simple_conversation_history "
                       f"WHERE user_id = {convdtest.sql_literal(user)} "
                       f"AND platform = {convdtest.sql_literal(platform)}"))


def pipeline(c, frames):
    """Sends the frames at once; {msgid: result} (no error allowed)."""
    c.send_raw(b"".join(frames))
    got = {}
    for _ in frames:
        m = c.recv()
        assert m[2] is None, m
        got[m[1]] = m[3]
    return got


def test_second_add_with_key_stores_nothing(convd, schema):
    with convd.client() as c:
        first = c.call("add_message", user_id="k1", provider="openai",
                       role="user", content="hello",
                       idempotency_key="webhook-1")
        assert "duplicate" not in first or first["duplicate"] is False
        again = c.call("add_message", user_id="k1", provider="openai",
                       role="user", content="hello (redelivered)",
                       idempotency_key="webhook-1")
        assert again["duplicate"] is True
        assert again["id"] == first["id"]
        assert again["created_at"] == first["created_at"]
        # positional: the key comes after platform
        pos = c.call("add_message", "k1", "openai", "user", "hello",
                     "line", "webhook-1")
        assert pos["duplicate"] is True and pos["id"] == first["id"]
        # the same key is another message for another platform or user
        other = c.call("add_message", "k1", "openai", "user", "hi", "slack",
                       "webhook-1")
        assert "duplicate" not in other and other["id"] != first["id"]
        other = c.call("add_message", "k2", "openai", "user", "hi", "line",
                       "webhook-1")
        assert "duplicate" not in other
        # without a key, nothing is deduplicated
        c.call("add_message", "k1", "openai", "user", "hello")
        c.call("add_message", "k1", "openai", "user", "hello")
    assert count(schema, "k1") == 3
    assert schema.psql("SELECT content FROM simple_conversation_history "
                       "WHERE idempotency_key = 'webhook-1' AND user_id = 'k1'"
                       " AND platform = 'line'") == "hello"


@pytest.mark.parametrize("key", ["", "x" * 256, "a\x00b", b"\xff\xfe"])
def test_invalid_keys_refused(convd, key):
    with convd.client() as c:
        if isinstance(key, bytes):
            c.send_raw(convdtest.packb_raw(
                [0, 9, "add_message", ["k3", "openai", "user", "x", "line",
                                       key]]))
            m = c.recv()
            assert m[1] == 9 and m[2]["code"] == "invalid_params", m
            return
        with pytest.raises(RpcError) as e:
            c.call("add_message", user_id="k3", provider="openai",
                   role="user", content="x", idempotency_key=key)
        assert e.value.code == "invalid_params"
        assert "idempotency_key" in e.value.message
    c2 = Client(convd.socket)
    c2.call("add_message", "k3", "openai", "user", "x", "line", "x" * 255)
    c2.close()


def test_pipelined_duplicates_in_one_batch(convd, schema):
    """Every key twice in one pipeline (so in the same or in concurrent
    batches): each stored once; both answers carry the same id."""
    n = 300
    with convd.client() as c:
        frames = []
        for i in range(n):
            for _ in range(2):
                frames.append(msgpack.packb(
                    [0, len(frames), "add_message",
                     [{"user_id": f"pd{i % 7}", "provider": "p",
                       "role": "user", "content": f"m{i}",
                       "idempotency_key": f"key-{i}"}]]))
        got = pipeline(c, frames)
    for i in range(n):
        a, b = got[2 * i], got[2 * i + 1]
        assert a["id"] == b["id"] and a["created_at"] == b["created_at"]
        assert [bool(a.get("duplicate")), bool(b.get("duplicate"))] == \
            [False, True], (a, b)
    total = sum(count(schema, f"pd{u}") for u in range(7))
    assert total == n


def test_concurrent_connections_same_keys(convd, schema):
    """Four connections send the same 100 keys at once: 100 rows, and
    every answer for a key names that row."""
    results = [None] * 4

    def worker(k):
        with Client(convd.socket, timeout=scaled(30)) as c:
            frames = [msgpack.packb([0, i, "add_message",
                                     ["cc", "p", "user", f"m{i}", "line",
                                      f"cc-{i}"]]) for i in range(100)]
            results[k] = pipeline(c, frames)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(results), "a worker failed"
    assert count(schema, "cc") == 100
    for i in range(100):
        ids = {results[k][i]["id"] for k in range(4)}
        assert len(ids) == 1, (i, [results[k][i] for k in range(4)])
        fresh = [k for k in range(4) if not results[k][i].get("duplicate")]
        assert len(fresh) == 1, (i, [results[k][i] for k in range(4)])


def test_import_message_with_key(convd, schema):
    with convd.client() as c:
        a = c.call("import_message", user_id="im", provider="p", role="user",
                   content="old", created_at=1_600_000_000_000_000,
                   idempotency_key="imp-1")
        assert a["imported"] is True and "duplicate" not in a
        # another content, same key: not stored
        b = c.call("import_message", "im", "p", "user", "changed",
                   1_600_000_000_000_001, "line", "imp-1")
        assert b == {"id": a["id"], "imported": False, "duplicate": True}
        # add_message shares the keys of imported messages
        d = c.call("add_message", user_id="im", provider="p", role="user",
                   content="x", idempotency_key="imp-1")
        assert d["duplicate"] is True and d["id"] == a["id"]
        # without a key: an equal row is skipped, as before
        e = c.call("import_message", "im", "p", "user", "old",
                   1_600_000_000_000_000)
        assert e == {"id": a["id"], "imported": False}
        f = c.call("import_message", "im", "p", "user", "other",
                   1_600_000_000_000_000)
        assert f["imported"] is True
    assert count(schema, "im") == 2


def test_convctl_export_import_keeps_keys(convd, schema, pg_factory,
                                          convd_factory):
    with convd.client() as c:
        c.call("add_message", user_id="ex", provider="p", role="user",
               content="with key", idempotency_key="ek-1")
        c.call("add_message", user_id="ex", provider="p", role="assistant",
               content="without key")
    out = convd.convctl("export", "ex", check=True).stdout
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0]["idempotency_key"] == "ek-1"
    assert "idempotency_key" not in lines[1]
    # into another database: stored once however often it is imported
    pg2 = pg_factory()
    d2 = convd_factory(pg2)
    for _ in range(2):
        r = d2.convctl("import", "--json", input=out, check=True)
    assert json.loads(r.stdout) == {"imported": 0, "skipped": 2}
    assert count(pg2, "ex") == 2
    # a line with the key of a stored message but other content: skipped
    line = dict(lines[0], content="other", created_at="2020-01-01T00:00:00Z")
    r = d2.convctl("import", "--json", input=json.dumps(line) + "\n",
                   check=True)
    assert json.loads(r.stdout) == {"imported": 0, "skipped": 1}
    assert pg2.psql("SELECT content FROM simple_conversation_history "
                    "WHERE idempotency_key = 'ek-1'") == "with key"


def test_convd_requires_the_key_revision(pg_factory, convd_factory):
    """A database one revision short: convd serves nothing that needs it
    and says how to fix it."""
    pg2 = pg_factory()
    cfg = convdtest.write_config(pg2.tmp + "/down.conf", {
        "database": {"host": pg2.sockdir, "port": pg2.port,
                     "name": pg2.dbname, "user": pg2.user},
        "migrations": {"directory": convdtest.MIGRATIONS},
    })
    r = convdtest.convctl("db", "downgrade", "b8e15d6c0a93",
                          "--allow-destructive", config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    d = convd_factory(pg2, wait=False)
    convdtest.wait_until(
        lambda: Client(d.socket).call("health")["schema"] == "outdated",
        timeout=scaled(15), what="the schema check")
    with Client(d.socket) as c:
        with pytest.raises(RpcError) as e:
            c.call("add_message", "u", "p", "user", "x")
        assert e.value.code == "unavailable"
        assert "7c3d9e1a2b45" in e.value.message or \
            "upgrade" in e.value.message


def test_convd_verifies_the_key_index(pg_factory, convd_factory):
    """The revision is recorded but its unique index is gone (dropped by
    hand): convd refuses the schema (keys would not be enforced) and
    says what is missing."""
    pg2 = pg_factory()
    pg2.psql("DROP INDEX simple_conversation_history_idempotency_key_idx")
    d = convd_factory(pg2, wait=False)
    h = convdtest.wait_until(
        lambda: (lambda h: h if h["schema"] == "mismatch" else None)(
            Client(d.socket).call("health")),
        timeout=scaled(15), what="the schema check")
    assert "idempotency_key_idx" in h["message"], h
    with Client(d.socket) as c:
        with pytest.raises(RpcError) as e:
            c.call("add_message", "u", "p", "user", "x", "line", "k")
        assert e.value.code == "unavailable"
