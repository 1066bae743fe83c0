"""AsyncConversationManager (issue 20, point 8) against the real convd and
PostgreSQL, on real asyncio: the sync manager's methods, results and
errors; 1,000 concurrent tasks pipelined over a few connections; answers
out of order, timeouts and cancellation; retries with idempotency keys
after broken connections; convd restarted with SIGTERM and SIGKILL while
tasks write."""

import asyncio
import signal
import sys

import pytest

import convdtest
from convdtest import DroppingProxy, sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConvdConnectionError, ConvdError,
                          ConversationManager)

HIST = "simple_conversation_history"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, convdtest.scaled(120)))


def test_same_methods_and_results_as_sync(convd, pg):
    sync = ConversationManager(convd.socket)
    user = uid()

    async def main():
        async with AsyncConversationManager(convd.socket) as m:
            assert await m.ping() is True
            # the first schema check may still be running just after start
            for _ in range(int(convdtest.scaled(200))):
                h = await m.health()
                if h["schema"] != "unknown":
                    break
                await asyncio.sleep(0.05)
            assert h["ok"] is True, h
            for i in range(5):
                assert await m.add_message(
                    user, "anthropic", "user" if i % 2 == 0 else "assistant",
                    f"m{i}") is True
            await m.add_message(user, "gemini", "user", "g")
            await m.add_message(user, "gemini", "user", "s", platform="slack")
            got = {
                "recent": await m.get_recent_conversations(user, "anthropic",
                                                           limit=2),
                "recent0": await m.get_recent_conversations(user, "anthropic",
                                                            limit=0),
                "count": await m.get_conversation_count(user),
                "count_g": await m.get_conversation_count(user, "gemini"),
                "count_slack": await m.get_conversation_count(
                    user, platform="slack"),
                "stats": await m.get_user_statistics(user),
                "export": [r async for r in m.export_history(user)],
            }
            assert await m.get_thread_id_by_user_id(user) is None
            assert await m.save_thread_id(user, "th1") is None
            assert await m.query_thread(user) == "th1"
            assert await m.save_thread(user, "th2") is None
            got["thread"] = await m.get_thread_id_by_user_id(user)
            assert await m.delete_thread(user) is None
            assert await m.query_thread(user) is None
            assert await m.import_message(user, "ollama", "user", "old",
                                          "2025-01-02T03:04:05Z") is True
            assert await m.clear_user_history(user, "ollama") is True
            assert (await m.call("ping")) == "pong"
            return got

    got = run(main())
    assert [r["content"] for r in got["recent"]] == ["m1", "m2", "m3", "m4"]
    assert got["recent"] == sync.get_recent_conversations(user, "anthropic",
                                                          limit=2)
    assert got["recent0"] == [] and got["count"] == 6
    assert got["count_g"] == sync.get_conversation_count(user, "gemini") == 1
    assert got["count_slack"] == 1
    assert got["stats"] == sync.get_user_statistics(user)
    assert got["export"] == list(sync.export_history(user))
    assert got["thread"] == "th2"
    sync.close()


def test_errors_match_sync(convd, tmp_path):
    user = uid()

    async def main():
        async with AsyncConversationManager(convd.socket) as m:
            codes = []
            for coro in (m.add_message(user, "anthropic", "robot", "x"),
                         m.get_recent_conversations(user, "x" * 51),
                         m.call("no_such_method")):
                with pytest.raises(ConvdError) as ei:
                    await coro
                assert not isinstance(ei.value, ConvdConnectionError)
                codes.append(ei.value.code)
            assert "role" in ei.value.message or codes[0] == "invalid_params"
            # still usable after error answers
            assert await m.add_message(user, "anthropic", "user", "ok")
        gone = AsyncConversationManager(str(tmp_path / "none.sock"),
                                        reconnect_timeout=0.2)
        with pytest.raises(ConvdConnectionError) as ei:
            await gone.add_message(user, "anthropic", "user", "x")
        assert ei.value.code == "connect_failed"
        legacy = AsyncConversationManager(str(tmp_path / "none.sock"),
                                          legacy=True, reconnect_timeout=0)
        assert await legacy.add_message(user, "anthropic", "user", "x") \
            is False
        assert await legacy.get_recent_conversations(user, "a") == []
        assert await legacy.get_conversation_count(user) == 0
        assert await legacy.get_user_statistics(user) == {}
        with pytest.raises(ConvdConnectionError):
            await legacy.query_thread(user)
        await legacy.close()
        with pytest.raises(ConvdError) as ei:
            await legacy.ping()
        assert ei.value.code == "closed"
        return codes

    assert run(main()) == ["invalid_params", "invalid_params",
                           "no_such_method"]


def test_thousand_tasks_pipelined(convd, pg):
    """1,000 tasks at once on one manager with 4 connections: each stores
    3 messages and reads them back; convd accepted at most 4 connections,
    and every message is stored once, in each task's order."""
    base = uid("k")
    ntasks, per = 1000, 3

    async def main():
        async with AsyncConversationManager(convd.socket,
                                            connections=4) as m:
            before = (await m.call("stats"))["clients"]["accepted"]

            async def task(i):
                user = f"{base}-{i}"
                for j in range(per):
                    await m.add_message(user, "gemini",
                                        "user" if j % 2 == 0 else "assistant",
                                        f"{i}.{j}")
                rows = await m.get_recent_conversations(user, "gemini")
                assert [r["content"] for r in rows] == \
                    [f"{i}.{j}" for j in range(per)]
                return i

            done = await asyncio.gather(*(task(i) for i in range(ntasks)))
            assert sorted(done) == list(range(ntasks))
            after = (await m.call("stats"))["clients"]["accepted"]
            assert len(m._conns) <= 4
            return after - before

    opened = run(main())
    assert 1 <= opened <= 4, opened
    out = pg.psql(f"SELECT count(*), count(DISTINCT content), "
                  f"count(DISTINCT user_id) FROM {HIST} WHERE user_id LIKE "
                  f"{q(base + '-%')}")
    assert out == f"{ntasks * per}|{ntasks * per}|{ntasks}"
    bad = pg.psql(f"SELECT count(*) FROM (SELECT user_id, content, "
                  f"lag(content) OVER (PARTITION BY user_id ORDER BY id) AS "
                  f"prev FROM {HIST} WHERE user_id LIKE {q(base + '-%')}) x "
                  f"WHERE prev IS NOT NULL AND prev > content")
    assert bad == "0"


def test_out_of_order_timeout_cancel(convd, pg):
    """A slow request does not hold up the others on its connection; a
    call that times out or is cancelled leaves the connection usable and
    its late answer is dropped."""
    user = uid()

    async def main():
        loop = asyncio.get_running_loop()
        async with AsyncConversationManager(convd.socket, connections=1,
                                            timeout=30) as m:
            await m.add_message(user, "anthropic", "user", "before")
            lock = convdtest.TableLock(pg, HIST)
            await loop.run_in_executor(None, lock.acquire)
            try:
                slow = asyncio.ensure_future(
                    m.add_message(user, "anthropic", "user", "slow"))
                await asyncio.sleep(0.2)
                assert not slow.done()
                assert await m.ping() is True      # answered before slow
                conn, = m._conns
                # cancelled while waiting
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(m.get_conversation_count(user),
                                           0.3)
                assert len(conn.pending) == 1      # only the slow add
                # timed out
                m.timeout = 0.5
                with pytest.raises(ConvdConnectionError) as ei:
                    await m.get_recent_conversations(user, "anthropic")
                assert ei.value.code == "timeout"
                m.timeout = 30
                assert len(conn.pending) == 1
            finally:
                await loop.run_in_executor(None, lock.release)
            assert await slow is True
            # the late answers of the two abandoned reads were dropped
            assert await m.get_conversation_count(user) == 2
            assert m._conns == [conn] and conn.pending == {}
            return [r["content"] for r in
                    await m.get_recent_conversations(user, "anthropic")]

    assert run(main()) == ["before", "slow"]


def test_retries_after_broken_connection(convd, pg, tmp_path):
    """Issue 14.7 for the asyncio manager: an add whose answer was lost
    is sent again with its key and stored once; a read is sent again until
    convd answers; a write without key (clear_user_history) is not sent
    again."""
    user = uid()
    add = DroppingProxy(convd.socket, str(tmp_path / "p1"), "add_message",
                        drops=2)
    read = DroppingProxy(convd.socket, str(tmp_path / "p2"),
                         "get_recent_conversations", drops=3)
    clear = DroppingProxy(convd.socket, str(tmp_path / "p3"),
                          "clear_user_history", drops=1)
    with add, read, clear:
        async def main():
            async with AsyncConversationManager(add.path) as m:
                assert await m.add_message(user, "anthropic", "user", "a")
                assert await m.add_message(user, "anthropic", "user", "b",
                                           idempotency_key="evt-b")
            async with AsyncConversationManager(read.path) as m:
                rows = await m.get_recent_conversations(user, "anthropic")
            async with AsyncConversationManager(clear.path) as m:
                with pytest.raises(ConvdConnectionError) as ei:
                    await m.clear_user_history(uid(), "anthropic")
                assert ei.value.code == "closed"
            return rows

        rows = run(main())
    assert add.dropped == 2 and add.seen["add_message"] == 4
    assert convdtest.history_contents(pg, user) == ["a", "b"]
    assert [r["content"] for r in rows] == ["a", "b"]
    assert read.dropped == 3 and read.seen["get_recent_conversations"] == 4
    assert clear.seen["clear_user_history"] == 1


def test_restarts_while_tasks_write(schema, convd_factory):
    """64 tasks write through one manager while convd is restarted twice
    with SIGTERM and twice with SIGKILL: no call fails, every acknowledged
    message is stored once, in each task's order."""
    pg = schema
    d = convd_factory(pg)
    users = [uid(f"ar{t}") for t in range(64)]
    acked = {u: [] for u in users}
    errors = []

    async def main():
        m = AsyncConversationManager(d.socket,
                                     reconnect_timeout=convdtest.scaled(30))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def work(user):
            i = 0
            while not stop.is_set():
                content = f"{user} #{i}"
                try:
                    await m.add_message(user, "anthropic", "user", content)
                    acked[user].append(content)
                    if i % 8 == 7:
                        last = await m.get_recent_conversations(
                            user, "anthropic", limit=1)
                        assert last[-1]["content"] == content
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append((user, i, repr(e)))
                i += 1

        def total():
            return sum(len(v) for v in acked.values())

        async def load(n):
            start = total()
            while total() < start + n and not errors:
                await asyncio.sleep(0.02)

        tasks = [asyncio.ensure_future(work(u)) for u in users]
        try:
            for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM,
                        signal.SIGKILL):
                await load(300)
                await loop.run_in_executor(None, convdtest.restart, d, sig)
            await load(300)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await m.close()

    run(main())
    assert errors == [], errors[:5]
    for user in users:
        assert convdtest.history_contents(pg, user) == acked[user], user
    convdtest.stop_ok(d)


def test_new_event_loop(convd):
    """A manager used again under a new event loop (asyncio.run twice)
    opens new connections there."""
    m = AsyncConversationManager(convd.socket)
    assert run(m.ping()) is True
    assert run(m.ping()) is True
    run(m.close())


def test_example_line_bot_async(convd):
    r = convdtest.run_python_example("line_bot_async.py", convd.socket)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 6, r.stdout
    for line in lines[:5]:
        assert ": messages: 4, thread: thread_" in line, line
    assert lines[5] == "messages after /reset: 0"
