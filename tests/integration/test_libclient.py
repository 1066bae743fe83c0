"""libconvclient: the non-blocking mode against a real convd (pipelined
requests through callbacks, driven by poll(2): tests/libclient_nb), and the
library as it is shipped: soname, exported symbols, pkg-config file, and a
program built from the public header alone, linked shared and static."""

import os
import re
import shutil
import subprocess
import uuid

import pytest

import convdtest

HIST = "simple_conversation_history"
LIBS = os.path.join(convdtest.BUILDDIR, ".libs")
SHARED = os.path.join(LIBS, "libconvclient.so")
STATIC = os.path.join(LIBS, "libconvclient.a")


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120,
                          **kw)


def tap_failures(out):
    return [ln for ln in out.splitlines() if ln.startswith("not ok")]


def test_nonblocking_against_convd(convd, pg):
    user = f"nb-{uuid.uuid4().hex[:12]}"
    prog = os.path.join(convdtest.BUILDDIR, "tests", "libclient_nb")
    assert os.path.exists(prog), f"{prog} was not built (make check builds it)"
    r = run([prog, convd.socket, user])
    assert r.returncode == 0 and not tap_failures(r.stdout), r.stdout
    m = re.search(r"^1\.\.(\d+)$", r.stdout, re.M)
    assert m and int(m.group(1)) >= 15, r.stdout
    # what the callbacks saw is what the database holds
    rows = pg.psql(f"SELECT content FROM {HIST} WHERE user_id = '{user}' "
                   f"ORDER BY content").splitlines()
    assert rows == [f"message {i:03d}" for i in range(200)]


def test_soname_and_exports():
    if not os.path.exists(SHARED):
        pytest.skip("built without the shared library")
    d = run(["readelf", "-d", SHARED]).stdout
    m = re.search(r"SONAME\)\s+Library soname: \[(.*?)\]", d)
    assert m and re.fullmatch(r"libconvclient\.so\.\d+", m.group(1)), d
    with open(os.path.join(convdtest.SRCDIR, "include", "convd",
                           "client.h")) as f:
        header = f.read()
    major = re.search(r"#define CONVC_VERSION_MAJOR (\d+)", header).group(1)
    assert m.group(1) == f"libconvclient.so.{major}"
    syms = run(["nm", "-D", "--defined-only", SHARED]).stdout.split("\n")
    names = [ln.split()[-1] for ln in syms if ln.strip()]
    assert names and all(n.startswith("convc_") for n in names), \
        [n for n in names if not n.startswith("convc_")]
    # every function the header declares is there
    declared = set(re.findall(r"\b(convc_[a-z_]+)\(", header))
    assert declared - set(names) == set()


def test_pkg_config_file():
    pc = os.path.join(convdtest.BUILDDIR, "convclient.pc")
    with open(pc) as f:
        text = f.read()
    with open(os.path.join(convdtest.SRCDIR, "include", "convd",
                           "client.h")) as f:
        header = f.read()
    ver = ".".join(re.search(rf"#define CONVC_VERSION_{k} (\d+)",
                             header).group(1)
                   for k in ("MAJOR", "MINOR", "PATCH"))
    assert re.search(rf"^Version: {re.escape(ver)}$", text, re.M), text
    assert re.search(r"^Requires:.*\bmsgpack\b", text, re.M), text
    assert re.search(r"^Libs:.*-lconvclient\b", text, re.M), text
    r = run(["pkg-config", "--validate", pc])
    assert r.returncode == 0, r.stdout


PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <convd/client.h>

int main(int argc, char **argv)
{
	struct convc_error e;
	struct convc *c = convc_connect(argv[1], 5000, &e);
	int64_t n = -1;

	if (argc != 2 || !c)
		return 2;
	if (convc_ping(c, &e) != CONVC_OK ||
	    convc_get_conversation_count(c, "nobody-here", NULL, NULL, &n,
					 &e) != CONVC_OK)
		return 3;
	printf("%s %lld\n", convc_version(), (long long)n);
	convc_close(c);
	return 0;
}
"""


def sanitized_library():
    """Whether the build under test was configured --enable-sanitizers."""
    try:
        with open(os.path.join(convdtest.BUILDDIR, "Makefile")) as f:
            return any(line.startswith("SAN_CFLAGS = -fsanitize")
                       for line in f)
    except OSError:
        return False


# What the test programs share: the headers, the error of the last call
# `e`, CHECK(call) (exit 1 with the error), hex(what, bytes) as a line
# "what HEX" ("-" for NULL).
PRELUDE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <convd/client.h>

static struct convc_error e;

#define CHECK(call) do { \
	if ((call) != CONVC_OK) { \
		printf("FAIL %s: %s: %s\n", #call, e.code, e.message); \
		exit(1); \
	} } while (0)

static void hex(const char *what, const void *p, size_t n)
{
	const unsigned char *b = p;

	printf("%s ", what);
	if (!p)
		printf("-");
	for (size_t i = 0; p && i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}
"""


def build_program(d, name, source, std="c99"):
    """Compiles the C program `source` in directory d against the public
    header alone (as installed in $(includedir)/convd) and the shared
    library, -Wall -Wextra -Werror; its path (skips without the shared
    library)."""
    if not os.path.exists(SHARED):
        pytest.skip("built without the shared library")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    src = d / f"{name}.c"
    src.write_text(source)
    exe = d / name
    inc = d / "include"
    (inc / "convd").mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(convdtest.SRCDIR, "include", "convd",
                             "client.h"), inc / "convd" / "client.h")
    flags = run(["pkg-config", "--cflags", "--libs", "msgpack"]).stdout.split()
    if sanitized_library():     # scripts/sanitize.sh: the runtimes too
        flags += ["-fsanitize=address,undefined"]
    r = run([cc, f"-std={std}", "-Wall", "-Wextra", "-Werror",
             "-Wno-unused-result", "-I", str(inc), str(src), SHARED, *flags,
             "-o", str(exe)])
    assert r.returncode == 0, r.stdout
    return str(exe)


def run_program(argv, timeout=120):
    """Runs a program of build_program (argv[0], or a wrapper before it):
    (lines, one, every): one(KEY) is the rest of the one line "KEY ...",
    every(KEY) of all such lines."""
    r = subprocess.run(argv, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout,
                       env=dict(os.environ, LD_LIBRARY_PATH=LIBS))
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()

    def every(key):
        return [ln[len(key) + 1:] for ln in lines if ln.startswith(key + " ")]

    def one(key):
        got = every(key)
        assert len(got) == 1, (key, r.stdout)
        return got[0]
    return lines, one, every


@pytest.mark.parametrize("link", ["shared", "static"])
def test_program_from_public_header(convd, tmp_path, link):
    lib = SHARED if link == "shared" else STATIC
    if not os.path.exists(lib):
        pytest.skip(f"built without the {link} library")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    src = tmp_path / "app.c"
    src.write_text(PROGRAM)
    # only the installed header directory and msgpack's flags
    flags = run(["pkg-config", "--cflags", "--libs", "msgpack"]).stdout.split()
    # the header alone, as installed in $(includedir)/convd
    inc = tmp_path / "include"
    (inc / "convd").mkdir(parents=True)
    shutil.copy(os.path.join(convdtest.SRCDIR, "include", "convd",
                             "client.h"), inc / "convd" / "client.h")
    exe = tmp_path / "app"
    # A library built by ./configure --enable-sanitizers (scripts/
    # sanitize.sh) needs the sanitizer runtimes in the program too.
    if sanitized_library():
        flags += ["-fsanitize=address,undefined"]
    r = run([cc, "-std=c99", "-Wall", "-Werror", "-I", str(inc), str(src),
             lib, *flags, "-o", str(exe)])
    assert r.returncode == 0, r.stdout
    env = dict(os.environ, LD_LIBRARY_PATH=LIBS)
    r = run([str(exe), convd.socket], env=env)
    assert r.returncode == 0, r.stdout
    assert re.fullmatch(r"\d+\.\d+\.\d+ 0\n", r.stdout), r.stdout
