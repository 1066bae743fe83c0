#!/usr/bin/python3
"""The conversations revision (7c3d9e1a2b45, issue 17 point 5) applied by
`convctl db upgrade` to a live database, on a private PostgreSQL (fsync
on):

  - ROWS history rows (400 bytes of content, 10,000 users) at the previous
    revision 5a1e0c2f7b90, on the plain layout (or --layout partitioned:
    converted by `convctl db partition` first);
  - WRITERS threads inserting one message per transaction all along, as
    convd's add_message does, each insert timed;
  - `convctl db upgrade` while they write.

Reported:
  - each statement of the revision (the server's log_min_duration_statement
    for convctl's session): the ALTER TABLE's DO block (its ACCESS
    EXCLUSIVE lock is held from the moment it is granted to the end of that
    transaction), each CREATE/DROP INDEX CONCURRENTLY;
  - the locks convctl's backend held on the history table, sampled from
    pg_locks every 10 ms: mode, first and last time seen, granted or not;
  - the writers' lock waits the server logged (log_lock_waits with
    deadlock_timeout = 10 ms: every wait longer than 10 ms, with its
    length), and their insert latency before and during the upgrade
    (p50, p99, max), the inserts done, errors;
  - the history's relfilenode before and after (a rewrite would change it)
    and whether the new index is valid.

Usage (after building in ./build):
    bench/online_migration.py [--rows 10000000] [--writers 4]
        [--layout plain|partitioned]
Prints a Markdown report (BENCHMARKS.md keeps the latest one).
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import convdtest  # noqa: E402
from benchlib import pct  # noqa: E402

H = "simple_conversation_history"
BEFORE = "5a1e0c2f7b90"
CHUNK = 1_000_000
APP = "convctl-upgrade"


class Writers:
    def __init__(self, pg, n):
        self.dsn = (f"host={pg.sockdir} port={pg.port} dbname={pg.dbname} "
                    f"user={pg.user} application_name=writer")
        self.stop = threading.Event()
        self.samples = []           # (start monotonic, latency s)
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(n)]

    def run(self, i):
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        cur = conn.cursor()
        k = 0
        mine = []
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                cur.execute(f"INSERT INTO {H} (user_id, model_provider, role,"
                            " content) VALUES (%s, 'anthropic', 'user', %s)",
                            (f"w{i}_{k % 1000}", "z" * 400))
            except Exception as e:  # noqa: BLE001 - counted
                self.errors.append(repr(e))
            mine.append((t, time.monotonic() - t))
            k += 1
        conn.close()
        with self.lock:
            self.samples.extend(mine)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


class LockSampler(threading.Thread):
    """pg_locks of convctl's backend on the history (and its partitions)
    every 10 ms: {(relation, mode, granted): [first, last]}."""

    def __init__(self, pg):
        super().__init__()
        self.conn = psycopg2.connect(
            f"host={pg.sockdir} port={pg.port} dbname={pg.dbname} "
            f"user={pg.user} application_name=sampler")
        self.conn.autocommit = True
        self.stop = threading.Event()
        self.seen = {}

    def run(self):
        cur = self.conn.cursor()
        while not self.stop.is_set():
            cur.execute(
                "SELECT l.relation::regclass::text, l.mode, l.granted"
                " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                f" WHERE a.application_name = '{APP}'"
                " AND l.locktype = 'relation' AND (l.relation ="
                f" '{H}'::regclass OR l.relation IN"
                f" (SELECT relid FROM pg_partition_tree('{H}')))")
            now = time.monotonic()
            for row in cur.fetchall():
                s = self.seen.setdefault(row, [now, now])
                s[1] = now
            time.sleep(0.01)
        self.conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--layout", choices=("plain", "partitioned"),
                    default="plain")
    ap.add_argument("--baseline", type=float, default=10.0,
                    help="seconds of writes measured before the upgrade")
    a = ap.parse_args()

    pg = convdtest.PgCluster().initdb(
        "fsync = on\nsynchronous_commit = on\nshared_buffers = 512MB\n"
        "max_wal_size = 8GB\nmaintenance_work_mem = 256MB\n"
        "log_lock_waits = on\ndeadlock_timeout = 10ms\n"
        "log_line_prefix = '%m [%p] %a: '\nlog_min_messages = info\n")
    pg.start()
    pg.createdb()
    try:
        cfg = convdtest.write_config(os.path.join(pg.tmp, "c.conf"), {
            "database": {"host": pg.sockdir, "port": pg.port,
                         "name": pg.dbname, "user": pg.user,
                         "application_name": APP},
            "migrations": {"directory": convdtest.MIGRATIONS}})

        def ctl(*args, env=None):
            t = time.monotonic()
            r = subprocess.run([convdtest.CONVCTL, "-c", cfg, "db"]
                               + list(args), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=env or os.environ)
            if r.returncode != 0:
                raise RuntimeError(f"{args}: {r.stdout}{r.stderr}")
            return r, time.monotonic() - t
        ctl("upgrade", BEFORE)
        t0 = time.time()
        for start in range(0, a.rows, CHUNK):
            n = min(CHUNK, a.rows - start)
            pg.psql(f"INSERT INTO {H} (user_id, platform, model_provider,"
                    " role, content, created_at) SELECT 'u' || (i % 10000),"
                    " 'line', 'anthropic', CASE WHEN i % 2 = 0 THEN 'user'"
                    " ELSE 'assistant' END, repeat('y', 400), now() -"
                    f" interval '60 days' + i * interval '0.5 second'"
                    f" FROM generate_series({start + 1}, {start + n}) i")
        if a.layout == "partitioned":
            ctl("partition")
        pg.psql(f"VACUUM ANALYZE {H}")
        pg.psql("CHECKPOINT")
        load = time.time() - t0
        node = pg.psql(f"SELECT pg_relation_filenode('{H}')")
        p0 = H + "_p0" if a.layout == "partitioned" else H
        node0 = pg.psql(f"SELECT pg_relation_filenode('{p0}')")
        size = pg.psql(f"SELECT pg_size_pretty(CASE WHEN relkind = 'p' THEN"
                       f" (SELECT sum(pg_total_relation_size(relid)) FROM"
                       f" pg_partition_tree('{H}')) ELSE"
                       f" pg_total_relation_size(oid) END) FROM pg_class"
                       f" WHERE oid = '{H}'::regclass")
        logpos = os.path.getsize(pg.logfile)

        w = Writers(pg, a.writers)
        w.start()
        time.sleep(a.baseline)
        sampler = LockSampler(pg)
        sampler.start()
        up0 = time.monotonic()
        env = dict(os.environ, PGOPTIONS="-c log_min_duration_statement=0")
        r, took = ctl("upgrade", env=env)
        up1 = time.monotonic()
        time.sleep(2)
        sampler.stop.set()
        sampler.join()
        w.finish()

        node_after = pg.psql(f"SELECT pg_relation_filenode('{H}')")
        node0_after = pg.psql(f"SELECT pg_relation_filenode('{p0}')")
        valid = pg.psql("SELECT indisvalid FROM pg_index WHERE indexrelid ="
                        f" '{H}_conversation_idx'::regclass")
        with open(pg.logfile, errors="replace") as f:
            f.seek(logpos)
            log = f.read()
        stmts = []
        for m in re.finditer(rf"\] {APP}: LOG:  duration: ([0-9.]+) ms  "
                             r"statement: (.*?)(?=\n\S|\Z)", log, re.S):
            text = " ".join(m.group(2).split())
            if re.match(r"(DO|CREATE|DROP|ALTER)", text):
                stmts.append((float(m.group(1)), text[:110]))
        waits = [(m.group(1), m.group(2), float(m.group(3))) for m in
                 re.finditer(r"\] (\S+): LOG:  process \d+ acquired (\S+) on "
                             r"relation .*? after ([0-9.]+) ms", log)]
        base = [lat for t, lat in w.samples if t < up0]
        during = [lat for t, lat in w.samples if up0 <= t <= up1]
        print(f"## Online migration to 7c3d9e1a2b45, {a.rows:,} rows, "
              f"{a.layout} layout\n")
        print(f"- loaded in {load:.0f} s; history {size}; "
              f"{a.writers} writers, one insert per transaction")
        print(f"- `convctl db upgrade`: {took:.1f} s")
        print(f"- relfilenode of {H}: {node} -> {node_after}; of {p0}: "
              f"{node0} -> {node0_after} (unchanged: no rewrite)")
        print(f"- {H}_conversation_idx valid: {valid}")
        print(f"- writer errors: {len(w.errors)}"
              + (f" ({w.errors[0]})" if w.errors else ""))
        print("\n| statement (convctl's session) | ms |\n| --- | ---: |")
        for ms, text in stmts:
            print(f"| `{text}` | {ms:,.1f} |")
        print("\n| lock held by convctl's backend (sampled every 10 ms)"
              " | relation | granted | first..last seen (ms) |"
              "\n| --- | --- | --- | ---: |")
        for (rel, mode, gr), (f, l) in sorted(sampler.seen.items(),
                                              key=lambda kv: kv[1][0]):
            print(f"| {mode} | {rel} | {gr} | {(f - up0) * 1000:,.0f}.."
                  f"{(l - up0) * 1000:,.0f} ({(l - f) * 1000:,.0f}) |")
        print("\n| writers' inserts | n | p50 ms | p99 ms | max ms |"
              "\n| --- | ---: | ---: | ---: | ---: |")
        for label, xs in (("before the upgrade", base),
                          ("during the upgrade", during)):
            print(f"| {label} | {len(xs):,} | {pct(xs, 50) * 1000:.2f} | "
                  f"{pct(xs, 99) * 1000:.2f} | "
                  f"{(max(xs) if xs else 0) * 1000:.2f} |")
        print(f"\nLock waits over 10 ms logged by the server "
              f"(log_lock_waits): {len(waits)}")
        for who, mode, ms in waits:
            print(f"- {who} waited {ms:,.1f} ms for {mode}")
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
