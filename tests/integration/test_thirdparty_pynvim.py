"""convd driven by a MessagePack-RPC client nobody here wrote: pynvim's
msgpack_rpc session (Debian's python3-pynvim), over convd's Unix socket
(issue 14, point 4).

pynvim opens every session with a notification whose method name is
msgpack bin (nvim_set_client_info), answers any response it cannot match
with an error of its own, and decodes the timestamp extension (-1) into
msgpack.Timestamp.  Every method is called; errors arrive as error
responses with their msgid; 100 requests are pipelined on one session.
"""
import time

import msgpack
import pytest

import convdtest
from convdtest import scaled

greenlet = pytest.importorskip("greenlet")
msgpack_rpc = pytest.importorskip("pynvim.msgpack_rpc")


class RpcFailed(Exception):
    """pynvim hands error responses to session.error_wrapper."""

    def __init__(self, err):
        super().__init__(err)
        self.code = err.get("code") if isinstance(err, dict) else None


@pytest.fixture
def session(convd):
    s = msgpack_rpc.socket_session(convd.socket)
    s.error_wrapper = RpcFailed
    yield s
    s.close()


def call(s, method, **named):
    return s.request(method, named)


def test_every_method(session, convd):
    s = session
    assert s.request("ping") == "pong"
    assert s.request(b"ping") == "pong"             # a bin method name
    r = call(s, "add_message", user_id="nv", provider="openai", role="user",
             content="hi from pynvim", idempotency_key="nv-1")
    assert isinstance(r["created_at"], msgpack.Timestamp)
    assert abs(r["created_at"].to_unix() - time.time()) < 60
    again = call(s, "add_message", user_id="nv", provider="openai",
                 role="user", content="hi from pynvim",
                 idempotency_key="nv-1")
    assert again == dict(r, duplicate=True)
    s.request("add_message", "nv", "openai", "assistant", "hello")
    recent = call(s, "get_recent_conversations", user_id="nv",
                  provider="openai")
    assert [m["content"] for m in recent] == ["hi from pynvim", "hello"]
    assert recent[0]["created_at"] == r["created_at"]
    assert call(s, "get_conversation_count", user_id="nv") == 2
    st = call(s, "get_user_statistics", user_id="nv")
    assert st["total_messages"] == 2
    assert isinstance(st["providers"]["openai"]["last_message_at"],
                      msgpack.Timestamp)
    assert call(s, "get_thread", user_id="nv") is None
    assert call(s, "save_thread", user_id="nv", thread_id="t-9") is True
    assert call(s, "get_thread", user_id="nv") == "t-9"
    assert call(s, "delete_thread", user_id="nv") == {"deleted": 1}
    page = call(s, "export_history", user_id="nv")
    assert [m["id"] for m in page] == sorted(m["id"] for m in page)
    imp = call(s, "import_message", user_id="nv2", provider="p",
               role="user", content="old", created_at=1_500_000_000_000_000)
    assert imp["imported"] is True
    old = call(s, "export_history", user_id="nv2")[0]["created_at"]
    assert old == msgpack.Timestamp(1_500_000_000, 0)
    assert call(s, "clear_user_history", user_id="nv",
                provider="openai") == {"deleted": 2}
    cleaned = call(s, "cleanup_old_conversations", days_to_keep=36500)
    assert cleaned["deleted"] == 0
    assert "methods" in s.request("stats")
    assert s.request("health")["ok"] is True
    # errors: each an error response pynvim matches to its request
    with pytest.raises(RpcFailed) as e:
        call(s, "add_message", user_id="nv", provider="p", role="robot",
             content="x")
    assert e.value.code == "invalid_params"
    with pytest.raises(RpcFailed) as e:
        s.request("no_such_method")
    assert e.value.code == "no_such_method"
    with pytest.raises(RpcFailed) as e:
        s.request(b"no_such_bin_method")
    assert e.value.code == "no_such_method"
    # the session still works, and nothing echoes between the two
    before = s.request("stats")["protocol_errors"]
    time.sleep(0.3)
    assert s.request("ping") == "pong"
    assert s.request("stats")["protocol_errors"] == before


def test_100_pipelined_requests(session):
    """100 requests in flight at once on one pynvim session (each in a
    greenlet: pynvim sends them without waiting), answered by msgid."""
    s = session
    n = 100
    results = {}

    def one(i):
        try:
            if i % 10 == 9:
                s.request("add_message", {"user_id": "nvp", "role": "x"})
            else:
                results[i] = s.request(
                    "add_message", {"user_id": "nvp", "provider": "p",
                                    "role": "user", "content": f"m{i}"})
        except RpcFailed as e:
            results[i] = e
        if len(results) == n:
            s.stop()

    def setup():
        for i in range(n):
            greenlet.greenlet(one).switch(i)

    s.run(lambda *a: None, lambda *a: None, setup)
    assert len(results) == n
    errors = [i for i, r in results.items() if isinstance(r, RpcFailed)]
    assert errors == [i for i in range(n) if i % 10 == 9]
    assert all(results[i].code == "invalid_params" for i in errors)
    ids = [results[i]["id"] for i in range(n) if i % 10 != 9]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    recent = s.request("get_recent_conversations",
                       {"user_id": "nvp", "provider": "p", "limit": 100})
    assert [m["content"] for m in recent] == \
        [f"m{i}" for i in range(n) if i % 10 != 9]


def test_structured_content_at_its_limits(session):
    """issue 17 through pynvim's session: a content of 100,000 values
    (within max_content_bytes) stored and read back; content, metadata and
    state 65 deep answered invalid_params, and the session goes on."""
    s = session
    user = convdtest.uid("nvc")
    content = [{"type": "text", "text": "a"}] + list(range(99999))
    r = call(s, "add_message", user_id=user, provider="openai", role="user",
             content=content)
    assert r["id"] > 0
    back = call(s, "get_recent_conversations", user_id=user,
                provider="openai")
    assert back[0]["content"] == content
    deep = {}
    for _ in range(64):
        deep = {"k": deep}      # 65 maps
    for method, named in (
            ("add_message", dict(provider="openai", role="user",
                                 content=[deep])),
            ("add_message", dict(provider="openai", role="user",
                                 content="x", metadata=deep)),
            ("set_state", dict(provider="openai", state=deep))):
        with pytest.raises(RpcFailed) as ei:
            call(s, method, user_id=user, **named)
        assert ei.value.code == "invalid_params", ei.value
        assert "nested more than 64 deep" in ei.value.args[0]["message"]
    # 64 levels are kept
    assert call(s, "set_state", user_id=user, provider="openai",
                state=deep["k"]) == {"version": 1}
    assert call(s, "get_state", user_id=user,
                provider="openai")["state"] == deep["k"]
    assert s.request("ping") == "pong"
