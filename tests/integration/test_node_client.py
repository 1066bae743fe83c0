"""The Node.js client (clients/node, npm package convd-client) with the
machine's real node and npm, against a real convd and PostgreSQL.

The package is installed the way users install it, with its one dependency
(@msgpack/msgpack) from the npm registry, into a prefix in the build tree;
Node's own test runner (node --test) runs clients/node/test/*.test.js
against the installed copy; TypeScript (from npm) checks index.d.ts with a
usage file; the LINE bot example serves signed webhooks and replies through
a stand-in of LINE's reply API on loopback.  What the Node tests stored is
checked here in the database."""

import base64
import glob
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import pytest

import convdtest

NODE_SRC = os.path.join(convdtest.SRCDIR, "clients", "node")
HIST = "simple_conversation_history"
NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=error"]
NODE_TESTS = sorted(os.path.basename(p) for p in
                    glob.glob(os.path.join(NODE_SRC, "test", "*.test.js")))


def run(argv, timeout=300, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, **kw)
    return r


@pytest.fixture(scope="module")
def prefix():
    """clients/node installed from the repository into the build tree, with
    TypeScript beside it: npm install --install-links copies the package
    (as a registry install would) and fetches its dependency."""
    assert shutil.which("node") and shutil.which("npm"), \
        "node and npm are needed (scripts/common.sh installs nodejs)"
    p = os.path.join(convdtest.BUILDDIR, "tests", "node-client")
    shutil.rmtree(p, ignore_errors=True)
    os.makedirs(p)
    r = run(["npm", "install", "--install-links", *NPM_FLAGS, "--prefix", p,
             NODE_SRC, "typescript@5", "@types/node@20"])
    assert r.returncode == 0, r.stdout + r.stderr
    yield p


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("node-results")
    yield str(d)
    # a convd a Node test started and could not stop (node killed)
    try:
        with open(os.path.join(d, "daemons.pids")) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="module")
def restart_convd(schema):
    """A convd config (own socket, short shutdown_timeout) for the Node
    tests that start, kill and restart convd themselves."""
    d = convdtest.Convd(schema, extra={"server": {"shutdown_timeout": 2}})
    yield d
    shutil.rmtree(d.tmp, ignore_errors=True)


def node_env(prefix, convd, pg, results, restart_convd):
    env = dict(os.environ)
    env.update(pg.env())
    env.update({
        "NODE_PATH": os.path.join(prefix, "node_modules"),
        "CONVD_SOCKET": convd.socket,
        "CONVD_BIN": convdtest.CONVD,
        "CONVD_RESTART_CONFIG": restart_convd.config,
        "CONVD_PSQL": pg.bin("psql"),
        "CONVD_NODE_RESULTS": results,
    })
    return env


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def tap_counts(out):
    counts = {}
    for name in ("tests", "pass", "fail", "cancelled", "skipped", "todo"):
        m = re.search(rf"^# {name} (\d+)$", out, re.M)
        counts[name] = int(m.group(1)) if m else None
    return counts


def db_rows(pg, user):
    return {int(i): c for i, c in (
        line.split("|", 1) for line in pg.psql(
            f"SELECT id, content FROM {HIST} WHERE user_id = "
            f"{convdtest.sql_literal(user)}").splitlines())}


# ------------------------------------------------------------ installing

def test_installed_package_has_one_runtime_dependency(prefix, convd):
    pkg = os.path.join(prefix, "node_modules", "convd-client")
    assert not os.path.islink(pkg)
    with open(os.path.join(pkg, "package.json")) as f:
        meta = json.load(f)
    assert list(meta["dependencies"]) == ["@msgpack/msgpack"]
    # what npm installed for it: the one library, which has none of its own
    with open(os.path.join(prefix, "node_modules", "@msgpack", "msgpack",
                           "package.json")) as f:
        assert not json.load(f).get("dependencies")
    assert not os.path.exists(os.path.join(pkg, "node_modules"))
    # the published files, and nothing else (no tests)
    files = sorted(os.path.relpath(os.path.join(d, f), pkg)
                   for d, _, fs in os.walk(pkg) for f in fs)
    assert files == ["README.md", "examples/line_bot.js", "index.d.ts",
                     "index.js", "package.json"], files
    # CommonJS and ES module users both get the named exports
    esm = write(os.path.join(prefix, "esm-check.mjs"),
                "import { ConversationManager, ConvdDate } from 'convd-client';\n"
                "const m = new ConversationManager(process.argv[2]);\n"
                "const s = await m.stats();\n"
                "console.log(await m.ping(), s.started_at instanceof ConvdDate);\n"
                "m.close();\n")
    r = run(["node", esm, convd.socket])
    assert (r.returncode, r.stdout.strip()) == (0, "true true"), r.stderr
    r = run(["node", "-e", "const c = require('convd-client');"
             "new c.ConversationManager(process.argv[1]).ping()"
             ".then((ok) => console.log(ok, c.VERSION))", convd.socket],
            cwd=prefix)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["true", meta["version"]]


def test_npm_install_dot_clients_node(prefix, convd, tmp_path):
    """The literal `npm install ./clients/node`, in a project that carries
    convd's source (a git submodule, a vendored copy)."""
    proj = tmp_path / "bot"
    shutil.copytree(NODE_SRC, proj / "clients" / "node",
                    ignore=shutil.ignore_patterns("node_modules",
                                                  "package-lock.json"))
    r = run(["npm", "install", *NPM_FLAGS, "./clients/node"], cwd=proj)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(proj / "package.json") as f:
        assert "convd-client" in json.load(f)["dependencies"]
    r = run(["node", "-e", "require('convd-client').getConversationManager()"
             ".ping().then((ok) => { console.log(ok); "
             "require('convd-client').getConversationManager().close(); })"],
            cwd=proj, env=dict(os.environ, CONVD_SOCKET=convd.socket))
    assert (r.returncode, r.stdout.strip()) == (0, "true"), r.stderr


def test_typescript_declarations(prefix):
    """tsc --strict accepts the usage file against index.d.ts, and its
    @ts-expect-error lines are errors (or tsc would fail on them)."""
    src = os.path.join(prefix, "types-check.ts")
    shutil.copy(os.path.join(NODE_SRC, "test", "types-check.ts"), src)
    tsc = os.path.join(prefix, "node_modules", ".bin", "tsc")
    argv = [tsc, "--noEmit", "--strict", "--target", "es2022", "--module",
            "node16", "--moduleResolution", "node16", "--types", "node"]
    r = run(argv + [src], cwd=prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    # and a wrong call is refused
    bad = write(os.path.join(prefix, "types-bad.ts"),
                "import { ConversationManager } from 'convd-client';\n"
                "const m = new ConversationManager();\n"
                "void m.addMessage('U', 'p', 'robot', 'x');\n"
                "const n: string = await m.getConversationCount('U');\n"
                "export { n };\n")
    r = run(argv + [bad], cwd=prefix)
    assert r.returncode != 0
    assert '"robot"' in r.stdout and "TS2322" in r.stdout, r.stdout


# ------------------------------------------------------- node --test

@pytest.mark.parametrize("name", NODE_TESTS)
def test_node_suite(name, prefix, convd, pg, results, restart_convd):
    """One file of clients/node/test under `node --test`: every test in it
    runs and passes."""
    path = os.path.join(NODE_SRC, "test", name)
    with open(path) as f:
        declared = len(re.findall(r"^test\(", f.read(), re.M))
    assert declared > 0
    r = run(["node", "--test", "--test-reporter=tap", path],
            env=node_env(prefix, convd, pg, results, restart_convd),
            timeout=600)
    c = tap_counts(r.stdout)
    assert r.returncode == 0 and c["fail"] == 0, r.stdout[-6000:] + r.stderr
    assert c["pass"] == declared and c["tests"] == declared, c
    assert c["skipped"] == 0 and c["todo"] == 0 and c["cancelled"] == 0, c
    # what the tests report having stored is what the database holds
    if name == "pipeline.test.js":
        with open(os.path.join(results, "pipeline.json")) as f:
            rec = json.load(f)
        assert set(db_rows(pg, rec["user"])) == set(rec["ids"])
        assert len(rec["ids"]) == 100
    if name == "restart.test.js":
        for tag in ("kill", "term"):
            with open(os.path.join(results, f"restart_{tag}.json")) as f:
                rec = json.load(f)
            rows = db_rows(pg, rec["user"])
            assert sorted(rows) == sorted(rec["ids"]) and len(rows) == 100
            assert sorted(rows.values()) == sorted(
                f"{tag} #{i}" for i in range(100))
            assert rec["duplicates"] >= 1, rec
        # the Node tests left no convd behind, and the setting they used to
        # hold commits is reset
        assert pg.psql("SHOW synchronous_standby_names") == ""
        with open(os.path.join(results, "daemons.pids")) as f:
            for pid in f.read().split():
                assert not os.path.exists(f"/proc/{pid}") or \
                    open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid


# ------------------------------------------------------------- example

class LineApi(http.server.BaseHTTPRequestHandler):
    """A stand-in for LINE's reply API on loopback: records each call."""
    calls = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        LineApi.calls.append((self.path, self.headers["authorization"],
                              json.loads(body)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def test_line_bot_example_webhook(prefix, convd, pg):
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LineApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    secret = uuid.uuid4().hex
    example = os.path.join(prefix, "node_modules", "convd-client",
                           "examples", "line_bot.js")
    env = dict(os.environ, CONVD_SOCKET=convd.socket,
               LINE_CHANNEL_SECRET=secret, LINE_CHANNEL_ACCESS_TOKEN="tok",
               LINE_API_BASE=f"http://127.0.0.1:{api.server_address[1]}",
               BOT_PROVIDER="anthropic")
    bot = subprocess.Popen(["node", example, "0"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        line = bot.stdout.readline()
        m = re.match(r"listening on (http://\S+/webhook)", line)
        assert m, line + bot.stderr.read()
        url = m.group(1)
        user = "U" + uuid.uuid4().hex

        def post(events, sign=True):
            body = json.dumps({"destination": "Ubot",
                               "events": events}).encode()
            sig = base64.b64encode(hmac.new(secret.encode(), body,
                                            hashlib.sha256).digest())
            req = urllib.request.Request(url, data=body, headers={
                "content-type": "application/json",
                "x-line-signature": sig.decode() if sign else "AAAA"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        def event(text, n):
            return {"type": "message", "mode": "active",
                    "webhookEventId": f"01EVT{n}{user}", "replyToken": f"rt{n}",
                    "deliveryContext": {"isRedelivery": False},
                    "source": {"type": "user", "userId": user},
                    "message": {"type": "text", "id": str(n), "text": text}}

        LineApi.calls.clear()
        assert post([event("Hello", 1)], sign=False) == 401
        assert LineApi.calls == []
        assert post([event("Hello", 1)]) == 200
        assert post([event("What is the capital of Taiwan?", 2)]) == 200
        assert [(c[0], c[1], c[2]["replyToken"]) for c in LineApi.calls] == \
            [("/v2/bot/message/reply", "Bearer tok", "rt1"),
             ("/v2/bot/message/reply", "Bearer tok", "rt2")]
        # the model saw the history: the user's message was stored first
        assert [c[2]["messages"] for c in LineApi.calls] == [
            [{"type": "text", "text": '[anthropic] you said "Hello" '
              '(1 messages of context)'}],
            [{"type": "text", "text": '[anthropic] you said "What is the '
              'capital of Taiwan?" (3 messages of context)'}]]
        rows = pg.psql(f"SELECT role, content FROM {HIST} WHERE user_id = "
                       f"'{user}' ORDER BY id").splitlines()
        assert len(rows) == 4
        assert rows[0] == "user|Hello" and rows[2].startswith("user|What")
        assert rows[1].startswith("assistant|[anthropic] you said")
        # LINE delivers event 2 again: nothing is stored twice
        redelivered = event("What is the capital of Taiwan?", 2)
        redelivered["deliveryContext"]["isRedelivery"] = True
        assert post([redelivered]) == 200
        assert int(pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                           f"'{user}'")) == 4
        assert post([event("/reset", 3)]) == 200
        assert LineApi.calls[-1][2]["messages"] == [
            {"type": "text", "text": "Your conversation was reset."}]
        assert int(pg.psql(f"SELECT count(*) FROM {HIST} WHERE user_id = "
                           f"'{user}'")) == 0
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(10)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()
        api.shutdown()
        api.server_close()
    assert bot.returncode == 0, bot.stderr.read()


def test_line_bot_example_demo(prefix, convd):
    """--demo runs the flow of clients/python/examples/line_bot_flow.py."""
    example = os.path.join(prefix, "node_modules", "convd-client",
                           "examples", "line_bot.js")
    r = run(["node", example, "--demo", convd.socket], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "thread after /reset: null" in r.stdout
    assert "messages: 4" in r.stdout and "messages after /reset: 0" in r.stdout
    assert re.search(r"^  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  user ",
                     r.stdout, re.M), r.stdout
