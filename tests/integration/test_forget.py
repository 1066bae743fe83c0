"""forget_user through the real convd and `convctl forget` (issue 18,
point 5): everything of the user goes (messages of every provider and
conversation, threads, states, idempotency keys), checked in the tables
themselves, other users' data stays, a second call answers zeros, the
log holds no content, and convctl asks before it deletes.
"""
import json
import subprocess

import pytest

import convdtest
from convdtest import RpcError

H = "simple_conversation_history"
SECRET_TEXT = "my card number is 4111-1111-1111-1111"


def rows_of(pg, user):
    """Rows of the user in every table convd writes."""
    u = convdtest.sql_literal(user)
    out = {}
    for table in (H, "user_thread_table", "conversation_state"):
        out[table] = int(pg.psql(f"SELECT count(*) FROM {table}"
                                 f" WHERE user_id = {u}"))
    keys = pg.psql(f"SELECT to_regclass('{H}_keys') IS NOT NULL")
    if keys == "t":
        out["keys"] = int(pg.psql(f"SELECT count(*) FROM {H}_keys"
                                  f" WHERE user_id = {u}"))
    return out


def fill(c, user):
    """Messages on two platforms, three providers, two conversations,
    with keys; a thread on each platform; two states."""
    for platform in ("line", "slack"):
        for prov in ("openai", "anthropic", "gemini"):
            c.call("add_message", user_id=user, provider=prov, role="user",
                   content=SECRET_TEXT, platform=platform,
                   idempotency_key=f"{platform}-{prov}-1")
            c.call("add_message", user_id=user, provider=prov,
                   role="assistant", content=[{"type": "text",
                                               "text": "noted"}],
                   conversation_id="c2", platform=platform, tokens=3)
        c.call("save_thread", user_id=user, thread_id="thread_abc",
               platform=platform)
    c.call("set_state", user_id=user, provider="openai",
           state={"previous_response_id": "resp_1"})
    c.call("set_state", user_id=user, provider="openai",
           conversation_id="c2", state={"conversation": "conv_1"},
           platform="slack")


def test_forget_user(convd, schema):
    me, other = convdtest.uid(), convdtest.uid()
    with convd.client() as c:
        fill(c, me)
        fill(c, other)
        kept = rows_of(schema, other)
        assert rows_of(schema, me)[H] == 12
        # one platform first
        r = c.call("forget_user", user_id=me, platform="slack")
        assert r == {"messages": 6, "threads": 1, "states": 1,
                     "idempotency_keys": 3}
        left = rows_of(schema, me)
        assert left[H] == 6 and left["user_thread_table"] == 1
        assert left["conversation_state"] == 1
        # then every platform
        r = c.call("forget_user", me)
        assert r == {"messages": 6, "threads": 1, "states": 1,
                     "idempotency_keys": 3}
        assert all(n == 0 for n in rows_of(schema, me).values()), \
            rows_of(schema, me)
        # a second call finds nothing
        assert c.call("forget_user", user_id=me) == {
            "messages": 0, "threads": 0, "states": 0, "idempotency_keys": 0}
        # the other user keeps everything
        assert rows_of(schema, other) == kept
        # (its default conversation on line: 3 of its 6 messages there)
        assert c.call("get_conversation_count", user_id=other) == 3
        # the keys are free again
        r = c.call("add_message", user_id=me, provider="openai",
                   role="user", content="back", idempotency_key="line-openai-1")
        assert "duplicate" not in r
    log = convd.log()
    assert "forget_user" in log
    assert SECRET_TEXT not in log and me not in log and "noted" not in log
    assert "thread_abc" not in log and "resp_1" not in log


def test_forget_user_is_admin(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"admin_users": "nobody"}})
    with d.client() as c:
        with pytest.raises(RpcError) as e:
            c.call("forget_user", user_id="u1")
        assert e.value.code == "permission_denied"
        for bad in [dict(), dict(user_id=""), dict(user_id="u", platform=""),
                    dict(user_id="u", provider="p")]:
            with pytest.raises(RpcError) as e:
                c.call("forget_user", **bad)
            assert e.value.code == "invalid_params", bad


def convctl(convd, *args, answer=None):
    """convctl against convd; answer: what stdin holds (None: nothing)."""
    return subprocess.run([convdtest.CONVCTL, "-s", convd.socket, *args],
                          input=answer, stdin=None if answer is not None
                          else subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def test_convctl_forget(convd, schema):
    me = convdtest.uid()
    with convd.client() as c:
        fill(c, me)
    # nothing on stdin and no --yes: refused, nothing deleted
    r = convctl(convd, "forget", me)
    assert r.returncode == 2, r.stderr
    assert "--yes" in r.stderr
    assert rows_of(schema, me)[H] == 12
    # an answer other than yes: nothing deleted
    r = convctl(convd, "forget", me, answer="no\n")
    assert r.returncode != 0 and rows_of(schema, me)[H] == 12
    # yes: forgotten
    r = convctl(convd, "forget", me, answer="yes\n")
    assert r.returncode == 0, r.stderr
    assert "12 messages" in r.stdout
    assert rows_of(schema, me)[H] == 0
    # --yes asks nothing; --json; one platform
    with convd.client() as c:
        fill(c, me)
    r = convctl(convd, "--json", "--platform", "slack", "forget", "--yes", me)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"messages": 6, "threads": 1,
                                    "states": 1, "idempotency_keys": 3}
    assert rows_of(schema, me)[H] == 6
