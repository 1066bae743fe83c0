#!/usr/bin/python3
"""get_context against get_recent_conversations on 1M messages (issue 18,
point 1: "p99 within 2x of get_recent_conversations").

A private PostgreSQL (fsync on) set up by `convctl db setup` at head, ROWS
messages over USERS users written by SQL (the n-th busiest user has
~ 1/sqrt(n) of them, as in bench/search_index.py: the busiest about
5,000), each conversation starting with a system message, some turns
being OpenAI tool exchanges (an assistant message with tool_calls and the
tool results) and a few messages with stored token counts; then convd,
and one client sending, for random users, alternately

  get_recent_conversations limit=10 (20 messages) and limit=40 (80)
  get_context max_tokens=4000 (about 85 of these messages)
  get_context max_tokens=4000 include_system=true

one request at a time (latency, not throughput), REQUESTS of each after a
warm-up.  Prints a Markdown table of p50/p90/p99/max per method.

Usage (after building in ./build):
    bench/context_latency.py [--rows 1000000] [--users 10000]
                             [--requests 3000]
"""

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_BUILDDIR", os.path.join(HERE, "..", "build"))
import benchlib  # noqa: E402
import convdtest  # noqa: E402

H = "simple_conversation_history"


def load(pg, rows, users):
    """The messages, by SQL: user U's k-th message (k from 1)."""
    # the number of messages of the n-th user: ~ rows / sqrt(n) / S
    s = sum(1 / (n + 1) ** 0.5 for n in range(users))
    pg.psql(f"""
CREATE TEMP TABLE counts AS
  SELECT n, greatest(2, (({rows} / {s}) / sqrt(n + 1))::int) AS c
  FROM generate_series(0, {users - 1}) n;
INSERT INTO {H} (user_id, platform, model_provider, role, content,
                 content_mp, tool_call_id, tokens, created_at)
SELECT 'U' || lpad(n::text, 5, '0'), 'line', 'openai',
  CASE WHEN k = 1 THEN 'system'
       WHEN k % 10 = 5 THEN 'assistant'
       WHEN k % 10 = 6 THEN 'tool'
       WHEN k % 2 = 0 THEN 'user' ELSE 'assistant' END,
  CASE WHEN k = 1 THEN 'You are a helpful assistant for a LINE bot.'
       WHEN k % 10 = 5 THEN ''
       WHEN k % 10 = 6 THEN '{{"temperature": 28, "sky": "clear"}}'
       WHEN k % 3 = 0 THEN '請問明天早上去高雄的高鐵還有位子嗎？我想訂兩張票，謝謝。'
       ELSE 'Could you remind me what we decided about the meeting '
            || 'schedule for next week, and book a room for it?' END,
  CASE WHEN k % 10 = 5 THEN
    -- {{"tool_calls": [{{"id": "call_<n>_<k>", "type": "function"}}]}}
    decode('81aa746f6f6c5f63616c6c739182a26964', 'hex')
      || convert_to_str8('call_' || n || '_' || k)
      || decode('a474797065a866756e6374696f6e', 'hex')
  END,
  CASE WHEN k % 10 = 6 THEN 'call_' || n || '_' || (k - 1) END,
  CASE WHEN k % 7 = 0 THEN 40 END,
  timestamptz '2026-01-01' + n * interval '1 second'
    + k * interval '1 minute'
FROM counts, generate_series(1, c) k;
ANALYZE {H};
""")
    return int(pg.psql(f"SELECT count(*) FROM {H}"))


STR8 = """
CREATE FUNCTION convert_to_str8(s text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS
$$ SELECT decode('d9', 'hex') || set_byte('\\x00'::bytea, 0,
   octet_length(convert_to(s, 'UTF8'))) || convert_to(s, 'UTF8') $$;
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    pg = benchlib.cluster("fsync = on\nshared_buffers = 256MB\n")
    d = None
    try:
        pg.psql(STR8)
        t = time.time()
        n = load(pg, args.rows, args.users)
        print(f"{n} messages over {args.users} users loaded in "
              f"{time.time() - t:.0f} s", file=sys.stderr)
        d = convdtest.Convd(pg).start()
        calls = {
            "get_recent_conversations limit=10": lambda c, u: c.call(
                "get_recent_conversations", user_id=u, provider="openai",
                limit=10),
            "get_recent_conversations limit=40": lambda c, u: c.call(
                "get_recent_conversations", user_id=u, provider="openai",
                limit=40),
            "get_context max_tokens=4000": lambda c, u: c.call(
                "get_context", user_id=u, provider="openai",
                max_tokens=4000),
            "get_context max_tokens=4000 include_system": lambda c, u:
                c.call("get_context", user_id=u, provider="openai",
                       max_tokens=4000, include_system=True),
        }
        lat = {k: [] for k in calls}
        rows = {k: 0 for k in calls}
        rng = random.Random(18)
        with d.client(timeout=60) as c:
            for i in range(args.requests + 300):
                u = f"U{rng.randrange(args.users):05d}"
                for name, fn in calls.items():
                    t0 = time.perf_counter()
                    r = fn(c, u)
                    dt = (time.perf_counter() - t0) * 1000
                    if i >= 300:        # after the warm-up
                        lat[name].append(dt)
                        rows[name] += len(r["messages"] if isinstance(
                            r, dict) else r)
        print(f"\n{n} messages, {args.users} users; {args.requests} "
              "requests of each, one at a time, random users\n")
        print("| method | rows per answer | p50 ms | p90 ms | p99 ms "
              "| max ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in calls:
            x = lat[name]
            print(f"| {name} | {rows[name] / len(x):.0f} "
                  f"| {benchlib.pct(x, 50):.2f} | {benchlib.pct(x, 90):.2f} "
                  f"| {benchlib.pct(x, 99):.2f} | {max(x):.2f} |")
    finally:
        benchlib.cleanup(pg, d)


if __name__ == "__main__":
    main()
