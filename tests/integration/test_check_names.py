"""scripts/check-names (issue 16: module prefixes that match their files, no
unused exports): it passes on this tree and its build, and fails on a copy
broken one way at a time -- a symbol compiled into a real object with a
foreign prefix or with no user, a header name without its prefix, an
exception row removed or gone stale, a module without its row, an object
older than its source.

The copy is src/, include/, scripts/, HACKING.md and Makefile.am copied
with their times, and a build tree whose objects are links to this
build's; a broken source is compiled for real into the object it
replaces."""

import os
import re
import shutil
import subprocess
import sys

import pytest

import convdtest

SRC = convdtest.SRCDIR
BUILD = convdtest.BUILDDIR
SCRIPT = os.path.join(SRC, "scripts", "check-names")


def run(srcdir, builddir, *args):
    p = subprocess.run([sys.executable, os.path.join(srcdir, "scripts",
                                                     "check-names"),
                        *args, srcdir, builddir],
                       capture_output=True, text=True, timeout=300)
    assert "Bail out" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


def failed_points(out):
    """{point number: [detail lines]} of the 'not ok' points."""
    points, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"(not )?ok (\d+) - ", line)
        if m:
            cur = int(m.group(2)) if m.group(1) else None
            if cur is not None:
                points[cur] = []
        elif cur is not None and line.startswith("#"):
            points[cur].append(line)
    return points


def point_no(out, words):
    for line in out.splitlines():
        m = re.match(r"(?:not )?ok (\d+) - (.*)", line)
        if m and words in m.group(2):
            return int(m.group(1))
    raise AssertionError("no point about %r in:\n%s" % (words, out))


def test_tree_passes():
    p = run(SRC, BUILD)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "not ok" not in p.stdout
    assert re.search(r"^1\.\.6$", p.stdout, re.M), p.stdout


def test_symbols_come_from_the_objects():
    """The symbols are the objects' own: pool_acquire is static now, its
    wrapper is exported; the migrate modules carry their files' names."""
    out = run(SRC, BUILD, "--symbols").stdout
    syms = {tuple(line.split()[::2]) for line in out.splitlines()}
    assert ("src/pool.c", "pool_acquire_then") in syms
    assert ("src/pool.c", "pool_acquire") not in syms
    assert ("src/sdn.c", "sdn_notify") in syms
    assert ("src/migrate_catalog.c", "migrate_catalog_load") in syms
    assert ("src/convd.c", "main") in syms
    for prefix in ("mcat_", "mdiff_", "mschema_", "madopt_"):
        assert not [s for s in syms if s[1].startswith(prefix)], prefix


@pytest.fixture
def tree(tmp_path):
    """A copy of the source tree (times kept) and a build tree of links to
    this build's objects."""
    src = tmp_path / "src-tree"
    build = tmp_path / "build-tree"
    for d in ("src", "include", "scripts"):
        shutil.copytree(os.path.join(SRC, d), src / d, copy_function=shutil.copy2)
    for f in ("HACKING.md", "Makefile.am"):
        shutil.copy2(os.path.join(SRC, f), src / f)
    # the C sources of the tests: their objects are the tests' uses
    for root, _dirs, files in os.walk(os.path.join(SRC, "tests")):
        rel = os.path.relpath(root, SRC)
        for f in files:
            if f.endswith(".c"):
                os.makedirs(src / rel, exist_ok=True)
                shutil.copy2(os.path.join(root, f), src / rel / f)
    for top in ("src", "tests"):
        for root, _dirs, files in os.walk(os.path.join(BUILD, top)):
            rel = os.path.relpath(root, BUILD)
            for f in files:
                if f.endswith(".o"):
                    os.makedirs(build / rel, exist_ok=True)
                    os.symlink(os.path.join(root, f), build / rel / f)
    return str(src), str(build)


def makefile_cc():
    with open(os.path.join(BUILD, "Makefile")) as f:
        return re.search(r"^CC = (.*)$", f.read(), re.M).group(1).split()


def add_to_source(tree, base, code):
    """Appends code to src/BASE.c of the copy and compiles it into every
    object of it in the copy's build tree."""
    src, build = tree
    path = os.path.join(src, "src", base + ".c")
    with open(path, "a") as f:
        f.write(code)
    objs = [os.path.join(root, f)
            for root, _d, files in os.walk(os.path.join(build, "src"))
            for f in files if f.endswith("-%s.o" % base)]
    assert objs, base
    for obj in objs:
        os.unlink(obj)
        subprocess.run(makefile_cc() + [
            "-c", "-D_GNU_SOURCE", "-I", os.path.join(src, "include"),
            "-I", BUILD, "-o", obj, path], check=True)


def edit(tree, rel, old, new):
    path = os.path.join(tree[0], rel)
    with open(path) as f:
        text = f.read()
    assert old in text, (rel, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def test_copy_passes(tree):
    p = run(*tree)
    assert p.returncode == 0, p.stdout


def test_foreign_prefix_fails(tree):
    add_to_source(tree, "addr", "\nint bogus_name(void);\n"
                  "int bogus_name(void) { return 1; }\n")
    p = run(*tree)
    assert p.returncode == 1
    bad = failed_points(p.stdout)
    n = point_no(p.stdout, "global symbol")
    assert any("src/addr.c defines bogus_name (prefix addr_)" in d
               for d in bad[n]), p.stdout
    # nothing uses it either
    n = point_no(p.stdout, "used by another object")
    assert any("bogus_name" in d and "static" in d for d in bad[n]), p.stdout


def test_unused_export_fails(tree):
    add_to_source(tree, "addr", "\nint addr_nobody_calls(void);\n"
                  "int addr_nobody_calls(void) { return 1; }\n")
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert p.returncode == 1
    assert list(bad) == [point_no(p.stdout, "used by another object")], \
        p.stdout
    assert any("src/addr.c: addr_nobody_calls is used by no other object"
               in d for d in next(iter(bad.values()))), p.stdout


def test_header_name_without_prefix_fails(tree):
    edit(tree, "include/addr.h", "#include \"common.h\"",
         "#include \"common.h\"\n#define NOT_ADDRS 1\n"
         "enum addr_kind { ADDR_KIND_X, KIND_Y };\nstruct stray { int a; };\n"
         "typedef int (*stray_fn)(void);\n")
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert list(bad) == [point_no(p.stdout, "macro, enum constant")]
    details = "\n".join(next(iter(bad.values())))
    for name in ("macro NOT_ADDRS", "enum constant KIND_Y", "struct stray",
                 "typedef stray_fn"):
        assert "include/addr.h: " + name + " (prefix addr_)" in details
    assert "ADDR_KIND_X" not in details and "addr_kind" not in details


def test_removed_exception_fails(tree):
    edit(tree, "HACKING.md", "| `clock_cache` |", "| `clock_cachex` |")
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert any("src/convd.c defines clock_cache" in d
               for d in bad[point_no(p.stdout, "global symbol")])
    # and the row that matches nothing is gone stale
    assert any("clock_cachex (src/convd.c, prefix) no longer needs its row"
               in d for d in bad[point_no(p.stdout, "exception")])


def test_stale_exceptions_fail(tree):
    rows = ("| `addr_parse_listen` | `src/addr.c` | test | used by src |\n"
            "| `gone_fn` | `src/addr.c` | unused | gone |\n"
            "| `Q_*` | `include/addr.h` | prefix | matches nothing |\n")
    edit(tree, "HACKING.md", "| --- | --- | --- | --- |\n",
         "| --- | --- | --- | --- |\n" + rows)
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert list(bad) == [point_no(p.stdout, "exception")], p.stdout
    details = "\n".join(bad[point_no(p.stdout, "exception")])
    for name in ("addr_parse_listen", "gone_fn", "Q_*"):
        assert name + " (" in details, details


def test_test_only_export_needs_its_row(tree):
    edit(tree, "HACKING.md", "| `dbsql_literal` |", "| `dbsql_literalx` |")
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert any("dbsql_literal is used by no other object (only by "
               "tests/unit/test_dbsql.c" in d
               for d in bad[point_no(p.stdout, "used by another object")])


def test_module_table_row_fails(tree):
    edit(tree, "HACKING.md", "| 1 | `src/addr.c` |", "| 3 | `src/addr.c` |")
    edit(tree, "HACKING.md", "| 1 | `src/buf.c` |", "| 1 | `src/buff.c` |")
    p = run(*tree)
    bad = failed_points(p.stdout)
    details = "\n".join(bad[point_no(p.stdout, "module table")])
    assert "src/addr.c: level 3 in the row, 1 in the Layers table" in details
    assert "src/buf.c has no row" in details
    assert "src/buff.c is gone" in details


def test_stale_object_fails(tree):
    src = os.path.join(tree[0], "src", "addr.c")
    os.utime(src, None)
    p = run(*tree)
    bad = failed_points(p.stdout)
    assert any("-addr.o is older than src/addr.c" in d
               for d in bad[point_no(p.stdout, "up-to-date object")])
