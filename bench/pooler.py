#!/usr/bin/python3
"""The cost of a transaction-mode pooler (issue 19): convd-bench against
convd on one private PostgreSQL (fsync on), three ways, one after the
other on the same server:

  direct    convd -> PostgreSQL, named prepared statements (the default)
  unnamed   convd -> PostgreSQL, [database] prepared_statements = no
  pgbouncer convd -> PgBouncer 1.18 (pool_mode = transaction,
            default_pool_size 20) -> PostgreSQL; convd detects it and
            sends unnamed statements

Run from the source tree after a build:
  CONVD_BUILDDIR=build /usr/bin/python3 bench/pooler.py [--seconds N]
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
import benchlib  # noqa: E402
import convdtest  # noqa: E402


def bench(d, seconds):
    out = subprocess.run(
        [os.path.join(convdtest.BUILDDIR, "convd-bench"), "-s", d.socket,
         "-c", "32", "-j", "2", "-T", str(seconds), "--json",
         "-m", "add_message:1,get_recent_conversations:1"],
        stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["methods"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    pg = benchlib.cluster("fsync = on\n")
    bouncer = convdtest.PgBouncer(pg, pool_size=20).start()
    pool = {"size": 20, "min_size": 20, "max_overflow": 0, "timeout": 10}
    runs = [("direct", {}),
            ("unnamed", {"prepared_statements": "no"}),
            ("pgbouncer", bouncer.database())]
    rows = []
    try:
        for name, db in runs:
            d = convdtest.Convd(pg, extra={"database": db, "pool": pool,
                                           "log": {"level": "warning"}})
            d.start()
            try:
                m = bench(d, a.seconds)
            finally:
                d.stop()
            rows.append((name, m))
    finally:
        bouncer.destroy()
        pg.destroy()
    base = {k: v["per_second"] for k, v in rows[0][1].items()}
    print("| path | add_message/s | get_recent/s | errors | vs direct |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, m in rows:
        add, rec = (m["add_message"]["per_second"],
                    m["get_recent_conversations"]["per_second"])
        err = sum(v["errors"] for v in m.values())
        print(f"| {name} | {add:,.0f} | {rec:,.0f} | {err} | "
              f"{add / base['add_message']:.2f}x / "
              f"{rec / base['get_recent_conversations']:.2f}x |")


if __name__ == "__main__":
    main()
