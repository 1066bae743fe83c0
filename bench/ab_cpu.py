"""CPU per request, two builds of convd side by side (robust to a loaded
machine, unlike throughput): convd's and PostgreSQL's CPU time (utime +
stime from /proc) divided by the requests served, for history reads
(20 rows each), add_message (32 clients, 400 bytes) and, for the second
build, add_message with idempotency keys (convd-bench --keys).

    bench/ab_cpu.py OLD_BUILD_DIR NEW_BUILD_DIR [SECONDS]

Backends that exit during a run take their CPU time with them, so a
figure can come out low (even negative): compare rounds, not one run."""
import json
import os
import subprocess
import sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_BUILDDIR", sys.argv[2])
os.environ.setdefault("CONVD_SRCDIR", os.path.join(HERE, ".."))
import convdtest  # noqa: E402
from benchlib import cpu, pg_cpu  # noqa: E402

SECS = int(sys.argv[3]) if len(sys.argv) > 3 else 6

pg = convdtest.PgCluster().initdb("fsync = on\nsynchronous_commit = on\nshared_buffers = 512MB\nmax_connections = 300\n")
pg.start(); pg.createdb(); convdtest.setup_schema(pg)
# 20 messages for each of the 10,000 bench users: every read returns 20 rows
pg.psql("INSERT INTO simple_conversation_history (user_id, platform, model_provider, role, content) SELECT 'bench-user-' || (i % 10000), 'line', 'anthropic', 'user', repeat('x', 400) FROM generate_series(1, 200000) i")
pg.psql("VACUUM ANALYZE simple_conversation_history")
try:
    for rnd in range(3):
        for name, bdir in builds.items():
            convdtest.CONVD = os.path.join(bdir, "convd")
            d = convdtest.Convd(pg, extra={"pool": {"size": 20, "max_overflow": 30, "timeout": 30},
                                           "log": {"level": "notice"}})
            d.start()
            runs = [("recent", ["-m", "get_recent_conversations:1"], "get_recent_conversations"),
                    ("add", ["-m", "add_message:1"], "add_message")]
            if name == "new":
                runs.insert(2, ("add+keys", ["-m", "add_message:1", "--keys"], "add_message"))
            for label, args, meth in runs:
                c0, p0 = cpu(d.proc.pid), pg_cpu(pg)
                out = subprocess.run([BENCH, "-s", d.socket, "-c", "32", "-j", "2", "-T", str(SECS), "--json"] + args,
                                     stdout=subprocess.PIPE, text=True).stdout
                c1, p1 = cpu(d.proc.pid), pg_cpu(pg)
                j = json.loads(out)
                m = j["methods"][meth] if "methods" in j else j[meth]
                n = m.get("requests") or m["per_second"] * SECS
                line = (f"round {rnd} {name:8s} {label:9s} {m['per_second']:8.0f}/s  "
                        f"convd {1e6*(c1-c0)/n:6.1f} us/req  postgres {1e6*(p1-p0)/n:6.1f} us/req")
                print(line, flush=True)
            d.stop()
finally:
    pg.destroy()
