"""libconvclient retries add_message safely when the caller asks it to
(issue 14, point 7): with convc_set_retries, every message gets a fresh
idempotency key, and a call whose connection breaks is sent again, with
the same key, on a new connection.  A program writes 300 messages while
convd is restarted with SIGTERM twice and SIGKILL once: every call
succeeds, and every message is stored exactly once."""
import os
import shutil
import signal
import subprocess
import time

import pytest

import convdtest
from convdtest import Client, scaled
from test_libclient import sanitized_library

LIBS = os.path.join(convdtest.BUILDDIR, ".libs")
N = 300

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <convd/client.h>

int main(int argc, char **argv)
{
	struct convc_error e;
	struct convc *c = convc_connect(argv[1], 10000, &e);
	int n = atoi(argv[3]), dups = 0;
	int64_t id, id2;
	bool dup;

	if (!c || convc_set_retries(c, 40, &e) != CONVC_OK) {
		fprintf(stderr, "setup: %s: %s\n", e.code, e.message);
		return 1;
	}
	/* an explicit key: the second call stores nothing */
	if (convc_add_message_key(c, argv[2], "p", "user", "keyed", 5, NULL,
				  "explicit-1", &id, NULL, &dup, &e) ||
	    dup ||
	    convc_add_message_key(c, argv[2], "p", "user", "keyed again", 11,
				  NULL, "explicit-1", &id2, NULL, &dup, &e) ||
	    !dup || id2 != id) {
		fprintf(stderr, "explicit key: %s: %s\n", e.code, e.message);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char text[32];
		int len = snprintf(text, sizeof(text), "m%04d", i);

		if (convc_add_message_key(c, argv[2], "p", "user", text,
					  (size_t)len, NULL, NULL, &id, NULL,
					  &dup, &e) != CONVC_OK) {
			fprintf(stderr, "add %d: %s: %s\n", i, e.code,
				e.message);
			return 1;
		}
		dups += dup;
		if (i % 50 == 0) {
			printf("progress %d\n", i);
			fflush(stdout);
		}
	}
	printf("done %d %d\n", n, dups);
	convc_close(c);
	return 0;
}
"""


def test_retries_across_restarts(schema, convd_factory, tmp_path):
    shared = os.path.join(LIBS, "libconvclient.so")
    if not os.path.exists(shared):
        pytest.skip("built without the shared library")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    src = tmp_path / "retry.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "retry"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "msgpack"],
                           stdout=subprocess.PIPE, text=True).stdout.split()
    if sanitized_library():     # scripts/sanitize.sh: the runtimes too
        flags += ["-fsanitize=address,undefined"]
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-I",
                        os.path.join(convdtest.SRCDIR, "include"), str(src),
                        shared, *flags, "-o", str(exe)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    assert r.returncode == 0, r.stdout
    d = convd_factory(schema)
    user = "retry-user"
    proc = subprocess.Popen([str(exe), d.socket, user, str(N)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            env=dict(os.environ, LD_LIBRARY_PATH=LIBS))
    try:
        for sig, after in ((signal.SIGTERM, 40), (signal.SIGKILL, 120),
                           (signal.SIGTERM, 200)):
            # let it write a while, then restart convd under it
            convdtest.wait_until(
                lambda: Client(d.socket).call(
                    "get_conversation_count", user) > after,
                timeout=scaled(30), what="progress")
            d.signal(sig)
            d.wait_exit(timeout=scaled(30))
            time.sleep(0.2)
            d.start()
        out, err = proc.communicate(timeout=scaled(120))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err, d.log()[-3000:])
    assert f"done {N}" in out, out
    rows = schema.psql("SELECT content FROM simple_conversation_history"
                       f" WHERE user_id = '{user}' ORDER BY id").splitlines()
    assert rows[0] == "keyed"
    assert rows[1:] == [f"m{i:04d}" for i in range(N)], \
        (len(rows), [r for r in rows if rows.count(r) > 1][:5])
