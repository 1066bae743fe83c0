#!/usr/bin/python3
"""Retention on the plain and on the partitioned history layout (issue 19,
point 7), side by side, each on a private PostgreSQL (fsync on):

  - ROWS messages of 400 bytes over 10,000 users, two thirds of them
    expired (60 to 90 days old: the partition p0 of the partitioned
    layout), the rest written in the retention window (this month);
  - then one `cleanup_old_conversations` through convd, with 8 clients
    reading history (get_recent_conversations) all along;
  - reported: how long the cleanup took, the WAL it wrote, the space the
    history takes before and after (on disk, what the file system gets
    back), and the readers' p99 during the cleanup against before it.

Usage (after building in ./build):
    bench/partition_retention.py [--rows 20000000] [--seconds 10]
Prints a Markdown table (BENCHMARKS.md keeps the latest one).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import convdtest  # noqa: E402

BUILD = os.environ.get("CONVD_BUILDDIR", os.path.join(HERE, "..", "build"))
BENCH = os.path.join(BUILD, "convd-bench")
H = "simple_conversation_history"
CHUNK = 1_000_000


def bench(sock, seconds, clients=8):
    o = subprocess.run([BENCH, "-s", sock, "-c", str(clients), "-T",
                        str(seconds), "-m", "get_recent_conversations",
                        "--json"], stdout=subprocess.PIPE, text=True,
                       check=True).stdout
    return json.loads(o.strip().splitlines()[-1])["methods"][
        "get_recent_conversations"]


def size(pg):
    """Bytes on disk of the history: its table(s), indexes, TOAST."""
    return int(pg.psql(f"SELECT CASE WHEN relkind = 'p' THEN (SELECT "
                       f"sum(pg_total_relation_size(relid)) FROM "
                       f"pg_partition_tree('{H}')) ELSE "
                       f"pg_total_relation_size(oid) END FROM pg_class "
                       f"WHERE oid = '{H}'::regclass"))


def wal(pg):
    return pg.psql("SELECT pg_current_wal_lsn()")


def one(layout, rows, seconds):
    pg = convdtest.PgCluster().initdb(
        "fsync = on\nsynchronous_commit = on\nshared_buffers = 512MB\n"
        "max_wal_size = 8GB\nmax_connections = 100\n")
    pg.start()
    pg.createdb()
    d = None
    try:
        convdtest.setup_schema(pg, layout=layout)
        # the cut-off: the start of this month (UTC), which is p0's bound
        # on the partitioned layout, expressed in days_to_keep
        days = int(pg.psql("SELECT floor(extract(epoch FROM now() - "
                           "(date_trunc('month', now() AT TIME ZONE 'UTC') "
                           "AT TIME ZONE 'UTC')) / 86400)"))
        old = rows * 2 // 3
        t0 = time.time()
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            pg.psql(
                f"INSERT INTO {H} (user_id, platform, model_provider, role,"
                f" content, created_at) SELECT 'u' || (i % 10000), 'line',"
                f" 'anthropic', 'user', repeat('y', 400), CASE WHEN i <="
                f" {old} THEN now() - interval '60 days' - (i % 2592000)"
                f" * interval '1 second' ELSE now() - (i % {max(days, 1)}"
                f" * 86400 + i % 86400) * interval '1 second' END"
                f" FROM generate_series({start + 1}, {start + n}) i")
        pg.psql(f"VACUUM ANALYZE {H}")
        pg.psql("CHECKPOINT")
        load = time.time() - t0
        d = convdtest.Convd(pg, extra={"retention": {"days_to_keep": 0},
                                       "pool": {"size": 16}}).start()
        base = bench(d.socket, seconds)
        before_size, before_wal = size(pg), wal(pg)
        result = {}

        def cleanup():
            t = time.time()
            with d.client(timeout=3600) as c:
                result["r"] = c.call("cleanup_old_conversations", days)
            result["took"] = time.time() - t
        th = threading.Thread(target=cleanup)
        th.start()
        during = bench(d.socket, seconds)
        th.join()
        wal_bytes = int(pg.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(),"
                                f" '{before_wal}')"))
        after_size = size(pg)
        return {"layout": layout, "rows": rows, "load_s": load,
                "deleted": result["r"]["deleted"], "took": result["took"],
                "wal": wal_bytes, "before": before_size,
                "after": after_size, "p99_base": base["p99_ms"],
                "p99_during": during["p99_ms"], "days": days}
    finally:
        if d:
            d.stop()
        pg.destroy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    res = [one(lay, a.rows, a.seconds) for lay in ("plain", "partitioned")]
    la = os.getloadavg()
    print(f"{a.rows:,} rows, two thirds expired; load average at the end "
          f"{la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| layout | deleted | retention time | WAL | history size before"
          " -> after | reads p99 before / during |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for r in res:
        print(f"| {r['layout']} | {r['deleted']:,} | {r['took']:.1f} s | "
              f"{r['wal'] / 2**10:,.0f} KiB | {r['before'] / 2**20:,.0f} MiB"
              f" -> {r['after'] / 2**20:,.0f} MiB | {r['p99_base']:.2f} ms /"
              f" {r['p99_during']:.2f} ms |")


if __name__ == "__main__":
    main()
