"""convctl: every command, readable and --json output (the shapes of
convctl(1)), exit statuses, and where it finds the socket.  The real convctl
against a real convd and PostgreSQL; results are cross-checked with psql."""

import datetime
import json
import os
import re
import socket
import subprocess
import threading

import msgpack
import pytest

import convdtest
from convdtest import (parse_prometheus, prom_value, scaled, sql_literal as q,
                       uid, wait_until)

HIST = "simple_conversation_history"
TEXT_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
JSON_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def jrun(convd, *args, input=None):
    """convctl --json ARGS: the parsed JSON of a successful run (one line)."""
    r = ok(convd.convctl("--json", *args, input=input))
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.stdout
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {r.stdout!r}")


def parse_time(text, pattern=JSON_TIME):
    """An ISO 8601 UTC time as convctl prints it."""
    assert re.fullmatch(pattern, text), text
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert t.utcoffset() == datetime.timedelta(0), text
    return t


def history(convd, user, provider, *extra):
    rows = jrun(convd, "history", user, provider, *extra)
    assert isinstance(rows, list), rows
    return rows


def db_usec(pg, id_):
    return int(pg.psql(f"SELECT (extract(epoch FROM created_at) * 1000000)"
                       f"::bigint FROM {HIST} WHERE id = {id_}"))


def as_usec(t):
    return round(t.timestamp() * 1e6)


# ------------------------------------------------------------------ ping

def test_ping(convd):
    r = ok(convd.convctl("ping"))
    assert re.fullmatch(r"pong \(\d+\.\d{3} ms\)\n", r.stdout), r.stdout
    res = jrun(convd, "ping")
    assert isinstance(res, dict), res
    assert res.get("result") == "pong", res
    assert isinstance(res.get("rtt_usec"), int) and res["rtt_usec"] >= 0


# ------------------------------------------------------------------- add

def test_add_text(convd, pg):
    user = uid()
    r = ok(convd.convctl("add", user, "anthropic", "user", "hello there"))
    m = re.fullmatch(rf"added message (\d+) at ({TEXT_TIME})\n", r.stdout)
    assert m, r.stdout
    row = pg.psql(f"SELECT user_id, model_provider, role, content FROM {HIST}"
                  f" WHERE id = {m.group(1)}")
    assert row == f"{user}|anthropic|user|hello there"
    shown = parse_time(m.group(2), TEXT_TIME)
    assert abs(as_usec(shown) - db_usec(pg, m.group(1))) < 1000

    res = jrun(convd, "add", user, "anthropic", "assistant", "general kenobi")
    assert set(res) >= {"id", "created_at"}, res
    assert isinstance(res["id"], int) and res["id"] > int(m.group(1))
    created = parse_time(res["created_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - created).total_seconds()) < 60
    # The printed time is exactly the stored one.
    assert as_usec(created) == db_usec(pg, res["id"])
    assert pg.psql(f"SELECT role || ':' || content FROM {HIST} WHERE id = "
                   f"{res['id']}") == "assistant:general kenobi"


def test_add_from_stdin(convd, pg):
    user = uid()
    text = "line one\nline two \u2603 \u4f60\u597d\n\n  indented\ttab"
    res = jrun(convd, "add", user, "gemini", "user", "-", input=text)
    got = pg.psql(f"SELECT encode(convert_to(content, 'UTF8'), 'hex') FROM "
                  f"{HIST} WHERE id = {res['id']}")
    assert bytes.fromhex(got).decode() == text
    # One trailing newline is removed (`echo hello | convctl add ... -`),
    # and only one.
    ok(convd.convctl("add", user, "gemini", "assistant", "-",
                     input="second \U0001f600\n"))
    ok(convd.convctl("add", user, "gemini", "user", "-", input="third\n\n"))
    assert [x["content"] for x in history(convd, user, "gemini")] == \
        [text, "second \U0001f600", "third\n"]


def test_add_argument_forms(convd):
    user = uid()
    ok(convd.convctl("add", user, "ollama", "user",
                     "\u65e5\u672c\u8a9e \U0001f389"))
    # An argument starting with '-' after "--".
    ok(convd.convctl("add", user, "ollama", "assistant", "--", "-5 degrees"))
    # Options after the command.
    r = ok(convd.convctl("add", user, "ollama", "user", "last", "--json"))
    assert set(json.loads(r.stdout)) >= {"id", "created_at"}
    assert [x["content"] for x in history(convd, user, "ollama")] == \
        ["\u65e5\u672c\u8a9e \U0001f389", "-5 degrees", "last"]


def test_platform_option(convd, pg):
    user = uid()
    ok(convd.convctl("--platform", "telegram", "add", user, "gemini", "user",
                     "on telegram"))
    ok(convd.convctl("add", user, "gemini", "user", "on line"))
    assert pg.psql(f"SELECT platform || ':' || content FROM {HIST} WHERE "
                   f"user_id = {q(user)} ORDER BY id") == \
        "telegram:on telegram\nline:on line"
    assert jrun(convd, "--platform", "telegram", "count", user) == \
        {"count": 1}
    assert [x["content"] for x in history(convd, user, "gemini",
                                          "--platform", "telegram")] == \
        ["on telegram"]
    ok(convd.convctl("--platform", "telegram", "thread", "set", user, "tg"))
    assert jrun(convd, "thread", "get", user) == {"thread_id": None}
    assert jrun(convd, "--platform", "telegram", "thread", "get", user) == \
        {"thread_id": "tg"}
    assert jrun(convd, "--platform", "telegram", "clear", user, "gemini") == \
        {"deleted": 1}
    assert jrun(convd, "count", user) == {"count": 1}


# --------------------------------------------------------------- history

def test_history(convd):
    user = uid()
    for i in range(8):
        role = "user" if i % 2 == 0 else "assistant"
        ok(convd.convctl("add", user, "anthropic", role, f"msg-{i}-tok"))
    rows = history(convd, user, "anthropic", "-n", "2")
    assert [x["content"] for x in rows] == \
        ["msg-4-tok", "msg-5-tok", "msg-6-tok", "msg-7-tok"]
    assert [x["role"] for x in rows] == ["user", "assistant"] * 2
    assert all(x["provider"] == "anthropic" for x in rows)
    ids = [x["id"] for x in rows]
    assert ids == sorted(ids)
    for x in rows:
        parse_time(x["created_at"])
    assert len(history(convd, user, "anthropic")) == 8
    assert len(history(convd, user, "anthropic", "--limit", "1")) == 2
    assert history(convd, user, "gemini") == []
    # Readable: a table of the last 2 turns, oldest first.
    r = ok(convd.convctl("history", user, "anthropic", "-n", "2"))
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TIME", "ROLE", "CONTENT"], r.stdout
    assert len(lines) == 5, r.stdout
    for line, i in zip(lines[1:], range(4, 8)):
        role = "user" if i % 2 == 0 else "assistant"
        assert re.fullmatch(rf"{TEXT_TIME}\s+{role}\s+msg-{i}-tok", line), \
            line
    r = ok(convd.convctl("history", user, "gemini"))
    assert r.stdout == "(no messages)\n"


# ----------------------------------------------------------------- clear

def test_clear(convd, pg):
    user = uid()
    for p in ("anthropic", "anthropic", "anthropic", "gemini"):
        ok(convd.convctl("add", user, p, "user", "x"))
    assert jrun(convd, "clear", user, "anthropic") == {"deleted": 3}
    assert pg.psql(f"SELECT model_provider FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "gemini"
    r = ok(convd.convctl("clear", user, "gemini"))
    assert re.fullmatch(r"deleted 1 messages?\n", r.stdout), r.stdout
    assert jrun(convd, "clear", user, "gemini") == {"deleted": 0}


# ----------------------------------------------------------------- count

def test_count(convd):
    user = uid()
    for p in ("anthropic", "anthropic", "gemini"):
        ok(convd.convctl("add", user, p, "user", "x"))
    assert jrun(convd, "count", user) == {"count": 3}
    assert jrun(convd, "count", user, "anthropic") == {"count": 2}
    assert jrun(convd, "count", user, "gemini") == {"count": 1}
    assert jrun(convd, "count", user, "ollama") == {"count": 0}
    assert ok(convd.convctl("count", user)).stdout == "3\n"
    assert ok(convd.convctl("count", user, "anthropic")).stdout == "2\n"


# ------------------------------------------------------------ stats-user

def test_stats_user(convd, pg):
    user = uid()
    for p in ("gemini", "anthropic", "anthropic"):
        ok(convd.convctl("add", user, p, "user", "x"))
    st = jrun(convd, "stats-user", user)
    assert st["total_messages"] == 3, st
    assert set(st["providers"]) == {"anthropic", "gemini"}, st
    assert st["providers"]["anthropic"]["message_count"] == 2
    assert st["providers"]["gemini"]["message_count"] == 1
    last = pg.psql(f"SELECT (extract(epoch FROM max(created_at)) * 1000000)"
                   f"::bigint FROM {HIST} WHERE user_id = {q(user)} AND "
                   f"model_provider = 'anthropic'")
    assert as_usec(parse_time(
        st["providers"]["anthropic"]["last_message_at"])) == int(last)
    lines = ok(convd.convctl("stats-user", user)).stdout.splitlines()
    assert lines[0] == "total messages: 3", lines
    assert lines[1].split() == ["PROVIDER", "MESSAGES", "LAST", "MESSAGE"]
    # Providers sorted by name.
    assert re.fullmatch(rf"anthropic\s+2\s+{TEXT_TIME}", lines[2]), lines
    assert re.fullmatch(rf"gemini\s+1\s+{TEXT_TIME}", lines[3]), lines
    empty = jrun(convd, "stats-user", uid())
    assert empty == {"total_messages": 0, "providers": {}}, empty


# ---------------------------------------------------------------- thread

def test_thread(convd, pg):
    user = uid()
    assert jrun(convd, "thread", "get", user) == {"thread_id": None}
    assert ok(convd.convctl("thread", "get", user)).stdout == "(no thread)\n"
    assert ok(convd.convctl("thread", "set", user, "thread_one")).stdout == \
        "thread saved\n"
    assert jrun(convd, "thread", "get", user) == {"thread_id": "thread_one"}
    assert ok(convd.convctl("thread", "get", user)).stdout == "thread_one\n"
    assert jrun(convd, "thread", "set", user, "thread_two") == {"saved": True}
    assert jrun(convd, "thread", "get", user) == {"thread_id": "thread_two"}
    assert pg.psql(f"SELECT thread_id FROM user_thread_table WHERE "
                   f"user_id = {q(user)}") == "thread_two"
    assert jrun(convd, "thread", "delete", user) == {"deleted": 1}
    assert jrun(convd, "thread", "get", user) == {"thread_id": None}
    r = ok(convd.convctl("thread", "delete", user))
    assert re.fullmatch(r"deleted 0 threads?\n", r.stdout), r.stdout


# ------------------------------------------------- cleanup, stats, health

def test_cleanup(convd, pg):
    user = uid()
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES "
            f"({q(user)}, 'line', 'anthropic', 'user', 'old', "
            f"now() - interval '20 days'), "
            f"({q(user)}, 'line', 'anthropic', 'user', 'new', now())")
    res = jrun(convd, "cleanup", "--days", "10")
    assert isinstance(res["deleted"], int) and res["deleted"] >= 1, res
    assert pg.psql(f"SELECT content FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "new"
    r = ok(convd.convctl("cleanup", "--days", "10"))
    assert re.fullmatch(r"deleted 0 messages?\n", r.stdout), r.stdout
    # retention is off by default: a cleanup must say how many days
    r = convd.convctl("cleanup")
    assert r.returncode == 1 and "days_to_keep is required" in r.stderr, \
        (r.stdout, r.stderr)
    # --dry-run counts and deletes nothing (issue 13)
    pg.psql(f"INSERT INTO {HIST} (user_id, platform, model_provider, role, "
            f"content, created_at) VALUES ({q(user)}, 'line', 'anthropic',"
            f" 'user', 'old again', now() - interval '20 days')")
    total = int(pg.psql(f"SELECT count(*) FROM {HIST}"))
    res = jrun(convd, "cleanup", "--days", "10", "--dry-run")
    assert res == {"deleted": 0, "would_delete": 1, "messages": total,
                   "dry_run": True}, res
    r = ok(convd.convctl("cleanup", "--days", "10", "--dry-run"))
    assert r.stdout == (f"would delete 1 of {total} messages (dry run: "
                        "nothing was deleted)\n"), r.stdout
    assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "2"


def test_cleanup_refused_for_non_admin(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"admin_users": "nobody",
                                                "admin_groups": "nogroup"}})
    r = d.convctl("cleanup", "--days", "30")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("convctl: permission_denied: "), r.stderr
    r = d.convctl("--json", "cleanup")
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)


# ------------------------------------------------ stats --prometheus

COUNTERS = ["convd_clients_accepted_total", "convd_clients_rejected_total",
            "convd_clients_closed_on_error_total", "convd_pool_connects_total",
            "convd_pool_connect_failures_total",
            "convd_pool_connections_lost_total",
            "convd_pool_connections_recycled_total",
            "convd_pool_timeouts_total", "convd_pool_unavailable_total",
            "convd_pool_pings_total", "convd_retention_runs_total",
            "convd_retention_skipped_total", "convd_retention_failures_total",
            "convd_retention_deleted_total", "convd_memory_trims_total"]


def test_stats(convd):
    ok(convd.convctl("ping"))
    st = jrun(convd, "stats")
    assert isinstance(st, dict) and st, st
    out = ok(convd.convctl("stats")).stdout
    leaves = dict(line.split(None, 1) for line in out.splitlines())
    assert leaves["version"].strip() == st["version"], out
    assert any(k.startswith("methods.ping.") for k in leaves), out
    r = convd.convctl("--json", "stats", "--prometheus")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)


def test_stats_prometheus(convd):
    pings = 3
    for _ in range(pings):
        ok(convd.convctl("ping"))
    with convd.client() as c:
        with pytest.raises(convdtest.RpcError) as e:
            c.call("add_message", uid(), "gemini", "nobody", "hello")
        assert e.value.code == "invalid_params"
    st = jrun(convd, "stats")
    r = ok(convd.convctl("stats", "--prometheus"))
    fams = parse_prometheus(r.stdout)
    # the per-method and per-code figures are in the labelled families
    for name in fams:
        assert not re.fullmatch(r"convd_(methods_.*_(requests|errors_.*|"
                                r"latency_us_.*)|protocol_errors_.*)",
                                name), name
    for name in COUNTERS:
        assert fams[name]["type"] == "counter", name
        assert prom_value(fams, name) >= 0, name
    assert prom_value(fams, "convd_clients_accepted_total") >= pings + 1
    assert prom_value(fams, "convd_build_info",
                      version=st["version"]) == 1
    assert prom_value(fams, "convd_pool_database_up") == 1
    assert fams["convd_uptime_seconds"]["type"] == "gauge"
    started = parse_time(st["started_at"]).timestamp()
    assert abs(prom_value(fams, "convd_start_time_seconds") - started) \
        < 1e-3, (st["started_at"], fams["convd_start_time_seconds"])
    assert prom_value(fams, "convd_retention_max_age_seconds") == \
        st["retention"]["days_to_keep"] * 86400
    # per method and per code: one family each, with labels
    assert fams["convd_requests_total"]["type"] == "counter"
    assert prom_value(fams, "convd_requests_total", method="ping") >= pings
    assert prom_value(fams, "convd_requests_total", method="add_message") >= 1
    assert fams["convd_request_errors_total"]["type"] == "counter"
    assert prom_value(fams, "convd_request_errors_total",
                      method="add_message", code="invalid_params") >= 1
    # latencies: a histogram per method, counting every request
    assert fams["convd_request_duration_seconds"]["type"] == "histogram"
    hists = convdtest.prom_histograms(fams, "convd_request_duration_seconds")
    for method in ("ping", "add_message"):
        h = hists[(("method", method),)]
        top = prom_value(fams, "convd_request_duration_max_seconds",
                         method=method)
        assert h["count"] == prom_value(fams, "convd_requests_total",
                                        method=method), (method, h)
        assert 0 <= h["sum"] <= h["count"] * top + 1e-6, (method, h, top)
        assert top < 60, (method, top)
        assert len(h["buckets"]) > 2, h
    # an undecodable byte: a protocol error, counted by code
    with convd.client() as c:
        c.send_raw(b"\xc1")
        msg = c.recv()
        assert msg[2]["code"] == "invalid_request", msg
    fams = parse_prometheus(ok(convd.convctl("stats", "--prometheus")).stdout)
    assert fams["convd_protocol_errors_total"]["type"] == "counter"
    assert prom_value(fams, "convd_protocol_errors_total",
                      code="invalid_request") >= 1


def fake_stats_daemon(path, result, packed=None):
    """A socket that answers every request with `result`, packed as given
    (convctl's side of stats without convd, for fields convd does not
    send), or with the bytes `packed` as the result.  Returns the
    listening thread."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(scaled(30))

    def serve():
        try:
            conn, _ = srv.accept()
        finally:
            srv.close()
        with conn:
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for req in unpacker:
                    if packed is not None:
                        conn.sendall(b"\x94\x01" + msgpack.packb(req[1]) +
                                     b"\xc0" + packed)
                        continue
                    conn.sendall(msgpack.packb([1, req[1], None, result],
                                               use_bin_type=True))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_stats_prometheus_label_not_utf8(tmp_path):
    """A label value that is not valid UTF-8 (a server error message in
    another encoding, say) has its bad bytes replaced by U+FFFD: the
    exposition format is UTF-8, and a scraper refuses a file that is
    not."""
    packed = msgpack.packb({"pool": {"last_error": b'caf\xe9 \xff"x'}},
                           use_bin_type=False)
    path = str(tmp_path / "fake.sock")
    t = fake_stats_daemon(path, None, packed=packed)
    r = subprocess.run([convdtest.CONVCTL, "-s", path, "stats",
                        "--prometheus"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    t.join(scaled(30))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    out = r.stdout.decode("utf-8")      # strict: raises if not UTF-8
    assert 'convd_pool_last_error_info{value="caf\ufffd \ufffd\\"x"} 1' \
        in out, out


def test_stats_prometheus_conversions(tmp_path):
    """Units, labels and escaping, and leaves convctl does not know (as a
    newer convd could send): kept as generic gauges, never under a name
    that is already taken."""
    weird = 'we"ird\\m\n'
    result = {
        "version": 'v"1\\x\n',
        "uptime_s": 5,
        "started_at": msgpack.Timestamp(1700000000, 250000000),
        "pool": {"open": "four", "lost": 2, "last_error": None,
                 "database_up": False},
        "methods": {
            "ping": {"requests": 7, "errors": {},
                     "latency_us": {"p50": 1500000, "p95": 12, "p99": 0,
                                    "max": 2000000, "p75": 3,
                                    "buckets": {"100": 1, "2500000": 5,
                                                "+Inf": 7, "x": 9},
                                    "sum": 1500000, "count": 7},
                     "bytes": 9},
            weird: {"requests": 2, "errors": {"timeout": 1, "internal": 3},
                    "latency_us": {"p50": 1, "p95": 2, "p99": 3,
                                   "max": 1000000}},
        },
        "protocol_errors": {"invalid_request": 4},
        "retention": {"last_duration_us": 2500000,
                      "last_run": msgpack.Timestamp(1700000001, 0),
                      "next_run": None},
        "requests_total": 99,
        "future": {"count": 3, "ratio": 0.25, "flag": True, "label": "x",
                   "when": msgpack.Timestamp(-2, 500000000),
                   "blob": b"\x00", "empty": {}, "list": [1, 2], "neg": -4,
                   "nan": float("nan"), "inf": float("-inf")},
        "a.b": 1,
        "a_b": 2,
    }
    path = str(tmp_path / "fake.sock")
    t = fake_stats_daemon(path, result)
    r = convdtest.convctl("stats", "--prometheus", socket_path=path)
    t.join(scaled(30))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    fams = parse_prometheus(r.stdout)
    types = {name: fam["type"] for name, fam in fams.items()}
    assert list(types.items()) == [
        ("convd_build_info", "gauge"),
        ("convd_uptime_seconds", "gauge"),
        ("convd_start_time_seconds", "gauge"),
        ("convd_pool_open_info", "gauge"),
        ("convd_pool_connections_lost_total", "counter"),
        ("convd_pool_database_up", "gauge"),
        ("convd_requests_total", "counter"),
        ("convd_request_duration_max_seconds", "gauge"),
        ("convd_methods_ping_latency_us_p75", "gauge"),
        ("convd_request_duration_seconds", "histogram"),
        ("convd_methods_ping_latency_us_buckets_x", "gauge"),
        ("convd_methods_ping_bytes", "gauge"),
        ("convd_request_errors_total", "counter"),
        ("convd_protocol_errors_total", "counter"),
        ("convd_retention_last_run_duration_seconds", "gauge"),
        ("convd_retention_last_run_timestamp_seconds", "gauge"),
        ("convd_future_count", "gauge"),
        ("convd_future_ratio", "gauge"),
        ("convd_future_flag", "gauge"),
        ("convd_future_label_info", "gauge"),
        ("convd_future_when", "gauge"),
        ("convd_future_list_0", "gauge"),
        ("convd_future_list_1", "gauge"),
        ("convd_future_neg", "gauge"),
        ("convd_future_nan", "gauge"),
        ("convd_future_inf", "gauge"),
        ("convd_a_b", "gauge"),
    ], r.stdout
    # the samples exactly as written (HELP lines aside)
    samples = [line for line in r.stdout.splitlines()
               if not line.startswith("#")]
    assert samples == [
        'convd_build_info{version="v\\"1\\\\x\\n"} 1',
        "convd_uptime_seconds 5",
        "convd_start_time_seconds 1700000000.25",
        'convd_pool_open_info{value="four"} 1',
        "convd_pool_connections_lost_total 2",
        "convd_pool_database_up 0",
        'convd_requests_total{method="ping"} 7',
        'convd_requests_total{method="we\\"ird\\\\m\\n"} 2',
        'convd_request_duration_max_seconds{method="ping"} 2',
        'convd_request_duration_max_seconds{method="we\\"ird\\\\m\\n"} 1',
        "convd_methods_ping_latency_us_p75 3",
        'convd_request_duration_seconds_bucket{method="ping",le="0.0001"} 1',
        'convd_request_duration_seconds_bucket{method="ping",le="2.5"} 5',
        'convd_request_duration_seconds_bucket{method="ping",le="+Inf"} 7',
        'convd_request_duration_seconds_sum{method="ping"} 1.5',
        'convd_request_duration_seconds_count{method="ping"} 7',
        "convd_methods_ping_latency_us_buckets_x 9",
        "convd_methods_ping_bytes 9",
        'convd_request_errors_total{method="we\\"ird\\\\m\\n",'
        'code="timeout"} 1',
        'convd_request_errors_total{method="we\\"ird\\\\m\\n",'
        'code="internal"} 3',
        'convd_protocol_errors_total{code="invalid_request"} 4',
        "convd_retention_last_run_duration_seconds 2.5",
        "convd_retention_last_run_timestamp_seconds 1700000001",
        "convd_future_count 3",
        "convd_future_ratio 0.25",
        "convd_future_flag 1",
        'convd_future_label_info{value="x"} 1',
        "convd_future_when -1.5",
        "convd_future_list_0 1",
        "convd_future_list_1 2",
        "convd_future_neg -4",
        "convd_future_nan NaN",
        "convd_future_inf -Inf",
        "convd_a_b 1",
    ], r.stdout
    assert prom_value(fams, "convd_build_info", version='v"1\\x\n') == 1
    assert prom_value(fams, "convd_requests_total", method=weird) == 2
    assert fams["convd_requests_total"]["help"] != \
        fams["convd_future_count"]["help"]
    assert fams["convd_future_count"]["help"] == \
        "The stats field future.count, not known to this version of convd."


def test_health(convd):
    h = jrun(convd, "health")
    assert h["ok"] is True, h
    assert h["database"] == "up" and h["schema"] == "ok", h
    lines = ok(convd.convctl("health")).stdout.splitlines()
    assert lines[0].split() == ["ok", "true"], lines


def test_health_exit_1_without_schema(schema, convd_factory):
    schema.createdb("no_schema_here")
    d = convd_factory(schema, env={"DB_NAME": "no_schema_here"})

    def unhealthy():
        r = d.convctl("--json", "health")
        return r if r.returncode == 1 else None
    r = wait_until(unhealthy, timeout=scaled(15),
                   what="health to see no schema")
    h = json.loads(r.stdout)
    assert h["ok"] is False and h["schema"] != "ok", h
    assert h["database"] == "up", h


# ------------------------------------------------------------ exit codes

def test_exit_1_on_daemon_error(convd, pg):
    user = uid()
    r = convd.convctl("add", user, "anthropic", "robot", "x")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("convctl: invalid_params: role"), r.stderr
    r = convd.convctl("--json", "add", user, "anthropic", "robot", "x")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", "--json printed something on failure"
    r = convd.convctl("add", user, "a" * 51, "user", "x")
    assert r.returncode == 1 and "provider" in r.stderr, r.stderr
    r = convd.convctl("add", user, "anthropic", "user", "-", input="")
    assert r.returncode == 1 and "content" in r.stderr, r.stderr
    r = convd.convctl("add", user, "anthropic", "user", "-",
                      input=b"bad \xff utf-8")
    assert r.returncode == 1 and b"content" in r.stderr, r.stderr
    assert pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                   f"{q(user)}") == "0"


@pytest.mark.parametrize("args", [
    ("add", "u", "anthropic", "user"),          # missing TEXT
    ("add", "u"),
    ("add", "u", "anthropic", "user", "a", "b"),
    ("history", "u"),
    ("history", "u", "anthropic", "-n", "abc"),
    ("history", "u", "anthropic", "-n"),
    ("history", "u", "anthropic", "-n", "5x"),
    ("history", "u", "anthropic", "-n", "0"),
    ("history", "u", "anthropic", "-n", "1001"),
    ("history", "u", "anthropic", "-n", "+5"),
    ("history", "u", "anthropic", "-n", " 5"),
    ("count", "u", "-n", "5"),
    ("clear", "u"),
    ("count",),
    ("count", "u", "p", "extra"),
    ("stats-user",),
    ("thread", "get"),
    ("thread", "set", "u"),
    ("thread", "frob", "u"),
    ("thread",),
    ("cleanup", "--days", "soon"),
    ("cleanup", "--days", "-1"),
    ("cleanup", "--days", "36501"),
    ("no-such-command",),
    (),
    ("--no-such-option", "ping"),
    ("ping", "extra"),
], ids=lambda a: "_".join(a).replace(" ", "sp") or "none")
def test_exit_2_on_usage_error(convd, args):
    r = convd.convctl(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "usage" in r.stderr.lower(), r.stderr
    assert r.stdout == ""


def test_help_and_version():
    r = convdtest.convctl("help")
    assert r.returncode == 0
    for cmd in ("ping", "add", "history", "clear", "count", "stats-user",
                "thread", "cleanup", "stats", "health", "db"):
        assert re.search(rf"^\s+{cmd}\b", r.stdout, re.M), cmd
    assert convdtest.convctl("--help").stdout == r.stdout
    r = convdtest.convctl("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"convctl \(convd\) \S+\n", r.stdout), r.stdout


def test_exit_3_when_daemon_unreachable(tmp_path):
    missing = str(tmp_path / "no" / "such.sock")
    r = convdtest.convctl("ping", socket_path=missing)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("convctl: connect_failed"), r.stderr
    r = convdtest.convctl("--json", "count", "u", socket_path=missing)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    # A socket file where nobody listens.
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    r = convdtest.convctl("ping", socket_path=path)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)


def test_exit_3_when_overloaded(schema, convd_factory):
    d = convd_factory(schema, extra={"server": {"max_clients": 1}})
    held = wait_until(lambda: convdtest.pinged_client(d.socket),
                      timeout=scaled(10), what="the one client slot")
    try:
        r = d.convctl("ping")
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert "overloaded" in r.stderr, r.stderr
    finally:
        held.close()


# ------------------------------------------------------ finding the socket

def test_socket_from_environment(convd, tmp_path):
    env = {"CONVD_SOCKET": convd.socket}
    r = convdtest.convctl("ping", env=env)
    assert r.returncode == 0 and "pong" in r.stdout, (r.stdout, r.stderr)
    user = uid()
    r = convdtest.convctl("--json", "add", user, "anthropic", "user", "via env",
                          env=env)
    assert r.returncode == 0, r.stderr
    assert [x["content"] for x in history(convd, user, "anthropic")] == \
        ["via env"]
    # -s wins over CONVD_SOCKET.
    bogus = str(tmp_path / "nothing.sock")
    r = convdtest.convctl("ping", socket_path=convd.socket,
                          env={"CONVD_SOCKET": bogus})
    assert r.returncode == 0, r.stderr
    r = convdtest.convctl("ping", env={"CONVD_SOCKET": bogus})
    assert r.returncode == 3, (r.returncode, r.stderr)


def test_socket_from_config_file(convd, tmp_path):
    env = {"CONVD_SOCKET": ""}      # set but empty: not used
    r = convdtest.convctl("ping", config=convd.config, env=env)
    assert r.returncode == 0 and "pong" in r.stdout, (r.stdout, r.stderr)
    # CONVD_SOCKET wins over the file.
    r = convdtest.convctl("ping", config=convd.config,
                          env={"CONVD_SOCKET": str(tmp_path / "x.sock")})
    assert r.returncode == 3, (r.returncode, r.stderr)
    # An unreadable file is a usage error when the socket comes from it.
    r = convdtest.convctl("ping", config=str(tmp_path / "missing.conf"),
                          env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)


def test_default_socket():
    # Without -s, -c and CONVD_SOCKET (empty counts as unset), the default
    # path is tried.
    if os.path.exists("/run/convd/convd.sock"):
        pytest.skip("a system convd is running")
    r = convdtest.convctl("ping", env={"CONVD_SOCKET": ""})
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "/run/convd/convd.sock" in r.stderr, r.stderr
