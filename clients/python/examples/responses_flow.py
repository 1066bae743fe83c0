#!/usr/bin/env python3
"""The OpenAI Responses API flow of clients/python/README.md, runnable
offline: a bot keeps each conversation's previous_response_id as convd
state and its history, tool calls and results included, in convd.

FakeOpenAI stands in for `openai.OpenAI()`: its responses.create()
answers like the real one (output items of type "function_call" with a
call_id, then a message), so on_message() below is the README's code.
Replace it with the real client to talk to OpenAI.

    python3 examples/responses_flow.py [SOCKET]
"""

import itertools
import json
import os
import sys
import uuid

# the module from this checkout when it is not installed
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

from convd_client import ConflictError, ConversationManager  # noqa: E402

TOOLS = [{"type": "function", "name": "get_weather",
          "parameters": {"type": "object",
                         "properties": {"city": {"type": "string"}}}}]


class _Item(dict):
    """An output item, with attribute access and model_dump() as the
    SDK's pydantic models have."""
    __getattr__ = dict.__getitem__

    def model_dump(self):
        return dict(self)


class FakeOpenAI:
    """responses.create() as the real API answers: a question about the
    weather gets a function call first, the call's output an answer."""

    def __init__(self):
        self.responses = self
        self.ids = itertools.count(1)
        self.seen = []          # previous_response_id of each request

    def create(self, model, input, tools=None, previous_response_id=None):
        self.seen.append(previous_response_id)
        rid = f"resp_{next(self.ids):04d}"
        usage = _Item(input_tokens=50, output_tokens=12)
        if isinstance(input, str) and "weather" in input:
            call = _Item(type="function_call", call_id=f"call_{rid[5:]}",
                         name="get_weather", arguments='{"city": "Taipei"}',
                         id=f"fc_{rid[5:]}", status="completed")
            return _Item(id=rid, model=model, output=[call], usage=usage,
                         output_text="")
        if isinstance(input, list):
            text = "It is " + json.loads(input[0]["output"])["temp"] + \
                " in Taipei."
        else:
            text = f'You said "{input}".'
        msg = _Item(type="message", role="assistant",
                    content=[{"type": "output_text", "text": text}])
        return _Item(id=rid, model=model, output=[msg], usage=usage,
                     output_text=text)


def run_tool(name, arguments):
    return json.dumps({"temp": "21°C", "args": json.loads(arguments)})


def on_message(openai, store, user, text, event_id, conv="chat"):
    store.add_message(user, "openai", "user", text, conversation_id=conv,
                      idempotency_key=event_id)
    st = store.get_state(user, "openai", conv)        # None on the first turn
    prev = st["state"]["previous_response_id"] if st else None
    resp = openai.responses.create(model="gpt-5", input=text, tools=TOOLS,
                                   previous_response_id=prev)
    while calls := [o for o in resp.output if o.type == "function_call"]:
        store.add_message(user, "openai", "assistant",
                          [c.model_dump() for c in calls],
                          conversation_id=conv, model=resp.model,
                          tokens=resp.usage.output_tokens,
                          idempotency_key=f"{event_id}:{resp.id}")
        outputs = []
        for c in calls:
            result = run_tool(c.name, c.arguments)
            store.add_message(user, "openai", "tool", result,
                              conversation_id=conv, tool_call_id=c.call_id,
                              name=c.name,
                              idempotency_key=f"{event_id}:{c.call_id}")
            outputs.append({"type": "function_call_output",
                            "call_id": c.call_id, "output": result})
        resp = openai.responses.create(model="gpt-5", input=outputs,
                                       tools=TOOLS,
                                       previous_response_id=resp.id)
    store.add_message(user, "openai", "assistant", resp.output_text,
                      conversation_id=conv, model=resp.model,
                      tokens=resp.usage.output_tokens,
                      idempotency_key=f"{event_id}:reply")
    try:
        store.set_state(user, "openai", {"previous_response_id": resp.id},
                        conv, expected_version=st["version"] if st else 0)
    except ConflictError:
        # another worker finished a turn meanwhile: its response is the
        # chain's head now
        pass
    return resp.output_text


def main():
    store = ConversationManager(sys.argv[1] if len(sys.argv) > 1 else None)
    openai = FakeOpenAI()
    user = "U" + uuid.uuid4().hex
    print("reply:", on_message(openai, store, user,
                               "What's the weather in Taipei?", "evt-1"))
    print("reply:", on_message(openai, store, user, "Thanks!", "evt-2"))
    print("chained from:", openai.seen)
    st = store.get_state(user, "openai", "chat")
    print(f"state version {st['version']}: "
          f"{st['state']['previous_response_id']}")
    ctx = store.get_context(user, "openai", 4000, conversation_id="chat")
    for m in ctx["messages"]:
        what = m["content"] if isinstance(m["content"], str) else \
            ",".join(p["type"] for p in m["content"])
        print(f"  {m['role']:9} {m.get('tool_call_id', ''):9} {what}")
    print("tokens:", ctx["total_tokens"])
    # two workers that read the same version: the second one's set_state
    # is refused
    v = st["version"]
    store.set_state(user, "openai", {"previous_response_id": "resp_a"},
                    "chat", expected_version=v)
    try:
        store.set_state(user, "openai", {"previous_response_id": "resp_b"},
                        "chat", expected_version=v)
        print("conflict: False")
    except ConflictError as e:
        print("conflict: True", e.code)
    print("conversations:", [(c["conversation_id"], c["message_count"])
                             for c in store.iter_conversations(user)])
    print("forgotten:", store.forget_user(user))
    store.close()


if __name__ == "__main__":
    main()
