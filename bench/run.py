#!/usr/bin/python3
"""The benchmark suite (scripts/bench.sh runs it after building).

Sets up a private PostgreSQL (fsync on: real commits), the schema with
`convctl db setup`, a real convd, and measures, side by side in one run:
  1. add_message vs pgbench's prepared single-row INSERT (32 clients),
     and vs the seed's SQLAlchemy approach (bench/seed_orm.py);
  2. get_recent_conversations (limit 10 = 20 rows) on 1M rows over 10,000
     users vs pgbench's equivalent SELECT;
  3. ping vs redis-server PING on a Unix socket;
  4. convd's RSS idle and with 10,000 connected idle clients;
  5. history p99 while a retention run deletes 1M expired rows, vs without;
  6. with --scale: history p99 at 10M rows vs at 10k rows.
Prints a Markdown report (BENCHMARKS.md keeps the latest one).
"""

import argparse
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import benchlib  # noqa: E402
import convdtest  # noqa: E402

BUILD = os.environ.get("CONVD_BUILDDIR", os.path.join(HERE, "..", "build"))
BENCH = os.path.join(BUILD, "convd-bench")
out = []


def say(line=""):
    print(line, flush=True)
    out.append(line)


def run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{r.stdout}")
    return r.stdout


def bench(sock, mix, seconds, clients=32, extra=()):
    """convd-bench --json; returns {method: {...}}."""
    o = run([BENCH, "-s", sock, "-c", str(clients), "-T", str(seconds),
             "-m", mix, "--json"] + list(extra))
    import json
    return json.loads(o.strip().splitlines()[-1])["methods"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scale", action="store_true",
                    help="also load 10M rows for the scale test (slow)")
    ap.add_argument("--without-search-index", action="store_true",
                    help="drop the search index (revision 9e4f0a6b3c18) after"
                    " set-up: the write path of issue 17's model alone, as a"
                    " bot that never searches runs it (README: what the"
                    " search index costs)")
    a = ap.parse_args()
    secs = a.seconds

    pg = benchlib.cluster(
        "fsync = on\nsynchronous_commit = on\nshared_buffers = 512MB\n"
        "max_connections = 300\n")
    d = None
    try:
        if a.without_search_index:
            pg.psql("DROP INDEX simple_conversation_history_search_idx")
        d = convdtest.Convd(pg, extra={
            "pool": {"size": 20, "max_overflow": 30, "timeout": 30},
            "server": {"max_clients": 20000},
            "retention": {"days_to_keep": 0},
            "log": {"level": "notice"}})
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        d.start()
        pgconn = f"host={pg.sockdir} port={pg.port} dbname={pg.dbname} user={pg.user}"

        cpu = ""
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else "?"
        pgver = run([pg.bin("postgres"), "--version"]).strip()
        say(f"## Results ({time.strftime('%Y-%m-%d')})")
        say()
        say(f"- machine: {os.cpu_count()} cores ({cpu}), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB, "
            f"{platform.platform()}")
        say(f"- {pgver}, local, Unix socket, fsync on; convd pool size 20, "
            f"max_overflow 30; 32 clients, depth 1, 2 client threads "
            f"(convd-bench -j 2, pgbench -j 2), {secs} s per run")
        if a.without_search_index:
            say("- without the search index (--without-search-index)")
        say()

        # 4a. idle RSS (before any load)
        time.sleep(1)
        idle_rss = rss_kb(d.proc.pid)

        # 1. writes
        say("| work | convd | other | ratio | target |")
        say("| --- | ---: | ---: | ---: | --- |")
        cmp = run([BENCH, "-s", d.socket, "-c", "32", "-T", str(secs),
                   "--compare", "--pg", pgconn])
        for line in cmp.splitlines():
            m = re.match(r"\s+(.+?) vs (.+?)\s+convd\s+(\d+)/s\s+other\s+(\d+)/s\s+ratio ([\d.]+)x \(target ([\d.]+)x", line)
            if m:
                say(f"| {m.group(1)} vs {m.group(2)} | {int(m.group(3)):,}/s "
                    f"| {int(m.group(4)):,}/s | **{m.group(5)}x** | >= {m.group(6)}x |")
            elif "the other side failed" in line:
                say(f"| {line.strip()} | | | | |")
        add_rate = bench(d.socket, "add_message", secs)["add_message"]["per_second"]
        seed = run(["/usr/bin/python3", os.path.join(HERE, "seed_orm.py"),
                    "--url", f"postgresql+psycopg2://{pg.user}@/{pg.dbname}"
                    f"?host={pg.sockdir}&port={pg.port}",
                    "--clients", "32", "--seconds", str(secs)])
        seed_rate = float(re.search(r"([\d.]+)/s", seed).group(1))
        say(f"| add_message vs the seed's ORM (session + commit per message) "
            f"| {add_rate:,.0f}/s | {seed_rate:,.0f}/s | "
            f"**{add_rate / seed_rate:.1f}x** | >= 10x |")

        # 2. get_recent on 1M rows over 10,000 users
        pg.psql("TRUNCATE simple_conversation_history")
        pg.psql("INSERT INTO simple_conversation_history (user_id, platform,"
                " model_provider, role, content, created_at)"
                " SELECT 'bench-user-' || (i % 10000), 'line', 'anthropic',"
                " CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,"
                " repeat('x', 400), now() - (i || ' ms')::interval"
                " FROM generate_series(1, 1000000) i")
        pg.psql("VACUUM ANALYZE simple_conversation_history")
        r = bench(d.socket, "get_recent_conversations", secs)["get_recent_conversations"]
        script = os.path.join(pg.tmp, "select.sql")
        with open(script, "w") as f:
            f.write("\\set uid random(0, 9999)\n"
                    "SELECT id, role, content, created_at, tool_call_id, name,"
                    " model, tokens, metadata, content_mp FROM"
                    " simple_conversation_history WHERE user_id = 'bench-user-' || :uid"
                    " AND platform = 'line' AND model_provider = 'anthropic'"
                    " AND conversation_id = ''"
                    " ORDER BY created_at DESC, id DESC LIMIT 20;\n")
        o = run([pg.bin("pgbench"), "-n", "-M", "prepared", "-c", "32", "-j",
                 "2", "-T", str(secs), "-f", script, pgconn])
        tps = float(re.search(r"tps = ([\d.]+)", o).group(1))
        say(f"| get_recent_conversations on 1M rows vs pgbench SELECT "
            f"| {r['per_second']:,.0f}/s | {tps:,.0f}/s | "
            f"**{r['per_second'] / tps:.2f}x** | >= 0.8x |")
        say()
        base_p99 = r["p99_ms"]
        say(f"- get_recent_conversations latency on 1M rows: p50 {r['p50_ms']:.2f} ms,"
            f" p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")

        # 5. retention deleting 1M expired rows under load
        pg.psql("INSERT INTO simple_conversation_history (user_id, platform,"
                " model_provider, role, content, created_at)"
                " SELECT 'old-user-' || (i % 10000), 'line', 'anthropic', 'user',"
                " repeat('y', 400), now() - interval '60 days' - (i || ' ms')::interval"
                " FROM generate_series(1, 1000000) i")
        pg.psql("VACUUM ANALYZE simple_conversation_history")
        base = bench(d.socket, "get_recent_conversations", secs,
                     clients=8)["get_recent_conversations"]
        result = {}

        def cleanup():
            t0 = time.time()
            with d.client(timeout=600) as c:
                result["deleted"] = c.call("cleanup_old_conversations", 30)["deleted"]
            result["took"] = time.time() - t0
        t = threading.Thread(target=cleanup)
        t.start()
        during = bench(d.socket, "get_recent_conversations", secs,
                       clients=8)["get_recent_conversations"]
        t.join()
        say(f"- retention deleting {result['deleted']:,} expired rows took "
            f"{result['took']:.1f} s; history p99 with 8 clients meanwhile "
            f"{during['p99_ms']:.2f} ms vs {base['p99_ms']:.2f} ms without "
            f"(**{during['p99_ms'] / base['p99_ms']:.2f}x**, target <= 2x)")

        # 4b. memory
        conns = []
        for _ in range(10000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            conns.append(s)
        with d.client() as c:
            assert c.call("stats")["clients"]["connected"] >= 10000
        busy_rss = rss_kb(d.proc.pid)
        for s in conns:
            s.close()
        say(f"- RSS: {idle_rss / 1024:.1f} MB idle with the default pool "
            f"(target < 20 MB); {busy_rss / 1024:.1f} MB with 10,000 connected "
            f"idle clients (target < 100 MB)")

        # 6. scale
        if a.scale:
            pg.psql("TRUNCATE simple_conversation_history")
            pg.psql("INSERT INTO simple_conversation_history (user_id, platform,"
                    " model_provider, role, content) SELECT 'bench-user-' || (i % 500),"
                    " 'line', 'anthropic', 'user', repeat('x', 400)"
                    " FROM generate_series(1, 10000) i")
            pg.psql("VACUUM ANALYZE simple_conversation_history")
            small = bench(d.socket, "get_recent_conversations", secs, clients=8,
                          extra=["--users", "500"])["get_recent_conversations"]
            pg.psql("INSERT INTO simple_conversation_history (user_id, platform,"
                    " model_provider, role, content) SELECT 'scale-user-' || (i % 1000000),"
                    " 'line', 'anthropic', 'user', repeat('z', 100)"
                    " FROM generate_series(1, 9990000) i")
            pg.psql("VACUUM ANALYZE simple_conversation_history")
            big = bench(d.socket, "get_recent_conversations", secs, clients=8,
                        extra=["--users", "500"])["get_recent_conversations"]
            say(f"- scale: history p99 {big['p99_ms']:.2f} ms at 10M rows vs "
                f"{small['p99_ms']:.2f} ms at 10k rows "
                f"(**{big['p99_ms'] / small['p99_ms']:.2f}x**, target <= 1.5x)")
        say()
        say("Reproduce: `sudo ./scripts/bench.sh" + (" --scale" if a.scale else "") + "`")
    finally:
        benchlib.cleanup(pg, d)


if __name__ == "__main__":
    main()
