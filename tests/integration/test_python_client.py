"""The Python client (clients/python, convd_client) against a real convd:
every method with the seed's return shapes, typed errors and the legacy
flag, threads, reconnecting across a convd restart, and moving a user's
history between two databases with convctl export / import."""

import datetime
import json
import sys
import threading
import time

import pytest

import convdtest
from convdtest import sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

import convd_client  # noqa: E402
from convd_client import (ConvdConnectionError, ConvdError,  # noqa: E402
                          ConversationManager)

HIST = "simple_conversation_history"
SEED_KEYS = {"role", "content", "created_at", "model_provider"}


def db_iso(pg, user, provider):
    """created_at of the user's rows as the seed printed them: naive UTC
    datetime.isoformat(), oldest first."""
    out = pg.psql(f"SELECT (extract(epoch FROM created_at) * 1000000)::bigint"
                  f" FROM {HIST} WHERE user_id = {q(user)} AND model_provider"
                  f" = {q(provider)} ORDER BY created_at, id")
    epoch = datetime.datetime(1970, 1, 1)
    return [(epoch + datetime.timedelta(microseconds=int(x))).isoformat()
            for x in out.split()]


@pytest.fixture
def mgr(convd):
    m = ConversationManager(convd.socket)
    yield m
    m.close()


# ------------------------------------------------------------ the methods

def test_add_and_recent_shapes(mgr, pg):
    user = uid()
    assert mgr.add_message(user, "anthropic", "user", "Hello") is True
    assert mgr.add_message(user, "anthropic", "assistant",
                           "Hi \u4f60\u597d\n\u2603") is True
    assert mgr.add_message(user, "gemini", "user", "other provider") is True
    rows = mgr.get_recent_conversations(user, "anthropic")
    assert isinstance(rows, list) and len(rows) == 2
    for r in rows:
        assert set(r) == SEED_KEYS, r
        assert isinstance(r["created_at"], str)
        assert r["model_provider"] == "anthropic"
    assert [(r["role"], r["content"]) for r in rows] == \
        [("user", "Hello"), ("assistant", "Hi \u4f60\u597d\n\u2603")]
    # the exact text the seed's isoformat() of the stored time gave
    assert [r["created_at"] for r in rows] == db_iso(pg, user, "anthropic")
    assert mgr.get_recent_conversations(uid(), "anthropic") == []


def test_recent_limit_counts_turns(mgr):
    user = uid()
    for i in range(7):
        mgr.add_message(user, "gemini", "user" if i % 2 == 0 else "assistant",
                        f"m{i}")
    got = mgr.get_recent_conversations(user, "gemini", limit=2)
    assert [r["content"] for r in got] == ["m3", "m4", "m5", "m6"]
    got = mgr.get_recent_conversations(user_id=user, model_provider="gemini",
                                       limit=1)
    assert [r["content"] for r in got] == ["m5", "m6"]
    assert mgr.get_recent_conversations(user, "gemini", limit=0) == []


def test_clear_count_stats(mgr, pg):
    user = uid()
    for p, n in (("anthropic", 3), ("gemini", 2)):
        for i in range(n):
            mgr.add_message(user, p, "user", f"{p} {i}")
    mgr.add_message(user, "anthropic", "user", "elsewhere", platform="slack")
    assert mgr.get_conversation_count(user) == 5
    assert mgr.get_conversation_count(user, "gemini") == 2
    assert mgr.get_conversation_count(user, model_provider="anthropic",
                                      platform="slack") == 1
    stats = mgr.get_user_statistics(user)
    assert set(stats) == {"anthropic", "gemini"}
    assert stats["anthropic"]["message_count"] == 3
    assert set(stats["gemini"]) == {"message_count", "last_activity"}
    last = pg.psql(f"SELECT (extract(epoch FROM max(created_at)) * 1000000)"
                   f"::bigint FROM {HIST} WHERE user_id = {q(user)} AND "
                   f"platform = 'line' AND model_provider = 'gemini'")
    assert stats["gemini"]["last_activity"] == (
        datetime.datetime(1970, 1, 1) +
        datetime.timedelta(microseconds=int(last))).isoformat()
    assert mgr.get_user_statistics(uid()) == {}
    assert mgr.clear_user_history(user, "anthropic") is True
    assert mgr.get_conversation_count(user) == 2
    assert mgr.get_conversation_count(user, platform="slack") == 1
    assert int(pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                       f"{q(user)}")) == 3


def test_cleanup_old_conversations(mgr, pg):
    user = uid()
    mgr.add_message(user, "anthropic", "user", "old")
    mgr.add_message(user, "anthropic", "user", "new")
    pg.psql(f"UPDATE {HIST} SET created_at = now() - interval '400 days' "
            f"WHERE user_id = {q(user)} AND content = 'old'")
    deleted = mgr.cleanup_old_conversations(days_to_keep=365)
    assert isinstance(deleted, int) and deleted >= 1
    assert [r["content"] for r in
            mgr.get_recent_conversations(user, "anthropic")] == ["new"]


def test_threads(mgr, pg):
    user = uid()
    assert mgr.get_thread_id_by_user_id(user) is None
    assert mgr.save_thread_id(user, "thread_one") is None
    assert mgr.get_thread_id_by_user_id(user) == "thread_one"
    mgr.save_thread_id(user, "thread_two")
    assert mgr.get_thread_id_by_user_id(user) == "thread_two"
    mgr.save_thread_id(user, "thread_slack", platform="slack")
    assert pg.psql(f"SELECT thread_id FROM user_thread_table WHERE user_id = "
                   f"{q(user)} ORDER BY platform") == \
        "thread_two\nthread_slack"
    assert mgr.delete_thread_id(user) is None
    assert mgr.get_thread_id_by_user_id(user) is None
    assert mgr.get_thread_id_by_user_id(user, "slack") == "thread_slack"


def test_module_level_helpers(convd, monkeypatch):
    monkeypatch.setenv("CONVD_SOCKET", convd.socket)
    monkeypatch.setattr(convd_client, "_default", None)
    m = convd_client.get_conversation_manager()
    assert m is convd_client.get_conversation_manager()
    assert m.socket_path == convd.socket
    assert convd_client.ORMConversationManager is ConversationManager
    user = uid()
    convd_client.save_thread_id(user, "thread_mod")
    assert convd_client.get_thread_id_by_user_id(user) == "thread_mod"
    convd_client.delete_thread_id(user)
    assert convd_client.get_thread_id_by_user_id(user) is None
    assert m.add_message(user, "ollama", "user", "via the shared manager")
    assert m.ping() and m.health()["ok"] is True
    m.close()


# ------------------------------------------------------------------ errors

def test_errors_are_typed(mgr):
    user = uid()
    with pytest.raises(ConvdError) as ei:
        mgr.add_message(user, "anthropic", "robot", "hi")
    assert ei.value.code == "invalid_params"
    assert "role" in ei.value.message
    assert not isinstance(ei.value, ConvdConnectionError)
    with pytest.raises(ConvdError) as ei:
        mgr.get_recent_conversations(user, "x" * 51)
    assert ei.value.code == "invalid_params"
    with pytest.raises(ConvdError) as ei:
        mgr.get_recent_conversations(user, "gemini", limit=1001)
    assert ei.value.code == "invalid_params"
    with pytest.raises(ConvdError) as ei:
        mgr.call("no_such_method")
    assert ei.value.code == "no_such_method"
    # the connection stays usable after an error answer
    assert mgr.add_message(user, "anthropic", "user", "fine") is True


def test_unreachable(tmp_path):
    m = ConversationManager(str(tmp_path / "nothing.sock"),
                            reconnect_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(ConvdConnectionError) as ei:
        m.add_message("u", "anthropic", "user", "x")
    assert ei.value.code == "connect_failed"
    # it tried for reconnect_timeout (a lower bound), then gave up: that
    # deadline is the behaviour, so a generous bound, scaled
    assert 0.25 <= time.monotonic() - t0 < convdtest.scaled(5)
    m.close()
    with pytest.raises(ConvdError):
        m.ping()


def test_legacy_flag(convd, tmp_path):
    legacy = ConversationManager(convd.socket, legacy=True)
    user = uid()
    assert legacy.add_message(user, "anthropic", "robot", "x") is False
    assert legacy.get_recent_conversations(user, "x" * 51) == []
    assert legacy.clear_user_history(user, "") is False
    assert legacy.get_conversation_count(user, "y" * 99) == 0
    assert legacy.get_user_statistics("") == {}
    assert legacy.add_message(user, "anthropic", "user", "ok") is True
    assert legacy.get_conversation_count(user) == 1
    legacy.close()
    # convd unreachable: the old defaults, no exception
    gone = ConversationManager(str(tmp_path / "gone.sock"), legacy=True,
                               reconnect_timeout=0)
    assert gone.add_message(user, "anthropic", "user", "x") is False
    assert gone.get_recent_conversations(user, "anthropic") == []
    assert gone.get_conversation_count(user) == 0
    assert gone.get_user_statistics(user) == {}
    assert gone.cleanup_old_conversations() == 0
    assert gone.clear_user_history(user, "anthropic") is False
    # the thread helpers raised in the original, and still do
    with pytest.raises(ConvdConnectionError):
        gone.get_thread_id_by_user_id(user)
    with pytest.raises(ConvdConnectionError):
        gone.save_thread_id(user, "t")


# ----------------------------------------------------------------- threads

def test_threads_share_one_manager(mgr, pg):
    user = uid()
    nthreads, per = 8, 40

    def work(t):
        for i in range(per):
            assert mgr.add_message(user, "anthropic",
                                   "user" if i % 2 == 0 else "assistant",
                                   f"t{t} m{i}")
            if i % 10 == 0:
                mgr.get_recent_conversations(user, "anthropic", limit=3)

    assert convdtest.in_threads(work, range(nthreads)) == []
    assert mgr.get_conversation_count(user) == nthreads * per
    contents = set(pg.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                           f"{q(user)}").splitlines())
    assert contents == {f"t{t} m{i}" for t in range(nthreads)
                        for i in range(per)}
    assert len(mgr._idle) <= mgr.pool_size


def test_reconnect_after_restart(schema, convd_factory):
    d = convd_factory(schema)
    m = ConversationManager(d.socket, reconnect_timeout=15)
    user = uid()
    assert m.add_message(user, "anthropic", "user", "before") is True
    assert len(m._idle) == 1
    d.stop()
    d.start()
    # the idle connection was closed by the old convd: a new one is used
    assert m.add_message(user, "anthropic", "user", "after") is True
    assert [r["content"] for r in
            m.get_recent_conversations(user, "anthropic")] == \
        ["before", "after"]
    # a call while convd is down waits for it to come back
    d.stop()
    starter = threading.Timer(1.0, d.start)
    starter.start()
    try:
        t0 = time.monotonic()
        assert m.get_conversation_count(user) == 2
        assert time.monotonic() - t0 >= 0.5
    finally:
        starter.join()
    m.close()


def test_example_line_bot_flow(convd):
    r = convdtest.run_python_example("line_bot_flow.py", convd.socket)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "thread after /reset: None" in out
    assert "messages: 4" in out and "messages after /reset: 0" in out
    assert "after a redelivery, messages: 4" in out


# --------------------------------------------------- export / import

def export_lines(d, *args):
    r = d.convctl("export", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def rows_of(pg, user):
    return pg.psql(f"SELECT platform, model_provider, role, content, "
                   f"(extract(epoch FROM created_at) * 1000000)::bigint "
                   f"FROM {HIST} WHERE user_id = {q(user)} ORDER BY platform, id")


def test_export_import_between_databases(convd, pg, pg_factory,
                                         convd_factory, tmp_path):
    user = uid("move")
    m = ConversationManager(convd.socket)
    texts = ["plain", "quote \" backslash \\ tab\t", "line1\nline2",
             "\u4f60\u597d \U0001f600", "\u0001 control", "</script>"]
    for i, t in enumerate(texts):
        m.add_message(user, "anthropic" if i % 2 else "gemini",
                      "user" if i % 3 else "assistant", t)
    m.add_message(user, "ollama", "user", "on slack", platform="slack")
    # more than one page (1000), stored after the others but older (within
    # convd's retention), three at a time with equal times
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role,"
            f" content, created_at) SELECT {q(user)}, 'line', 'anthropic',"
            f" CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,"
            f" 'bulk ' || g, date_trunc('second', now() - interval '2 days')"
            f" + interval '0.999999 second' + (g / 3) * interval '1 second'"
            f" FROM generate_series(1, 2400) g")
    src = rows_of(pg, user)
    lines = export_lines(convd, user)
    assert len(lines) == len(texts) + 2400
    for x in lines:
        assert set(x) - {"idempotency_key"} == {
            "id", "user_id", "platform", "provider", "role", "content",
            "created_at"}
        assert x["user_id"] == user and x["platform"] == "line"
        assert x["created_at"].endswith("Z") and len(x["created_at"]) == 27
    # the manager's adds carry their keys along, the rows made in SQL none
    assert ["idempotency_key" in x for x in lines] == \
        [True] * len(texts) + [False] * 2400
    assert [x["id"] for x in lines] == sorted(x["id"] for x in lines)
    assert [x["content"] for x in lines[:len(texts)]] == texts
    only = export_lines(convd, user, "--provider", "gemini")
    assert {x["provider"] for x in only} == {"gemini"} and len(only) == 3
    slack = export_lines(convd, "--platform", "slack", user)
    assert [x["content"] for x in slack] == ["on slack"]
    # the Python generator sees the same rows
    assert [dict(x, id=None) for x in m.export_history(user)] == \
        [dict(x, id=None) for x in lines]

    # into another database
    pg2 = pg_factory()
    d2 = convd_factory(pg2)
    dump = "".join(json.dumps(x) + "\n" for x in lines + slack)
    r = d2.convctl("import", input=dump)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"imported {len(lines) + 1} messages, skipped 0 " \
                       f"already present\n"
    assert rows_of(pg2, user) == src
    # again: nothing new
    r = d2.convctl("--json", "import", input=dump)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"imported": 0, "skipped": len(lines) + 1}
    assert rows_of(pg2, user) == src
    # the history reads the same on both sides
    m2 = ConversationManager(d2.socket)
    for p in ("anthropic", "gemini"):
        assert m2.get_recent_conversations(user, p, limit=1000) == \
            m.get_recent_conversations(user, p, limit=1000)
    assert m2.get_thread_id_by_user_id(user) is None
    m.close()
    m2.close()


def test_import_errors_and_python_import(convd, pg):
    user = uid("imp")
    good = {"user_id": user, "provider": "gemini", "role": "user",
            "content": "x", "created_at": "2025-01-02T03:04:05.123456Z"}
    cases = [
        ("not json", "line 1"),
        (json.dumps(dict(good, created_at="yesterday")), "created_at"),
        (json.dumps({k: v for k, v in good.items() if k != "role"}),
         "'role' is missing"),
        (json.dumps(dict(good, role="robot")), "invalid_params"),
        # issue 17: a member import does not know is refused, not dropped
        (json.dumps(dict(good, extra=1)), 'line 1: unknown member "extra"'),
    ]
    for line, want in cases:
        r = convd.convctl("import", input=line + "\n")
        assert r.returncode in (1, 2), (line, r.returncode)
        assert want in r.stderr, (line, r.stderr)
    # zones, blank lines; the stored time is exact
    lines = [dict(good, created_at="2025-01-02T05:04:05.123456+02:00"),
             dict(good, content="naive", created_at="2025-01-02 03:04:06")]
    r = convd.convctl("import", input="\n".join(json.dumps(x) for x in lines)
                      + "\n\n")
    assert r.returncode == 0, r.stderr
    assert pg.psql(f"SELECT content || '@' || (extract(epoch FROM created_at)"
                   f" * 1000000)::bigint FROM {HIST} WHERE user_id = "
                   f"{q(user)} ORDER BY id") == \
        "x@1735787045123456\nnaive@1735787046000000"
    m = ConversationManager(convd.socket)
    assert m.import_message(user, "gemini", "user", "x",
                            "2025-01-02T03:04:05.123456Z") is False
    assert m.import_message(user, "gemini", "user", "y",
                            datetime.datetime(2025, 1, 2, 3, 4, 5)) is True
    with pytest.raises(ConvdError) as ei:
        m.import_message(user, "gemini", "user", "z",
                         datetime.datetime(1969, 12, 31, 23, 59, 59))
    assert ei.value.code == "invalid_params"
    m.close()


def test_export_any_size(convd, pg):
    """Issue 14.11: a user with 1,000 messages of 17 KB (more than
    max_output_bytes, 16 MiB, in all): convd bounds each page by bytes, so
    pages are shorter than the 1,000 rows asked; export_history() pages on
    until convd returns an empty page and yields every message, in id
    order."""
    user = uid("big")
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content) SELECT {q(user)}, 'line', 'anthropic', 'user', "
            f"lpad(g::text, 6, '0') || repeat('x', 17000) "
            f"FROM generate_series(1, 1000) g")
    m = ConversationManager(convd.socket)
    seen = 0
    for i, row in enumerate(m.export_history(user)):
        assert row["content"] == f"{i + 1:06d}" + "x" * 17000
        seen += 1
    assert seen == 1000
    # the pages were bounded by bytes (the client asks for 1,000 rows)
    first = m.call("export_history", user_id=user, after_id=0, limit=1000)
    assert 0 < len(first) < 1000
    m.close()


def test_original_thread_helper_names(mgr, convd, monkeypatch):
    """Issue 14.13: the original's query_thread / save_thread /
    delete_thread, as methods and as module functions."""
    user = uid()
    assert mgr.query_thread(user) is None
    assert mgr.save_thread(user, "thread_a") is None
    assert mgr.query_thread(user) == "thread_a"
    assert mgr.get_thread_id_by_user_id(user) == "thread_a"
    mgr.save_thread(user, "thread_slack", platform="slack")
    assert mgr.delete_thread(user) is None
    assert mgr.query_thread(user) is None
    assert mgr.query_thread(user, "slack") == "thread_slack"
    monkeypatch.setenv("CONVD_SOCKET", convd.socket)
    monkeypatch.setattr(convd_client, "_default", None)
    from convd_client import delete_thread, query_thread, save_thread
    save_thread(user, "thread_b")
    assert query_thread(user) == "thread_b"
    delete_thread(user)
    assert query_thread(user) is None
    convd_client.get_conversation_manager().close()
