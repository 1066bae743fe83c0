"""Every test file is run by `make check` (issue 16: test_efficiency.py was
in neither INTEGRATION_TESTS nor EXTRA_DIST, yet store.c cited it as
proof): each tests/integration/test_*.py is listed in Makefile.am's
INTEGRATION_TESTS, and each C test source under tests/ belongs to a test
program of check_PROGRAMS (or to the fuzz target, which test_faults.py
builds and runs over its corpus)."""

import glob
import os
import re

import convdtest

SRC = convdtest.SRCDIR


def makefile_vars():
    """Makefile.am's assignments (= and +=, continuation lines joined):
    {variable: [words]}."""
    with open(os.path.join(SRC, "Makefile.am")) as f:
        text = f.read().replace("\\\n", " ")
    out = {}
    for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\+?=(.*)$", text,
                         re.M):
        out.setdefault(m[1], []).extend(m[2].split())
    return out


def test_every_integration_test_file_is_run():
    listed = set(makefile_vars()["INTEGRATION_TESTS"])
    files = {os.path.relpath(p, SRC) for p in glob.glob(
        os.path.join(SRC, "tests", "integration", "test_*.py"))}
    assert os.path.join("tests", "integration",
                        "test_suite_files.py") in files
    assert not files - listed, \
        f"not in INTEGRATION_TESTS: {sorted(files - listed)}"
    assert not listed - files, f"listed, missing: {sorted(listed - files)}"


def test_every_c_test_source_is_built():
    mk = makefile_vars()
    programs = mk["check_PROGRAMS"] + mk.get("noinst_PROGRAMS", [])
    sources = set()
    for prog in programs:
        canon = re.sub(r"[^A-Za-z0-9_]", "_", prog)
        sources.update(mk.get(canon + "_SOURCES", []))
    tests_c = {os.path.relpath(p, SRC) for p in
               glob.glob(os.path.join(SRC, "tests", "**", "*.c"),
                         recursive=True)}
    assert tests_c, "no C test sources found"
    assert not tests_c - sources, \
        f"C test sources no test program builds: {sorted(tests_c - sources)}"
    tests_run = set(mk["TESTS"])
    assert "$(check_PROGRAMS)" in tests_run, mk["TESTS"]
