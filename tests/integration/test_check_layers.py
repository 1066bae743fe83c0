"""scripts/check-layers (issue 16: layers with no circle): it passes on this
tree and fails on a copy broken one way at a time -- an upward include
written with quotes or with angle brackets (the build's -I include makes
`#include <server.h>` reach the project's header), a circle, a module
with no level.  A system header in angle brackets is not a module."""

import os
import shutil
import subprocess
import sys

import convdtest

SRC = convdtest.SRCDIR


def copy_tree(tmp):
    dst = os.path.join(str(tmp), "tree")
    for sub in ("src", "include", "scripts"):
        shutil.copytree(os.path.join(SRC, sub), os.path.join(dst, sub))
    shutil.copy(os.path.join(SRC, "HACKING.md"), dst)
    return dst


def check(tree):
    p = subprocess.run([sys.executable,
                        os.path.join(tree, "scripts", "check-layers"), tree],
                       capture_output=True, text=True, timeout=120)
    assert "Bail out" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


def add_line(tree, rel, line):
    path = os.path.join(tree, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(line + "\n" + text)


def test_tree_passes():
    p = check(SRC)
    assert p.returncode == 0, p.stdout
    assert "not ok" not in p.stdout


def test_upward_include_with_quotes_fails(tmp_path):
    tree = copy_tree(tmp_path)
    add_line(tree, "src/log.c", '#include "server.h"')
    p = check(tree)
    assert p.returncode == 1
    assert 'src/log.c (level' in p.stdout and '"server.h"' in p.stdout


def test_upward_include_with_angle_brackets_fails(tmp_path):
    # regression: only "..." includes were read, so <server.h> passed
    tree = copy_tree(tmp_path)
    add_line(tree, "src/log.c", "#include <server.h>")
    p = check(tree)
    assert p.returncode == 1, p.stdout
    assert 'src/log.c (level' in p.stdout and '"server.h"' in p.stdout


def test_system_header_in_angle_brackets_is_not_a_module(tmp_path):
    tree = copy_tree(tmp_path)
    add_line(tree, "src/log.c", "#include <sys/queue.h>")
    p = check(tree)
    assert p.returncode == 0, p.stdout


def test_circle_fails(tmp_path):
    tree = copy_tree(tmp_path)
    # log is at the bottom; buf includes nothing of log's users
    add_line(tree, "include/log.h", '#include "buf.h"')
    add_line(tree, "include/buf.h", '#include "log.h"')
    p = check(tree)
    assert p.returncode == 1
    assert "not ok 3 - no circle of includes" in p.stdout


def test_unplaced_module_fails(tmp_path):
    tree = copy_tree(tmp_path)
    with open(os.path.join(tree, "src", "zzz_new.c"), "w") as f:
        f.write('#include "log.h"\n')
    p = check(tree)
    assert p.returncode == 1
    assert "no level: zzz_new" in p.stdout
