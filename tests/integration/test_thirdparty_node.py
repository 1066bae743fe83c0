"""convd driven by a Node.js MessagePack-RPC client from npm,
msgpack-rpc-lite (issue 14, point 4): every method, errors, timestamps
(decoded by hand: msgpack-lite does not know the extension type -1), 100
pipelined requests, and the max_clients refusal, which the client must
match to its request (it used to get a nil msgid, then EPIPE, and crash).

The package is installed from the npm registry into the build tree
($CONVD_BUILDDIR/node) by this test's set-up; the script is
tests/integration/node/rpc_lite.js.
"""
import json
import os
import shutil
import subprocess

import pytest

import convdtest
from convdtest import Client, scaled

PACKAGE = "msgpack-rpc-lite@1.0.2"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node",
                      "rpc_lite.js")


@pytest.fixture(scope="module")
def node_modules():
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "nodejs (with npm) is not installed"
    prefix = os.path.join(convdtest.BUILDDIR, "node")
    mods = os.path.join(prefix, "node_modules")
    if not os.path.isdir(os.path.join(mods, "msgpack-rpc-lite")):
        os.makedirs(prefix, exist_ok=True)
        r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit",
                            "--no-fund", "--no-save", PACKAGE],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stdout
    return mods


def test_msgpack_rpc_lite(schema, convd, convd_factory, node_modules):
    busy = convd_factory(schema, extra={"server": {"max_clients": 1}})
    holder = convdtest.wait_until(lambda: Client(busy.socket),
                                  timeout=scaled(10))
    try:
        assert holder.call("ping") == "pong"
        env = dict(os.environ, NODE_PATH=node_modules)
        r = subprocess.run(["node", SCRIPT, convd.socket, busy.socket],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=scaled(120))
    finally:
        holder.close()
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"ok": True, "pipelined": 100, "refused": "overloaded"}
    with Client(convd.socket) as c:
        assert c.call("get_conversation_count", "jsp") == 90
