"""What serving /metrics costs: convd-bench's throughput with and without a
scraper reading GET /metrics RATE times a second (default 20, 300 times
Prometheus's usual one scrape per 15 s; 0: as fast as it can), and the
scrape's own latency and size.  A private PostgreSQL and convd, as
bench/run.py.  Not a test: `make check` never runs it.

    CONVD_BUILDDIR=build /usr/bin/python3 bench/metrics_scrape.py [SECONDS [RATE]]
"""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
import benchlib  # noqa: E402
import convdtest  # noqa: E402


def bench(d, seconds):
    """Requests per second of convd-bench's default mix (all methods)."""
    r = subprocess.run([os.path.join(convdtest.BUILDDIR, "convd-bench"),
                        "-s", d.socket, "-c", "16", "-T", str(seconds),
                        "--json"], capture_output=True, text=True, check=True)
    run = json.loads(r.stdout.splitlines()[-1])
    run["rps"] = sum(m["per_second"] for m in run["methods"].values())
    return run


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    pg = benchlib.cluster()
    d = None
    try:
        d = convdtest.Convd(pg, extra={"http": {"listen": "127.0.0.1:0"},
                                       "pool": {"size": 8}}).start()
        addr = convdtest.http_address(d)
        quiet = bench(d, seconds)
        lat, stop = [], threading.Event()
        size = [0]

        def scraper():
            next_at = time.perf_counter()
            while not stop.is_set():
                t = time.perf_counter()
                body = convdtest.http_get(addr, "/metrics")[2]
                lat.append(time.perf_counter() - t)
                size[0] = len(body)
                if rate > 0:
                    next_at += 1 / rate
                    stop.wait(max(0, next_at - time.perf_counter()))
        t = threading.Thread(target=scraper)
        t.start()
        busy = bench(d, seconds)
        stop.set()
        t.join()
        # convd's own CPU per scrape (robust to a busy machine)
        n = 2000
        cpu0 = cpu_seconds(d.proc.pid)
        for _ in range(n):
            convdtest.http_get(addr, "/metrics")
        cpu_us = (cpu_seconds(d.proc.pid) - cpu0) / n * 1e6
        print(json.dumps({
            "convd_cpu_us_per_scrape": round(cpu_us, 1),
            "requests_per_s_without_scrapes": quiet.get("rps"),
            "requests_per_s_with_scrapes": busy.get("rps"),
            "scrapes_per_s": round(len(lat) / seconds),
            "scrape_p50_ms": round(benchlib.pct(lat, 50) * 1e3, 2),
            "scrape_p99_ms": round(benchlib.pct(lat, 99) * 1e3, 2),
            "exposition_bytes": size[0],
            "bench_without": quiet, "bench_with": busy}, indent=1))
    finally:
        benchlib.cleanup(pg, d)


if __name__ == "__main__":
    main()
