"""SIGTERM answers what arrived (issue 14, point 8).

Under load (clients pipelining add_message without pause), convd gets
SIGTERM.  Every request whose bytes convd received is answered; the
connections then end with EOF, never with a reset (a Unix socket closed
with unread input resets the peer); and the database holds exactly the
acknowledged messages: nothing answered is missing, and nothing that got
no answer was stored.
"""
import signal
import socket
import threading
import time

import msgpack

import convdtest
from convdtest import Client, scaled

CLIENTS = 6
ROUNDS = 2


class Pipeliner:
    """One connection: a sender that pipelines add_message without
    waiting, and a receiver that records every answer and how the
    connection ended."""

    def __init__(self, path, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(30))
        self.sock.connect(path)
        self.name = name
        self.sent = {}          # msgid -> content
        self.ok = {}            # msgid -> content
        self.errors = {}        # msgid -> error
        self.ended = None       # "eof", or the exception
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.ts = [threading.Thread(target=self.send),
                   threading.Thread(target=self.recv)]
        for t in self.ts:
            t.start()

    def send(self):
        msgid = 0
        while not self.done.is_set():
            frames = []
            with self.lock:
                for _ in range(8):
                    msgid += 1
                    content = f"{self.name}-{msgid}"
                    self.sent[msgid] = content
                    frames.append(msgpack.packb(
                        [0, msgid, "add_message",
                         [self.name, "p", "user", content]]))
            try:
                self.sock.sendall(b"".join(frames))
            except (BrokenPipeError, ConnectionResetError, OSError):
                return
            time.sleep(0.002)

    def recv(self):
        up = msgpack.Unpacker(raw=False)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.ended = "eof"
                    break
                up.feed(data)
                for m in up:
                    with self.lock:
                        if m[2] is None:
                            self.ok[m[1]] = self.sent[m[1]]
                        else:
                            self.errors[m[1]] = m[2]
        except Exception as e:      # a reset lands here
            self.ended = e
        finally:
            self.done.set()

    def join(self):
        for t in self.ts:
            t.join(timeout=scaled(60))
        self.sock.close()


def stored(pg, user):
    out = pg.psql("SELECT content FROM simple_conversation_history "
                  f"WHERE user_id = {convdtest.sql_literal(user)}")
    return [x for x in out.splitlines() if x]


def test_sigterm_under_load_answers_everything_received(schema,
                                                        convd_factory):
    for rnd in range(ROUNDS):
        d = convd_factory(schema)
        clients = [Pipeliner(d.socket, f"drain{rnd}-{k}")
                   for k in range(CLIENTS)]
        # wait until the load is real
        convdtest.wait_until(
            lambda: all(len(p.ok) >= 50 for p in clients),
            timeout=scaled(30), what="load")
        d.signal(signal.SIGTERM)
        assert d.wait_exit(timeout=scaled(30)) == 0, d.log()
        for p in clients:
            p.join()
        log = d.log()
        assert "still running" not in log, log
        for p in clients:
            assert p.ended == "eof", \
                f"{p.name}: connection ended with {p.ended!r}"
            assert not p.errors, (p.name, list(p.errors.items())[:3])
            rows = stored(schema, p.name)
            assert len(rows) == len(set(rows)), "a message stored twice"
            acked = set(p.ok.values())
            # every acknowledged message is stored, and only those:
            # a request with no answer was never read, so never run
            assert set(rows) == acked, (
                p.name, len(acked), len(rows),
                sorted(set(rows) - acked)[:5],
                sorted(acked - set(rows))[:5])


def test_idle_and_busy_clients_see_eof_at_sigterm(schema, convd_factory):
    """An idle connection and one with a request in flight both end
    cleanly: the request is answered, then EOF."""
    d = convd_factory(schema)
    idle = Client(d.socket, timeout=scaled(10))
    busy = Client(d.socket, timeout=scaled(10))
    assert idle.call("ping") == "pong"
    lock = convdtest.TableLock(schema, "simple_conversation_history")
    lock.acquire()
    try:
        busy.request("add_message", "drain-busy", "p", "user", "held")
        # the insert is in flight: waiting for the table lock
        convdtest.wait_until(lambda: schema.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
            "l.relation WHERE c.relname = 'simple_conversation_history' "
            "AND NOT l.granted") != "0", timeout=scaled(10),
            what="the insert to wait for the lock")
        d.signal(signal.SIGTERM)
        # convd has begun its shutdown with the request in flight
        convdtest.wait_until(lambda: "shutting down (finishing 1 requests "
                             "in flight)" in d.log(), timeout=scaled(10),
                             what="convd to begin its shutdown")
    finally:
        lock.release()
    m = busy.recv()
    assert m is not None and m[2] is None, m
    assert busy.recv() is None
    assert idle.recv() is None
    assert d.wait_exit(timeout=scaled(30)) == 0
    assert stored(schema, "drain-busy") == ["held"]
    idle.close()
    busy.close()
