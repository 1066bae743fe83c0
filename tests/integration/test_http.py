"""The HTTP endpoint ([http] listen): GET /metrics checked by Prometheus's
own promtool and against the requests sent under load, /healthz and
/readyz through a PostgreSQL stop and start, its limits, a Unix socket.
The real convd, the real PostgreSQL, the real promtool (Debian's
prometheus package); convd picks a free loopback port (127.0.0.1:0) and
logs it."""

import os
import socket
import subprocess
import threading
import time

import pytest

import convdtest
from convdtest import (http_address, http_get, parse_prometheus,
                       prom_histograms, prom_value, scaled, uid, wait_until)

HTTP = {"http": {"listen": "127.0.0.1:0"}}


def promtool_check(text):
    """promtool check metrics: exit 0 and no lint finding."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and \
        not r.stderr.strip(), (r.returncode, r.stdout, r.stderr, text)


def scrape(addr):
    status, headers, body = http_get(addr, "/metrics")
    assert status == 200, (status, body)
    assert headers["content-type"] == \
        "text/plain; version=0.0.4; charset=utf-8", headers
    return body.decode("utf-8")


def test_metrics_promtool_and_convctl(schema, convd_factory):
    d = convd_factory(schema, extra=HTTP)
    addr = http_address(d)
    with d.client() as c:
        assert c.call("ping") == "pong"
        c.call("add_message", uid(), "openai", "user", "hello")
        with pytest.raises(convdtest.RpcError):
            c.call("add_message", uid(), "openai", "robot", "hello")
        c.send_raw(b"\xc1")
        c.recv()
    text = scrape(addr)
    promtool_check(text)
    fams = parse_prometheus(text)
    assert fams["convd_request_duration_seconds"]["type"] == "histogram"
    assert prom_value(fams, "convd_requests_total", method="add_message") == 2
    assert prom_value(fams, "convd_request_errors_total",
                      method="add_message", code="invalid_params") == 1
    assert prom_value(fams, "convd_protocol_errors_total",
                      code="invalid_request") == 1
    assert prom_value(fams, "convd_pool_database_up") == 1
    for name in ("convd_pool_connections_open", "convd_clients_connected",
                 "convd_retention_max_age_seconds", "convd_memory_heap_bytes"):
        assert fams[name]["type"] == "gauge", name
    version = subprocess.run([convdtest.CONVD, "--version"],
                             capture_output=True, text=True).stdout.split()[1]
    assert prom_value(fams, "convd_build_info", version=version) == 1
    # every stats field convd sends has its metric (name, type, unit) in
    # src/prom.c's table, not the generic gauge kept for unknown fields
    unknown = [n for n, f in fams.items() if "not known to" in f["help"]]
    assert not unknown, f"stats fields without a metric in prom.c: {unknown}"
    # convctl stats --prometheus: the same exposition (one formatter); the
    # values move (uptime, clients), the metrics and labels do not
    r = d.convctl("stats", "--prometheus")
    assert r.returncode == 0, (r.stdout, r.stderr)
    promtool_check(r.stdout)
    other = parse_prometheus(r.stdout)

    def shape(f):
        return [(name, fam["type"], fam["help"],
                 [sorted(ls.items()) for ls, _ in fam["samples"]])
                for name, fam in f.items()]
    assert shape(other) == shape(fams)
    # a HEAD has the headers and no body
    status, headers, body = http_get(addr, "/metrics", method="HEAD")
    assert status == 200 and body == b"", (status, body)


def test_metrics_count_requests_under_load(schema, convd_factory):
    """Clients pipeline add_message while a scraper reads /metrics: every
    scrape is valid and never goes backwards, and in the end the counts
    are those of the requests sent."""
    d = convd_factory(schema, extra=HTTP)
    addr = http_address(d)
    writers = [convdtest.PipelinedWriter(d.socket, uid("load"), window=8)
               for _ in range(4)]
    scrapes = []
    stop = threading.Event()
    failure = []

    def scraper():
        try:
            while not stop.is_set():
                scrapes.append(parse_prometheus(scrape(addr)))
        except Exception as e:  # noqa: BLE001 - reported below
            failure.append(e)

    t = threading.Thread(target=scraper, daemon=True)
    t.start()
    for w in writers:
        w.start()
    deadline = time.monotonic() + scaled(30)
    while sum(len(w.acked) for w in writers) < 2000 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    for w in writers:
        w.stop_sending.set()
    for w in writers:
        w.join(scaled(30))
        assert w.exc is None, w.exc
        assert not w.errors, w.errors[:3]
        assert len(w.acked) == len(w.sent), (len(w.acked), len(w.sent))
    stop.set()
    t.join(scaled(30))
    assert not failure, failure[0]
    assert len(scrapes) >= 3, len(scrapes)
    # while the load ran: counters and histograms only grow
    last = 0
    for fams in scrapes:
        n = prom_value(fams, "convd_requests_total", method="add_message") \
            if "convd_requests_total" in fams and any(
                ls == {"method": "add_message"}
                for ls, _ in fams["convd_requests_total"]["samples"]) else 0
        assert n >= last, (n, last)
        last = n
    sent = sum(len(w.sent) for w in writers)
    assert sent >= 2000, sent
    fams = parse_prometheus(scrape(addr))
    assert prom_value(fams, "convd_requests_total",
                      method="add_message") == sent
    h = prom_histograms(fams, "convd_request_duration_seconds")[
        (("method", "add_message"),)]
    assert h["count"] == sent and h["buckets"][-1][1] == sent, h
    assert h["sum"] > 0, h
    assert not any(ls.get("method") == "add_message" for ls, _ in
                   fams.get("convd_request_errors_total",
                            {"samples": []})["samples"])
    rows = d.pg.psql("SELECT count(*) FROM simple_conversation_history "
                     "WHERE user_id LIKE 'load-%'")
    assert int(rows) >= sent, (rows, sent)


def test_probes_follow_postgres(pg_factory, convd_factory):
    cluster = pg_factory()
    d = convd_factory(cluster, extra=HTTP)
    addr = http_address(d)

    def ready():
        return http_get(addr, "/readyz", timeout=5)

    # ready once the schema check has run
    status, _, body = wait_until(lambda: (lambda r: r if r[0] == 200
                                          else None)(ready()),
                                 timeout=scaled(20), what="/readyz 200")
    assert body == b"ready\n", body
    assert http_get(addr, "/healthz")[0] == 200
    cluster.stop()
    status, _, body = wait_until(lambda: (lambda r: r if r[0] == 503
                                          else None)(ready()),
                                 timeout=scaled(20),
                                 what="/readyz to say 503")
    assert body.startswith(b"not ready: database down: "), body
    # the loop runs: /healthz and /metrics still answer at once
    assert http_get(addr, "/healthz")[:3:2] == (200, b"ok\n")
    fams = parse_prometheus(scrape(addr))
    assert prom_value(fams, "convd_pool_database_up") == 0
    # the health method says the same
    with d.client() as c:
        h = c.call("health")
    assert h["ok"] is False and h["database"] == "down", h
    cluster.start()
    wait_until(lambda: ready()[0] == 200, timeout=scaled(30),
               what="/readyz to say 200 again")
    assert ready()[2] == b"ready\n"


def test_readyz_without_schema(schema, convd_factory):
    schema.createdb("http_no_schema")
    d = convd_factory(schema, extra=dict(HTTP, database={
        "name": "http_no_schema"}))
    addr = http_address(d)
    status, _, body = wait_until(
        lambda: (lambda r: r if r[0] == 503 and b"schema" in r[2]
                 else None)(http_get(addr, "/readyz")),
        timeout=scaled(15), what="/readyz to see no schema")
    assert body.startswith(b"not ready: schema "), body
    assert http_get(addr, "/healthz")[0] == 200


def test_readyz_503_while_stopping(schema, convd_factory):
    """While convd drains its requests on SIGTERM, /readyz says so (a load
    balancer stops sending), /healthz still answers."""
    d = convd_factory(schema, extra=dict(HTTP, server={
        "shutdown_timeout": 10}))
    addr = http_address(d)
    lock = convdtest.TableLock(schema, "simple_conversation_history")
    lock.acquire()
    try:
        c = d.client()
        c.request("add_message", uid(), "openai", "user", "held")
        time.sleep(0.3)
        d.signal(15)
        status, _, body = wait_until(
            lambda: (lambda r: r if r[0] == 503 else None)(
                http_get(addr, "/readyz")),
            timeout=scaled(10), what="/readyz 503 while stopping")
        assert body == b"not ready: shutting down\n", body
        assert http_get(addr, "/healthz")[0] == 200
    finally:
        lock.release()
    assert d.wait_exit(scaled(20)) == 0
    c.close()


def raw_http(addr, data, timeout=5.0):
    """Sends raw bytes, returns everything read until the server closes
    (or b"" after timeout with nothing)."""
    s = socket.create_connection(addr, timeout=scaled(timeout))
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def test_http_limits(schema, convd_factory):
    d = convd_factory(schema, extra={"http": {
        "listen": "127.0.0.1:0", "max_connections": 2, "timeout": 4,
        "max_header_bytes": "1K"}})
    addr = http_address(d)
    # only GET and HEAD; no body; bounded headers
    assert raw_http(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 0\r\n\r\n").startswith(
                        b"HTTP/1.1 501"), "POST not refused"
    assert raw_http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 4\r\n\r\nabcd").startswith(
                        b"HTTP/1.1 413")
    big = raw_http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                   b"a" * 2048 + b"\r\n\r\n")
    assert big == b"" or big.startswith(b"HTTP/1.1 4"), big[:100]
    assert http_get(addr, "/nothing")[0] == 404
    # two idle connections take every slot: a third waits, then is served
    # when one of them goes
    idle = [socket.create_connection(addr) for _ in range(2)]
    time.sleep(0.3)
    third = socket.create_connection(addr, timeout=scaled(5))
    third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    third.settimeout(0.8)
    with pytest.raises(socket.timeout):
        third.recv(100)
    idle[0].close()
    third.settimeout(scaled(5))
    assert third.recv(100).startswith(b"HTTP/1.1 200"), "not served"
    third.close()
    # an idle connection is closed after [http] timeout
    idle[1].settimeout(scaled(10))
    t0 = time.monotonic()
    assert idle[1].recv(100) == b""
    assert time.monotonic() - t0 < scaled(10)
    idle[1].close()
    # and the endpoint is as good as new
    wait_until(lambda: http_get(addr, "/healthz")[0] == 200,
               timeout=scaled(10), what="/healthz after the limits")


def test_http_unix_socket(schema, convd_factory, tmp_path):
    path = str(tmp_path / "http.sock")
    d = convd_factory(schema, extra={"http": {"listen": path}})
    assert http_address(d) == path
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # server's mode
    assert http_get(path, "/healthz")[:3:2] == (200, b"ok\n")
    promtool_check(scrape(path))
    convdtest.stop_ok(d)
    assert not os.path.exists(path)


@pytest.mark.parametrize("value,reason", [
    ("0.0.0.0:9650", "only a loopback address"),
    ("192.168.1.1:80", "only a loopback address"),
    ("[::]:9650", "only a loopback address"),
    ("example.com:80", "IP address or localhost"),
    ("127.0.0.1", "HOST:PORT"),
    ("127.0.0.1:65536", "0 to 65535"),
    ("relative/path", "HOST:PORT"),
])
def test_http_listen_refused(tmp_path, value, reason):
    conf = convdtest.write_config(str(tmp_path / "c.conf"),
                                  {"http": {"listen": value}})
    r = subprocess.run([convdtest.CONVD, "-t", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "[http] listen" in r.stderr and reason in r.stderr, r.stderr


def test_http_off_by_default(convd):
    assert "http: listening" not in convd.log()
    r = subprocess.run([convdtest.CONVD, "-t", "-c", convd.config],
                       capture_output=True, text=True, timeout=30)
    assert "[http]\nlisten = \"\"\n" in r.stdout, r.stdout
