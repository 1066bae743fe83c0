"""The Python client (convd_client.ConversationManager) when connections
break and convd restarts (issue 14, points 7, 9 and 10): every add_message
carries an idempotency key (a fresh one unless the caller gives one), a
call whose connection broke is sent again when that is safe, and under
SIGTERM and SIGKILL restarts no call fails, nothing acknowledged is lost
and nothing is stored twice.  Against the real convd and PostgreSQL."""

import signal
import sys
import threading

import pytest

import convdtest
from convdtest import DroppingProxy, sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (ConvdConnectionError,  # noqa: E402
                          ConversationManager)

HIST = "simple_conversation_history"


def stored(pg, user):
    """(content, idempotency_key) of the user's rows, in id order."""
    out = pg.psql(f"SELECT content || '|' || coalesce(idempotency_key, '') "
                  f"FROM {HIST} WHERE user_id = {q(user)} ORDER BY id")
    return [tuple(line.split("|", 1)) for line in out.splitlines()]


@pytest.fixture
def proxy(convd, tmp_path):
    """make(method, drops) -> a DroppingProxy in front of convd."""
    made = []

    def make(method, drops=1):
        p = DroppingProxy(convd.socket, str(tmp_path / f"proxy{len(made)}"),
                          method, drops)
        made.append(p.__enter__())
        return p
    yield make
    for p in made:
        p.__exit__()


def test_every_add_has_a_fresh_key(convd, pg):
    m = ConversationManager(convd.socket)
    user = uid()
    for i in range(3):
        assert m.add_message(user, "anthropic", "user", f"m{i}") is True
    rows = stored(pg, user)
    assert [c for c, _ in rows] == ["m0", "m1", "m2"]
    keys = [k for _, k in rows]
    assert all(keys) and len(set(keys)) == 3, keys
    m.close()


def test_caller_key_stores_once(convd, pg):
    """LINE redelivers a webhook: the same webhookEventId is stored once,
    and the second call succeeds as the first did."""
    m = ConversationManager(convd.socket)
    user = uid()
    event = "01FZ74A0TDDPYRVKNK77XKC3ZR"
    assert m.add_message(user, "gemini", "user", "hi", idempotency_key=event)
    assert m.add_message(user, "gemini", "user", "hi", idempotency_key=event)
    assert stored(pg, user) == [("hi", event)]
    # another platform is another key space
    assert m.add_message(user, "gemini", "user", "hi", platform="slack",
                         idempotency_key=event)
    assert m.get_conversation_count(user, platform="slack") == 1
    first = m.call("add_message", user_id=user, provider="gemini",
                   role="user", content="x", idempotency_key="k-2")
    again = m.call("add_message", user_id=user, provider="gemini",
                   role="user", content="x", idempotency_key="k-2")
    assert not first.get("duplicate")
    assert again["duplicate"] is True and again["id"] == first["id"]
    m.close()


def test_add_retried_after_broken_connection(convd, pg, proxy):
    """convd stored the message but the connection broke before its
    answer: the client sends it again with the same key, convd stores
    nothing more, and the call succeeds."""
    p = proxy("add_message", drops=1)
    m = ConversationManager(p.path)
    user = uid()
    assert m.add_message(user, "anthropic", "user", "only once") is True
    assert p.dropped == 1 and p.seen["add_message"] == 2
    rows = stored(pg, user)
    assert len(rows) == 1 and rows[0][0] == "only once", rows
    # the caller's own key is what is resent
    p.drops = 1
    assert m.add_message(user, "anthropic", "assistant", "mine",
                         idempotency_key="evt-7") is True
    assert p.dropped == 2
    assert stored(pg, user)[1:] == [("mine", "evt-7")]
    m.close()


def test_unkeyed_write_not_resent(convd, pg, proxy):
    """A write that may have run and cannot be recognised (no key) is not
    sent again: the caller gets `closed`."""
    p = proxy("add_message", drops=1)
    m = ConversationManager(p.path)
    user = uid()
    with pytest.raises(ConvdConnectionError) as ei:
        m.call("add_message", user_id=user, provider="anthropic",
               role="user", content="no key")
    assert ei.value.code == "closed"
    assert p.seen["add_message"] == 1
    assert stored(pg, user) == [("no key", "")]
    m.close()


def test_reads_retried_until_convd_answers(convd, pg, proxy):
    """Issue 14.9: a read whose connection breaks, and breaks again on
    the first retry (a restart in progress), is sent again until convd
    answers (within reconnect_timeout)."""
    user = uid()
    pg.psql(f"INSERT INTO {HIST} (user_id, model_provider, role, content) "
            f"VALUES ({q(user)}, 'anthropic', 'user', 'q')")
    p = proxy("get_recent_conversations", drops=3)
    m = ConversationManager(p.path)
    rows = m.get_recent_conversations(user, "anthropic")
    assert [r["content"] for r in rows] == ["q"]
    assert p.dropped == 3 and p.seen["get_recent_conversations"] == 4
    m.close()


def test_restarts_under_load(schema, convd_factory):
    """Issue 14.10: 8 threads of the client write (and read) while convd
    is restarted 5 times with SIGTERM and 3 times with SIGKILL: no call
    fails, every acknowledged message is stored, none twice, each
    thread's messages in the order it wrote them."""
    pg = schema
    d = convd_factory(pg)
    m = ConversationManager(d.socket, reconnect_timeout=convdtest.scaled(30))
    nthreads = 8
    users = [uid(f"rs{t}") for t in range(nthreads)]
    acked = {u: [] for u in users}
    errors = []
    stop = threading.Event()

    def work(user):
        i = 0
        while not stop.is_set():
            content = f"{user} #{i}"
            try:
                assert m.add_message(user, "anthropic",
                                     "user" if i % 2 == 0 else "assistant",
                                     content) is True
                acked[user].append(content)
                if i % 8 == 7:
                    last = m.get_recent_conversations(user, "anthropic",
                                                      limit=1)
                    assert last[-1]["content"] == content, last
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((user, i, repr(e)))
            i += 1

    def total():
        return sum(len(v) for v in acked.values())

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    kinds = [signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGTERM,
             signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM]
    try:
        for sig in kinds:
            # some load on the new convd before each restart
            before = total()
            convdtest.wait_until(lambda: total() >= before + 150 or errors,
                                 timeout=convdtest.scaled(60),
                                 what="writes between restarts")
            convdtest.restart(d, sig)
        before = total()
        convdtest.wait_until(lambda: total() >= before + 150 or errors,
                             timeout=convdtest.scaled(60),
                             what="writes after the last restart")
    finally:
        stop.set()
        for t in threads:
            t.join()
    m.close()
    assert errors == [], errors[:5]
    assert total() >= 9 * 150
    for user in users:
        rows = convdtest.history_contents(pg, user)
        assert rows == acked[user], (
            f"{user}: {len(rows)} stored, {len(acked[user])} acknowledged; "
            f"missing {sorted(set(acked[user]) - set(rows))[:3]}, "
            f"twice {sorted({c for c in rows if rows.count(c) > 1})[:3]}")
    convdtest.stop_ok(d)
