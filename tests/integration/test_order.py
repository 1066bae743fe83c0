"""Messages of one conversation are stored in the order convd received
them (issue 14, point 5): for each (user, platform, provider), ids and
created_at follow arrival order whatever the batching, the batches in
flight and the other clients, and reads return that order.

Eight connections pipeline hundreds of add_message calls each (two
providers per user, and two connections sharing a user on different
platforms) while eight more keep convd's write batches busy; then every
conversation is checked: ids and created_at rise in send order, and
get_recent_conversations and export_history return that order.
"""
import threading

import msgpack

import convdtest
from convdtest import Client, scaled

PER_CONN = 400
WRITERS = 8
LOADERS = 8


def pipeline_adds(path, user, platform, n, tag, results, k):
    with Client(path, timeout=scaled(60)) as c:
        frames = [msgpack.packb(
            [0, i, "add_message",
             [user, "p%d" % (i % 2), "user" if i % 4 < 2 else "assistant",
              f"{tag} {i}", platform]]) for i in range(n)]
        # in a few writes, so that reads and batches interleave
        for j in range(0, n, 50):
            c.send_raw(b"".join(frames[j:j + 50]))
        got = {}
        for _ in range(n):
            m = c.recv()
            assert m is not None and m[2] is None, m
            got[m[1]] = m[3]
        results[k] = got


def load(path, stop, k):
    with Client(path, timeout=scaled(60)) as c:
        while not stop.is_set():
            frames = [msgpack.packb([0, j, "add_message",
                                     [f"load{k}-{j % 5}", "p", "user",
                                      "x"]]) for j in range(64)]
            c.send_raw(b"".join(frames))
            for _ in range(64):
                m = c.recv()
                assert m[2] is None, m


def test_arrival_order_under_concurrent_load(schema, convd_factory):
    d = convd_factory(schema, extra={"pool": {"size": 4,
                                              "max_overflow": 4}})
    stop = threading.Event()
    loaders = [threading.Thread(target=load, args=(d.socket, stop, k))
               for k in range(LOADERS)]
    for t in loaders:
        t.start()
    results = [None] * WRITERS
    # writers 0 and 1 share a user (other platforms): other conversations
    convs = [("ord0", "line"), ("ord0", "slack")] + \
        [(f"ord{k}", "line") for k in range(2, WRITERS)]
    writers = [threading.Thread(target=pipeline_adds,
                                args=(d.socket, u, pf, PER_CONN, f"w{k}",
                                      results, k))
               for k, (u, pf) in enumerate(convs)]
    try:
        for t in writers:
            t.start()
        for t in writers:
            t.join(timeout=scaled(120))
    finally:
        stop.set()
        for t in loaders:
            t.join(timeout=scaled(60))
    assert all(r is not None for r in results), "a writer failed"

    inversions = []
    for k, (user, platform) in enumerate(convs):
        got = results[k]
        for prov in (0, 1):
            seq = [got[i] for i in range(PER_CONN) if i % 2 == prov]
            for a, b in zip(seq, seq[1:]):
                if not (a["id"] < b["id"] and
                        convdtest.ts_usec(a["created_at"]) <=
                        convdtest.ts_usec(b["created_at"])):
                    inversions.append((user, platform, prov, a, b))
    assert not inversions, f"{len(inversions)} inversions: {inversions[:5]}"

    with Client(d.socket, timeout=scaled(30)) as c:
        for k, (user, platform) in enumerate(convs):
            for prov in (0, 1):
                want = [f"w{k} {i}" for i in range(PER_CONN)
                        if i % 2 == prov]
                recent = c.call("get_recent_conversations", user_id=user,
                                provider=f"p{prov}", limit=1000,
                                platform=platform)
                assert [m["content"] for m in recent] == want
                page = c.call("export_history", user_id=user,
                              provider=f"p{prov}", platform=platform)
                assert [m["content"] for m in page] == want
    # the database agrees: created_at order is id order
    bad = schema.psql(
        "SELECT count(*) FROM (SELECT id, lag(id) OVER w AS prev"
        " FROM simple_conversation_history"
        " WHERE user_id LIKE 'ord%'"
        " WINDOW w AS (PARTITION BY user_id, platform, model_provider"
        " ORDER BY created_at, id)) s WHERE prev > id")
    assert bad == "0"
