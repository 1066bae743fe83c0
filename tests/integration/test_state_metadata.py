"""get_state's metadata through every client (issue 17, audit item 3),
against the real convd: the Python manager (blocking and asyncio),
convctl `state get|set` and `conversations` (text and --json), and
libconvclient's convc_get_state_ex from a program built on the public
header.  (The Node client: clients/node/test/state_metadata.test.js, run
by test_node_client.py.)  Each reads what another client set, so none
of them can drop it unnoticed."""

import asyncio
import json
import os
import shutil
import subprocess
import sys

import msgpack
import pytest

import convdtest
from convdtest import uid
from test_libclient import sanitized_library

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import (AsyncConversationManager,  # noqa: E402
                          ConversationManager)

LIBS = os.path.join(convdtest.BUILDDIR, ".libs")
META = {"title": "Trip to Taipei", "tags": ["travel", 2026],
        "blob": b"\x00\xff\xc1"}


def test_python_blocking_and_asyncio(convd):
    u = uid()
    with ConversationManager(convd.socket) as m:
        assert m.set_state(u, "openai", {"previous_response_id": "r1"},
                           conversation_id="c", metadata=META) == 1
        st = m.get_state(u, "openai", conversation_id="c")
        assert st["metadata"] == META and st["version"] == 1
        # none set: None; a set without metadata keeps it; {} clears it
        m.set_state(u, "openai", {"previous_response_id": "r2"})
        assert m.get_state(u, "openai")["metadata"] is None
        m.set_state(u, "openai", {"previous_response_id": "r3"},
                    conversation_id="c")
        assert m.get_state(u, "openai", conversation_id="c")[
            "metadata"] == META

    async def run():
        async with AsyncConversationManager(convd.socket) as a:
            got = await a.get_state(u, "openai", conversation_id="c")
            assert got["metadata"] == META
            await a.set_state(u, "openai", {"r": 3}, conversation_id="d",
                              metadata={"n": 1})
            return await a.get_state(u, "openai", conversation_id="d")

    assert asyncio.run(run())["metadata"] == {"n": 1}


def test_convctl_state_and_conversations(convd):
    u = uid()
    with convd.client() as c:
        c.call("add_message", user_id=u, provider="openai", role="user",
               content="hi", conversation_id="trip")
    r = convd.convctl("state", "set", u, "openai",
                      '{"previous_response_id": "r1"}',
                      '{"title": "Trip", "n": 2}', "--conversation", "trip",
                      "--expected-version", "0")
    assert r.returncode == 0 and r.stdout == "state saved, version 1\n", r
    with ConversationManager(convd.socket) as m:
        assert m.get_state(u, "openai", conversation_id="trip")[
            "metadata"] == {"title": "Trip", "n": 2}
    r = convd.convctl("state", "get", u, "openai", "--conversation", "trip")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("version 1, updated ")
    assert json.loads(lines[1]) == {"previous_response_id": "r1"}
    assert lines[2].startswith("metadata ")
    assert json.loads(lines[2][len("metadata "):]) == \
        {"title": "Trip", "n": 2}
    j = json.loads(convd.convctl("--json", "state", "get", u, "openai",
                                 "--conversation", "trip").stdout)
    assert j["metadata"] == {"title": "Trip", "n": 2}
    r = convd.convctl("conversations", u)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.rstrip("\n").split("\t")[-1]) == \
        {"title": "Trip", "n": 2}
    # left out: kept; {} clears it: no line, no column
    r = convd.convctl("state", "set", u, "openai", '{"r": 2}',
                      "--conversation", "trip")
    assert r.returncode == 0, r
    out = convd.convctl("state", "get", u, "openai", "--conversation",
                        "trip").stdout
    assert json.loads(out.splitlines()[2][len("metadata "):]) == \
        {"title": "Trip", "n": 2}, out
    r = convd.convctl("state", "set", u, "openai", '{"r": 3}', '{}',
                      "--conversation", "trip")
    assert r.returncode == 0, r
    out = convd.convctl("state", "get", u, "openai", "--conversation",
                        "trip").stdout
    assert len(out.splitlines()) == 2 and "metadata" not in out
    assert "{" not in convd.convctl("conversations", u).stdout
    # metadata must be a JSON object; get takes no JSON; at most two
    r = convd.convctl("state", "set", u, "openai", '{}', '[1]')
    assert r.returncode == 1 and "invalid_params" in r.stderr, r
    r = convd.convctl("state", "set", u, "openai", '{}', '{not json')
    assert r.returncode == 2, r
    r = convd.convctl("state", "get", u, "openai", '{}')
    assert r.returncode == 2, r
    r = convd.convctl("state", "set", u, "openai", '{}', '{}', '{}')
    assert r.returncode == 2, r


PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <convd/client.h>

static void hex(const char *what, const void *p, size_t n)
{
	const unsigned char *b = p;

	printf("%s ", what);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

/* argv: socket user; prints what convc_get_state_ex gives for the
 * conversations "with", "without" and "none" */
int main(int argc, char **argv)
{
	static const char *const convs[] = {"with", "without", "none"};
	struct convc *c;
	struct convc_error e;
	struct convc_state st;
	void *meta = (void *)1;
	size_t len = 1;

	if (argc != 3 || !(c = convc_connect(argv[1], 10000, &e)))
		return 2;
	for (int i = 0; i < 3; i++) {
		if (convc_get_state_ex(c, argv[2], "openai", convs[i], NULL,
				       &st, &meta, &len, &e) != CONVC_OK) {
			printf("FAIL %s: %s\n", e.code, e.message);
			return 1;
		}
		printf("%s found %d version %lld meta %d len %zu\n", convs[i],
		       st.found, (long long)st.version, meta != NULL, len);
		if (st.found)
			hex("  state", st.state_mp, st.state_mp_len);
		if (meta)
			hex("  meta", meta, len);
		free(meta);
		convc_state_free(&st);
	}
	/* metadata_mp NULL: convc_get_state */
	if (convc_get_state_ex(c, argv[2], "openai", "with", NULL, &st, NULL,
			       NULL, &e) != CONVC_OK)
		return 1;
	printf("plain found %d\n", st.found);
	convc_state_free(&st);
	convc_close(c);
	return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    shared = os.path.join(LIBS, "libconvclient.so")
    if not os.path.exists(shared):
        pytest.skip("built without the shared library")
    d = tmp_path_factory.mktemp("state-metadata")
    inc = d / "include" / "convd"
    inc.mkdir(parents=True)
    shutil.copy(os.path.join(convdtest.SRCDIR, "include", "convd",
                             "client.h"), inc / "client.h")
    (d / "meta.c").write_text(PROGRAM)
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "msgpack"],
                           stdout=subprocess.PIPE, text=True).stdout.split()
    if sanitized_library():     # scripts/sanitize.sh: the runtimes too
        flags += ["-fsanitize=address,undefined"]
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror",
                        "-I", str(d / "include"), str(d / "meta.c"), shared,
                        *flags, "-o", str(d / "meta")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    assert r.returncode == 0, r.stdout
    return str(d / "meta")


def test_libconvclient_get_state_ex(program, convd):
    u = uid()
    state = {"previous_response_id": "resp_1"}
    with ConversationManager(convd.socket) as m:
        m.set_state(u, "openai", state, conversation_id="with",
                    metadata=META)
        m.set_state(u, "openai", state, conversation_id="without")
    r = subprocess.run([program, convd.socket, u], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60,
                       env=dict(os.environ, LD_LIBRARY_PATH=LIBS))
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0] == "with found 1 version 1 meta 1 len %d" % \
        len(msgpack.packb(META, use_bin_type=True)), r.stdout
    assert msgpack.unpackb(bytes.fromhex(lines[1].split()[1])) == state
    assert msgpack.unpackb(bytes.fromhex(lines[2].split()[1])) == META
    assert lines[3] == "without found 1 version 1 meta 0 len 0"
    assert lines[5] == "none found 0 version 0 meta 0 len 0"
    assert lines[6] == "plain found 1"
