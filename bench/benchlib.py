"""What the benchmark scripts share: a private PostgreSQL cluster set up
for convd, its tear-down, and latency percentiles.  Benchmarks are not
tests: `make check` runs none of them (scripts/bench.sh, BENCHMARKS.md).
Also the CPU time a process, and a cluster with its backends, used.

    import benchlib
    pg = benchlib.cluster("fsync = on\\n")   # started, schema set up
    d = None
    try:
        d = convdtest.Convd(pg).start()
        ...
    finally:
        benchlib.cleanup(pg, d)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import convdtest  # noqa: E402


def cluster(conf="", layout=None, schema=True):
    """A started private cluster (PgCluster: initdb with the extra
    postgresql.conf lines `conf`) holding database convd, set up by
    `convctl db setup` (--layout `layout` if given) unless schema=False.
    The cluster is destroyed again if the set-up fails."""
    pg = convdtest.PgCluster().initdb(conf)
    try:
        pg.start()
        pg.createdb()
        if schema:
            convdtest.setup_schema(pg, layout=layout)
    except BaseException:
        pg.destroy()
        raise
    return pg


def cleanup(pg, *daemons):
    """Stops each convd that was started (None: never was), then destroys
    the cluster, whatever happened before."""
    try:
        for d in daemons:
            if d:
                d.stop()
    finally:
        pg.destroy()


def pct(xs, p):
    """The p-th percentile (0..100) of xs by nearest rank on the sorted
    values; 0.0 for no values."""
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """The fields of /proc/PID/stat after the command's name."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu(pid):
    """Seconds of CPU (user + system) process pid has used."""
    v = _stat(pid)
    return (int(v[11]) + int(v[12])) / TCK


def pg_cpu(pg):
    """Seconds of CPU the cluster's postmaster and its live backends have
    used (a backend that exits takes its time with it)."""
    pm = pg.postmaster_pid()
    total = cpu(pm)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                v = _stat(p)
                if int(v[1]) == pm:
                    total += (int(v[11]) + int(v[12])) / TCK
            except OSError:
                pass
    return total
