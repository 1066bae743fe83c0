"""list_conversations pages that hold still (issue 17, audit item 2),
through the real convd and PostgreSQL.

A walk (a first page, then the `next` cursors) ranks the messages that
existed when its first page was read: every conversation that existed
then is listed exactly once, whatever is written meanwhile.  The cursor
carries the walk's bound; a cursor convd did not make is invalid_params,
never an SQL error or other rows."""

import random
import threading
import time

import pytest

import convdtest
from convdtest import RpcError, uid


def walk(client, limit, first=None, each=None, **args):
    """Every page of one walk: (conversations in order, number of pages).
    first: called after the first page, each: after every page (to write
    between pages)."""
    seen, after, pages = [], None, 0
    while True:
        a = dict(args, limit=limit)
        if after is not None:
            a["after"] = after
        page = client.call("list_conversations", **a)
        pages += 1
        assert len(page["conversations"]) <= limit
        seen += page["conversations"]
        after = page["next"]
        if pages == 1 and first:
            first()
        if each:
            each()
        if after is None:
            return seen, pages


def names(convs):
    return [c.get("conversation_id") for c in convs]


def test_message_between_pages_skips_nothing(client):
    """The audit's reproducer: c0..c4, page 1 of 2 is [c4, c3], then c0
    gets a message: the rest of the walk still lists c2, c1, c0."""
    u = uid()
    for i in range(5):
        client.call("add_message", user_id=u, provider="openai", role="user",
                    content=f"m{i}", conversation_id=f"c{i}")

    def write():
        client.call("add_message", user_id=u, provider="openai",
                    role="user", content="late", conversation_id="c0")
        client.call("add_message", user_id=u, provider="openai",
                    role="user", content="new", conversation_id="c5")

    seen, pages = walk(client, 2, first=write, user_id=u)
    assert pages == 3
    assert names(seen) == ["c4", "c3", "c2", "c1", "c0"]
    # as of the first page: c0's late message is not counted in this walk
    assert seen[-1]["message_count"] == 1
    assert seen[-1]["last_message_at"] == seen[-1]["first_message_at"]
    # a new walk sees both writes: c0 first, then c5, each listed once
    again, _ = walk(client, 2, user_id=u)
    assert names(again) == ["c5", "c0", "c4", "c3", "c2", "c1"]
    assert again[1]["message_count"] == 2


def test_first_page_and_provider_filter_unchanged(client):
    """The first page is what it was: every message counted; a provider
    filter walks that provider's conversations only."""
    u = uid()
    for i in range(4):
        for p in ("openai", "anthropic"):
            client.call("add_message", user_id=u, provider=p, role="user",
                        content=f"{p}{i}", conversation_id=f"k{i}")
    client.call("add_message", user_id=u, provider="openai", role="user",
                content="x", conversation_id="k1")
    page = client.call("list_conversations", user_id=u, limit=3)
    assert [(c["provider"], c["conversation_id"], c["message_count"])
            for c in page["conversations"]] == \
        [("openai", "k1", 2), ("anthropic", "k3", 1), ("openai", "k3", 1)]
    only, _ = walk(client, 1, user_id=u, provider="anthropic")
    assert [(c["provider"], c["conversation_id"]) for c in only] == \
        [("anthropic", f"k{i}") for i in (3, 2, 1, 0)]


FORGED = [
    "garbage", "1.2.3", "0.1.6f70656e6169.6331",
    "-1.1.6f70656e6169.6331", "01.1.6f70656e6169.6331",
    "1.01.6f70656e6169.6331", "1.1.6f70656e616.6331",
    "1.1.6F70656E6169.6331", "1.1.6f70656e6169.00", "1.1.ff.6331",
    "1.1.6f70656e6169.6331.", "1.1..6331", "..", "...",
    "99999999999999999999.1.6f70656e6169.6331",
    "1.99999999999999999999.6f70656e6169.6331",
    "1.-9223372036854775808.6f70656e6169.6331",
    "1.-210866803200000001.6f70656e6169.6331",
    "1.1." + "61" * 51 + ".6331", "1.1.61." + "61" * 256,
]


def test_forged_cursor_is_invalid_params(client):
    """A cursor convd did not make: invalid_params, and the connection
    goes on."""
    u = uid()
    client.call("add_message", user_id=u, provider="openai", role="user",
                content="m", conversation_id="c")
    for after in FORGED:
        with pytest.raises(RpcError) as e:
            client.call("list_conversations", user_id=u, after=after)
        assert e.value.code == "invalid_params", after
    assert len(client.call("list_conversations",
                           user_id=u)["conversations"]) == 1


def test_cursor_edges_are_answered(client):
    """Well-formed cursors at the edges of their ranges: an answer, never
    an SQL error."""
    u = uid()
    first = client.call("add_message", user_id=u, provider="openai",
                        role="user", content="m", conversation_id="c")
    for after in ("9223372036854775807.9223372036854775807.61.",
                  "1.-210866803200000000.61.62",
                  # a cursor of convd before the bound: ranks everything
                  "9223372036854775807.61.",
                  "1.9223372036854775807." + "61" * 50 + "." + "62" * 255):
        page = client.call("list_conversations", user_id=u, after=after)
        assert page["next"] is None
        assert len(page["conversations"]) <= 1
    # the largest bound ranks every message: c is below that cursor
    page = client.call("list_conversations", user_id=u,
                       after="9223372036854775807.9223372036854775807.61.")
    assert names(page["conversations"]) == ["c"]
    # a bound below the user's messages ranks none of them
    for bound in (1, first["id"] - 1):
        if bound < 1:
            continue
        page = client.call("list_conversations", user_id=u,
                           after=f"{bound}.9223372036854775807.61.")
        assert page["conversations"] == []
    page = client.call("list_conversations", user_id=u,
                       after=f"{first['id']}.9223372036854775807.61.")
    assert names(page["conversations"]) == ["c"]


def test_concurrent_writer_reader_pages_200(convd):
    """200 conversations; a writer adds messages to random ones and
    begins new ones while a reader walks with limit 7, again and again:
    each walk lists the 200 exactly once."""
    u = uid()
    convs = [f"conv_{i:03d}" for i in range(200)]
    with convd.client() as c:
        for i, cv in enumerate(convs):
            c.call("add_message", user_id=u,
                   provider=("openai", "anthropic")[i % 2], role="user",
                   content=f"first {i}", conversation_id=cv)
    stop = threading.Event()
    wrote = {"messages": 0, "new": 0}
    failed = []

    def writer():
        rnd = random.Random(17)
        try:
            with convd.client() as w:
                while not stop.is_set():
                    if rnd.random() < 0.2:
                        w.call("add_message", user_id=u, provider="openai",
                               role="user", content="new",
                               conversation_id=f"new_{wrote['new']}")
                        wrote["new"] += 1
                    else:
                        i = rnd.randrange(200)
                        w.call("add_message", user_id=u,
                               provider=("openai", "anthropic")[i % 2],
                               role="assistant", content="more",
                               conversation_id=convs[i])
                        wrote["messages"] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            failed.append(e)

    def written():
        """Waits until the writer wrote again (so writes fall between
        every two pages)."""
        n = sum(wrote.values())
        deadline = time.monotonic() + convdtest.scaled(10)
        while sum(wrote.values()) <= n and not failed:
            assert time.monotonic() < deadline, "the writer is stuck"
            time.sleep(0.001)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with convd.client() as r:
            for _ in range(4):
                # new_0 .. new_{before-1} existed when the walk began;
                # new_{after} .. were begun after its first page
                before = wrote["new"]
                mark = {}
                seen, pages = walk(
                    r, 7, each=written, user_id=u,
                    first=lambda: mark.setdefault("after", wrote["new"]))
                keys = [(c["provider"], c["conversation_id"]) for c in seen]
                assert len(keys) == len(set(keys)), "a conversation repeated"
                listed = {k[1] for k in keys}
                assert sorted(k for k in listed if k.startswith("conv_")) \
                    == convs, "a conversation missing"
                new = {int(k[4:]) for k in listed if k.startswith("new_")}
                assert set(range(before)) <= new
                assert all(k < mark["after"] for k in new)
                assert pages == (200 + len(new) + 6) // 7
    finally:
        stop.set()
        t.join()
    assert not failed, failed
    assert wrote["new"] > 0 and wrote["messages"] > 0
