#!/usr/bin/env python3
"""The LINE bot's flow on asyncio (aiohttp, FastAPI, the async LINE SDK).

    python3 examples/line_bot_async.py [SOCKET]

line_bot_flow.py's handler written with AsyncConversationManager: one
manager for the whole process, shared by every webhook being handled at
the same moment (their requests are pipelined over a few connections).
Here five users' webhooks arrive at once, each with two messages.
"""

import asyncio
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

from convd_client import AsyncConversationManager, ConvdError  # noqa: E402
from line_bot_flow import (HISTORY_TURNS, fake_model_reply,  # noqa: E402
                           fake_openai_create_thread)


async def handle_message(manager, user_id, provider, text, event_id=None):
    """One incoming LINE message (event_id: the webhook's
    webhookEventId); returns the bot's answer."""
    if provider == "openai":
        if text == "/reset":
            await manager.delete_thread_id(user_id)
            return "Your conversation was reset."
        thread_id = await manager.get_thread_id_by_user_id(user_id)
        if thread_id is None:
            thread_id = fake_openai_create_thread()
            await manager.save_thread_id(user_id, thread_id)
        return f"(OpenAI would answer in {thread_id})"

    if text == "/reset":
        await manager.clear_user_history(user_id, provider)
        return "Your conversation was reset."
    await manager.add_message(user_id, provider, "user", text,
                              idempotency_key=event_id)
    context = await manager.get_recent_conversations(
        user_id, provider, limit=HISTORY_TURNS.get(provider, 10))
    reply = fake_model_reply(provider, context)  # await your model here
    await manager.add_message(user_id, provider, "assistant", reply,
                              idempotency_key=event_id and event_id + ":reply")
    return reply


async def one_user(manager, user):
    for text in ("Hello", "What is the capital of Taiwan?"):
        await handle_message(manager, user, "anthropic", text,
                             uuid.uuid4().hex)
    await handle_message(manager, user, "openai", "Hello")
    return user, await manager.get_conversation_count(user)


async def main():
    socket_path = sys.argv[1] if len(sys.argv) > 1 else None
    async with AsyncConversationManager(socket_path) as manager:
        users = ["U" + uuid.uuid4().hex for _ in range(5)]
        try:
            done = await asyncio.gather(*(one_user(manager, u)
                                          for u in users))
            for user, count in done:
                print(f"{user}: messages: {count}, thread: "
                      f"{await manager.query_thread(user)}")
            for user in users:
                await handle_message(manager, user, "anthropic", "/reset")
                await handle_message(manager, user, "openai", "/reset")
            print("messages after /reset:",
                  sum([await manager.get_conversation_count(u)
                       for u in users]))
        except ConvdError as e:
            print(f"convd: {e.code}: {e.message}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
