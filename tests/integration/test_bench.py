"""convd-bench must not rot: CI builds it and runs it briefly against a real
convd.  This checks that it works and reports, never how fast anything is
(benchmarks are not tests: see scripts/bench.sh and BENCHMARKS.md)."""

import json
import os
import subprocess

import convdtest

BENCH = os.path.join(convdtest.BUILDDIR, "convd-bench")


def run_bench(*args):
    return subprocess.run([BENCH] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def test_bench_runs_every_method(convd):
    r = run_bench("-s", convd.socket, "-c", "4", "-d", "2", "-T", "1",
                  "-m", "add_message:1,get_recent_conversations:1,ping:1",
                  "--users", "50", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["clients"] == 4 and out["depth"] == 2
    for m in ("add_message", "get_recent_conversations", "ping"):
        assert out["methods"][m]["requests"] > 0, out
        assert out["methods"][m]["errors"] == 0, out
        p = out["methods"][m]
        assert 0 < p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"], p
    # what it wrote is really in the database
    n = int(convd.pg.psql("SELECT count(*) FROM simple_conversation_history"
                          " WHERE user_id LIKE 'bench-user-%'"))
    assert n >= out["methods"]["add_message"]["requests"]


def test_bench_table_output(convd):
    r = run_bench("-s", convd.socket, "-c", "2", "-T", "1", "-m", "ping")
    assert r.returncode == 0, r.stderr
    assert "ping" in r.stdout and "req/s" in r.stdout and "p99 ms" in r.stdout


def test_bench_compare_runs_pgbench(convd):
    pg = convd.pg
    r = run_bench("-s", convd.socket, "-c", "2", "-T", "1", "--users", "20",
                  "--compare", "--pg",
                  f"host={pg.sockdir} port={pg.port} dbname={pg.dbname} "
                  f"user={pg.user}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "add_message vs pgbench INSERT" in r.stdout, r.stdout
    assert "get_recent_conversations vs pgbench SELECT" in r.stdout, r.stdout
    assert "ping vs redis-server PING" in r.stdout, r.stdout
    assert "(the other side failed)" not in r.stdout.split("ping vs")[0], \
        r.stdout


def test_bench_usage_errors():
    for args in (["-c", "0"], ["-d", "1000"], ["-m", "nosuch"],
                 ["--compare"], ["extra-arg"]):
        r = run_bench(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)


def test_bench_unreachable_daemon(tmp_path):
    r = run_bench("-s", str(tmp_path / "nothing.sock"), "-T", "1")
    assert r.returncode == 1
    assert "cannot connect" in r.stderr


def test_bench_threads(convd):
    """-j spreads the connections over client threads (like pgbench -j);
    their latencies are merged into one report."""
    r = run_bench("-s", convd.socket, "-c", "5", "-j", "3", "-T", "1",
                  "-m", "ping", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["clients"] == 5 and out["threads"] == 3, out
    p = out["methods"]["ping"]
    assert p["requests"] > 0 and p["errors"] == 0, p
    assert 0 < p["p50_ms"] <= p["p99_ms"], p
    r = run_bench("-s", convd.socket, "-c", "1", "-T", "1", "-m", "ping",
                  "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["threads"] == 1


def test_bench_bad_threads(convd):
    for bad in ("0", "-2", "5"):
        r = run_bench("-s", convd.socket, "-c", "4", "-j", bad, "-T", "1")
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "Usage" in r.stderr, r.stderr
