"""convctl db diff, timed: the model comparison (issue 13, point 7 adds
a second deparse of the model's constraints, indexes, defaults and
generation expressions).  Usage, from the top of the tree after a build:

    /usr/bin/python3 bench/db_diff.py OTHER_CONVCTL

runs `convctl db diff` on a database at head 40 times with OTHER_CONVCTL
(say, a build of main) and 40 times with build/convctl, interleaved, and
prints the medians.  Not part of make check.
"""
import sys, os, time, subprocess, statistics
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import convdtest
pg = convdtest.PgCluster().initdb(); pg.start(); pg.createdb()
try:
    conf = convdtest.write_config(os.path.join(pg.tmp, "diff.conf"), {
        "database": {"host": pg.sockdir, "port": pg.port, "name": pg.dbname, "user": pg.user},
        "migrations": {"directory": os.path.join(TOP, "migrations")}})
    subprocess.run([os.path.join(TOP, "build", "convctl"), "-c", conf, "db", "setup"], check=True, stdout=subprocess.DEVNULL)
    bins = (("other", sys.argv[1]), ("build", os.path.join(TOP, "build", "convctl")))
    ts = {n: [] for n, _ in bins}
    for i in range(40):
        for name, b in bins:
            t = time.monotonic()
            r = subprocess.run([b, "-c", conf, "db", "diff"], stdout=subprocess.DEVNULL)
            ts[name].append((time.monotonic() - t) * 1000)
            assert r.returncode == 0
    for name, _ in bins:
        v = sorted(ts[name])
        print(f"{name}: convctl db diff median {statistics.median(v):.1f} ms, p90 {v[35]:.1f} ms (40 runs, interleaved)")
finally:
    pg.destroy()
