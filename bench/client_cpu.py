"""libconvclient's cost per request, two builds of the library side by side
(issue 16: client.c split into files): convd-bench's own CPU per request
(utime + stime) and, under valgrind's callgrind, its instructions per
request (exact, independent of the machine's load).  Both builds' clients
drive the same convd (of NEW_BUILD_DIR) and PostgreSQL, ping only, so the
client's share is as large as it can be.

    bench/client_cpu.py OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [SECONDS]

Each build dir must hold a built convd-bench (.libs/convd-bench and
.libs/libconvclient.so*)."""
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CONVD_BUILDDIR", sys.argv[2])
os.environ.setdefault("CONVD_SRCDIR", os.path.join(HERE, ".."))
import benchlib  # noqa: E402
import convdtest  # noqa: E402

ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
SECS = sys.argv[4] if len(sys.argv) > 4 else "3"
builds = {"old": sys.argv[1], "new": sys.argv[2]}


def bench(build, sock, prefix=()):
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(build, ".libs"))
    argv = list(prefix) + [os.path.join(build, ".libs", "convd-bench"),
                           "-s", sock, "-c", "4", "-j", "1", "-d", "16",
                           "-T", SECS, "-m", "ping", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    n = out["methods"]["ping"]["requests"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                                 before.ru_stime)
    return n, cpu


def main():
    pg = benchlib.cluster()
    d = None
    try:
        d = convdtest.Convd(pg).start()
        for name, build in builds.items():
            print(f"{name}: {build}")
        for i in range(ROUNDS):
            for name, build in builds.items():
                n, cpu = bench(build, d.socket)
                print(f"round {i + 1} {name}: {n} pings, "
                      f"{cpu * 1e6 / n:.2f} us CPU per ping", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for name, build in builds.items():
                out = os.path.join(tmp, f"cg.{name}")
                n, _ = bench(build, d.socket,
                             ("valgrind", "--tool=callgrind",
                              f"--callgrind-out-file={out}"))
                total = 0
                for f in glob.glob(out + "*"):
                    with open(f) as fh:
                        for line in fh:
                            if line.startswith("summary:"):
                                total += int(line.split()[1])
                print(f"callgrind {name}: {n} pings, "
                      f"{total / n:.0f} instructions per ping "
                      f"(whole process)", flush=True)
    finally:
        benchlib.cleanup(pg, d)


main()
