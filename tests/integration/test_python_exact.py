"""The Python client gives structured values back exactly and can send
them back: a MessagePack timestamp inside content or metadata (what the
Node client packs for a Date) stays a msgpack.Timestamp to the
nanosecond, and export -> import stores the same bytes (regression: the
client decoded it into a datetime it could not pack, so import_message
raised TypeError, and the nanoseconds were lost)."""

import sys

import msgpack

import convdtest
from convdtest import sql_literal as q, uid

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConversationManager)

HIST = "simple_conversation_history"
TS = msgpack.Timestamp(1796296906, 123456789)


def test_timestamp_in_content_round_trips(convd, pg):
    user, copy = uid("src"), uid("dst")
    content = [{"type": "event", "at": TS, "data": b"\x00\xff"}]
    with ConversationManager(convd.socket) as m:
        m.add_message(user, "openai", "assistant", content,
                      conversation_id="c1", metadata={"seen": TS})
        [row] = m.get_recent_conversations(user, "openai",
                                           conversation_id="c1")
        assert row["content"] == content
        assert row["content"][0]["at"].nanoseconds == 123456789
        assert isinstance(row["created_at"], str)   # the row's own time
        for r in m.export_history(user, conversation_id="c1"):
            assert m.import_message(copy, r["provider"], r["role"],
                                    r["content"], r["created_at"],
                                    conversation_id=r["conversation_id"],
                                    metadata=r["metadata"]) is True
    sql = (f"SELECT encode(content_mp, 'hex'), encode(metadata, 'hex')"
           f" FROM {HIST} WHERE user_id = ")
    assert pg.psql(sql + q(copy)) == pg.psql(sql + q(user))
    assert "d7ff" in pg.psql(sql + q(user))      # timestamp 64, ext -1


def test_timestamp_in_state_asyncio(convd):
    import asyncio

    async def go():
        m = AsyncConversationManager(convd.socket)
        try:
            u = uid()
            await m.set_state(u, "openai", {"at": TS})
            st = await m.get_state(u, "openai")
            assert st["state"] == {"at": TS}
            assert isinstance(st["updated_at"], str)
        finally:
            await m.close()
    asyncio.run(go())
