#!/usr/bin/env python3
"""The LINE bot's flow against convd, step by step.

    python3 examples/line_bot_flow.py [SOCKET]

What the bot does with every incoming message, with the models replaced by
stand-ins so that it runs anywhere convd runs:

- an OpenAI (Assistant API) user has a thread: look it up, create and save
  one on the first message, delete it on /reset;
- an Anthropic or Gemini user has a history: store the user's message
  before calling the model, fetch the recent turns as the model's context,
  store the reply after; /reset clears the history.

The user's message is stored with the webhook's event id as idempotency
key, and the reply with the event id and ":reply": LINE redelivers a
webhook it thinks was lost, and the redelivery must store neither twice.
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

from convd_client import ConversationManager, ConvdError  # noqa: E402

HISTORY_TURNS = {"anthropic": 5, "gemini": 20}


def fake_openai_create_thread():
    return "thread_" + uuid.uuid4().hex[:24]


def fake_model_reply(provider, context):
    last = context[-1]["content"] if context else ""
    return f"[{provider}] you said {last!r} ({len(context)} messages of context)"


def handle_message(manager, user_id, provider, text, event_id=None):
    """One incoming LINE message (event_id: the webhook's
    webhookEventId); returns the bot's answer."""
    if provider == "openai":
        if text == "/reset":
            manager.delete_thread_id(user_id)
            return "Your conversation was reset."
        thread_id = manager.get_thread_id_by_user_id(user_id)
        if thread_id is None:
            thread_id = fake_openai_create_thread()
            manager.save_thread_id(user_id, thread_id)
        return f"(OpenAI would answer in {thread_id})"

    if text == "/reset":
        manager.clear_user_history(user_id, provider)
        return "Your conversation was reset."
    # the user's message first, so that it is in the context...
    manager.add_message(user_id, provider, "user", text,
                        idempotency_key=event_id)
    context = manager.get_recent_conversations(
        user_id, provider, limit=HISTORY_TURNS.get(provider, 10))
    reply = fake_model_reply(provider, context)
    # ...and the reply once the model has answered
    manager.add_message(user_id, provider, "assistant", reply,
                        idempotency_key=event_id and event_id + ":reply")
    return reply


def main():
    socket_path = sys.argv[1] if len(sys.argv) > 1 else None
    manager = ConversationManager(socket_path)
    user = "U" + uuid.uuid4().hex
    try:
        print(handle_message(manager, user, "openai", "Hello"))
        print("thread:", manager.get_thread_id_by_user_id(user))
        print(handle_message(manager, user, "openai", "/reset"))
        print("thread after /reset:", manager.get_thread_id_by_user_id(user))

        for text in ("Hello", "What is the capital of Taiwan?"):
            event_id = uuid.uuid4().hex  # LINE's webhookEventId
            print(handle_message(manager, user, "anthropic", text, event_id))
        # LINE delivers the last webhook again: nothing is stored twice
        handle_message(manager, user, "anthropic", text, event_id)
        print("after a redelivery, messages:",
              manager.get_conversation_count(user))
        for m in manager.get_recent_conversations(user, "anthropic"):
            print(f"  {m['created_at']}  {m['role']:9}  {m['content']}")
        print("messages:", manager.get_conversation_count(user))
        print(handle_message(manager, user, "anthropic", "/reset"))
        print("messages after /reset:", manager.get_conversation_count(user))
    except ConvdError as e:
        print(f"convd: {e.code}: {e.message}", file=sys.stderr)
        return 1
    finally:
        manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
