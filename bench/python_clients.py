#!/usr/bin/python3
"""add_message throughput of the Python client: the blocking
ConversationManager from threads against AsyncConversationManager from
asyncio tasks (pipelined), on one private PostgreSQL and one convd.

    CONVD_BUILDDIR=build /usr/bin/python3 bench/python_clients.py [--seconds N]

The cluster is convdtest's (fsync off): this compares the clients, not
the disk.  Prints a Markdown table (BENCHMARKS.md keeps the latest one).
"""

import argparse
import asyncio
import os
import shutil
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
import benchlib  # noqa: E402
import convdtest  # noqa: E402
from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConversationManager)

CONTENT = "x" * 400


def sync_run(sock, threads, seconds):
    m = ConversationManager(sock, pool_size=threads)
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(t):
        user = f"bench-sync-{threads}-{t}"
        while time.monotonic() < stop:
            m.add_message(user, "anthropic", "user", CONTENT)
            counts[t] += 1
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    m.close()
    return sum(counts) / (time.monotonic() - t0)


def async_run(sock, tasks, connections, seconds):
    async def main():
        counts = [0] * tasks
        async with AsyncConversationManager(sock,
                                            connections=connections) as m:
            await m.ping()
            stop = time.monotonic() + seconds

            async def work(t):
                user = f"bench-async-{tasks}-{t}"
                while time.monotonic() < stop:
                    await m.add_message(user, "anthropic", "user", CONTENT)
                    counts[t] += 1
            t0 = time.monotonic()
            await asyncio.gather(*(work(t) for t in range(tasks)))
            return sum(counts) / (time.monotonic() - t0)
    return asyncio.run(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    pg = benchlib.cluster()
    d = None
    try:
        d = convdtest.Convd(pg, extra={"pool": {"size": 20,
                                                "max_overflow": 30}})
        d.start()
        rows = []
        for threads in (8, 32):
            rate = sync_run(d.socket, threads, args.seconds)
            rows.append((f"ConversationManager, {threads} threads",
                         f"{threads} (one per thread)", rate))
        for tasks, conns in ((32, 1), (1000, 1), (1000, 4)):
            rate = async_run(d.socket, tasks, conns, args.seconds)
            rows.append((f"AsyncConversationManager, {tasks} tasks",
                         str(conns), rate))
        print("| client | connections | add_message/s |")
        print("| --- | ---: | ---: |")
        for name, conns, rate in rows:
            print(f"| {name} | {conns} | {rate:,.0f} |")
    finally:
        if d:
            d.stop()
            shutil.rmtree(d.tmp, ignore_errors=True)
        pg.destroy()


if __name__ == "__main__":
    main()
