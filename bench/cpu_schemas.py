"""CPU per request (convd's and PostgreSQL's, from /proc), each build on
its own schema: the old tree on the schema its migrations make, this tree
at head without the search index, and this tree at head.  Robust to a
loaded machine, unlike throughput.  BENCHMARKS.md, "Session 5".

    bench/cpu_schemas.py OLD_TREE [SECONDS] [ROUNDS]

OLD_TREE is a source tree built in OLD_TREE/build (e.g. a worktree of
9e93d3a); this tree's build is CONVD_BUILDDIR (default ./build)."""
import json
import os
import subprocess
import sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_BUILDDIR", os.path.join(HERE, "..", "build"))
os.environ.setdefault("CONVD_SRCDIR", os.path.join(HERE, ".."))
import convdtest  # noqa: E402
from benchlib import cpu, pg_cpu  # noqa: E402
NEW = os.environ["CONVD_BUILDDIR"]
OLD = os.path.abspath(sys.argv[1])
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
BENCH = os.path.join(NEW, "convd-bench")
pg = convdtest.PgCluster().initdb("fsync = on\nsynchronous_commit = on\nshared_buffers = 512MB\nmax_connections = 300\n")
pg.start()
confs = {"before": (OLD + "/build/convd", OLD + "/build/convctl", OLD + "/migrations", False),
         "after-nosearch": (os.path.join(NEW, "convd"), convdtest.CONVCTL, convdtest.MIGRATIONS, True),
         "after": (os.path.join(NEW, "convd"), convdtest.CONVCTL, convdtest.MIGRATIONS, False)}
try:
    for name, (convd, convctl, mig, drop) in confs.items():
        db = name.replace("-", "_")
        pg.createdb(db)
        convdtest.CONVCTL, convdtest.MIGRATIONS = convctl, mig
        convdtest.setup_schema(pg, dbname=db)
        if drop:
            pg.psql("DROP INDEX simple_conversation_history_search_idx", db=db)
        pg.psql("INSERT INTO simple_conversation_history (user_id, platform, model_provider, role, content) SELECT 'bench-user-' || (i % 10000), 'line', 'anthropic', 'user', repeat('x', 400) FROM generate_series(1, 200000) i", db=db)
        pg.psql("VACUUM ANALYZE simple_conversation_history", db=db)
    for rnd in range(ROUNDS):
        for name, (convd, convctl, mig, drop) in confs.items():
            convdtest.CONVD = convd
            d = convdtest.Convd(pg, extra={"database": {"name": name.replace("-", "_")},
                                           "pool": {"size": 20, "max_overflow": 30, "timeout": 30},
                                           "log": {"level": "notice"}})
            d.start()
            for label, meth in (("add", "add_message"), ("recent", "get_recent_conversations")):
                c0, p0 = cpu(d.proc.pid), pg_cpu(pg)
                out = subprocess.run([BENCH, "-s", d.socket, "-c", "32", "-j", "2", "-T", str(SECS), "--json", "-m", meth + ":1"], stdout=subprocess.PIPE, text=True).stdout
                c1, p1 = cpu(d.proc.pid), pg_cpu(pg)
                j = json.loads(out.strip().splitlines()[-1]); m = j["methods"][meth]
                n = m.get("requests") or m["per_second"] * SECS
                print(f"round {rnd} {name:15s} {label:6s} {m['per_second']:8.0f}/s  convd {1e6*(c1-c0)/n:6.1f} us/req  postgres {1e6*(p1-p0)/n:6.1f} us/req", flush=True)
            d.stop()
finally:
    pg.destroy()
