"""libconvclient(3) is complete (issue 14, point 14): its SYNOPSIS lists
every function of include/convd/client.h with the header's parameters,
the page is clean under `mandoc -Tlint`, and the list of error codes
renders with balanced quotes (its quotes used to pile up at the end of
the list)."""
import os
import re
import shutil
import subprocess

import convdtest

PAGE = os.path.join(convdtest.SRCDIR, "man", "libconvclient.3")
HEADER = os.path.join(convdtest.SRCDIR, "include", "convd", "client.h")


def header_functions():
    text = re.sub(r"/\*.*?\*/", "", open(HEADER).read(), flags=re.S)
    found = {}
    for m in re.finditer(r"^(?:CONVC_WUR\s+)?[\w\s\*]*?\b(convc_\w+)\s*"
                         r"\(([^;]*?)\)\s*;", text, flags=re.M | re.S):
        params = [re.sub(r"\s+", " ", p.strip()).replace(" *", " *")
                  for p in m.group(2).split(",")]
        found[m.group(1)] = params
    return found


def synopsis_functions():
    page = open(PAGE).read()
    syn = page[page.index(".Sh SYNOPSIS"):page.index(".Sh DESCRIPTION")]
    found = {}
    for line in syn.splitlines():
        if line.startswith(".Fn "):
            words = re.findall(r'"([^"]*)"|(\S+)', line[4:])
            name = words[0][1]
            found[name] = [a or b for a, b in words[1:]]
    return found


def test_synopsis_lists_every_function():
    want = header_functions()
    got = synopsis_functions()
    assert len(want) >= 45
    assert sorted(set(want) - set(got)) == [], "missing from SYNOPSIS"
    assert sorted(set(got) - set(want)) == [], "not in the header"
    for name, params in want.items():
        assert got[name] == params, (name, got[name], params)


def test_mandoc_lint_clean():
    r = subprocess.run(["mandoc", "-Tlint", "-W", "warning", PAGE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    assert r.stdout.strip() == "", r.stdout


def render():
    if shutil.which("man"):
        r = subprocess.run(["man", "-l", PAGE], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, MANWIDTH="80",
                                    MANPAGER="cat", PAGER="cat"))
        if r.returncode == 0 and r.stdout:
            return re.sub(r".\x08", "", r.stdout)
    r = subprocess.run(["mandoc", "-Tascii", "-Owidth=80", PAGE],
                       stdout=subprocess.PIPE, text=True, check=True)
    return re.sub(r".\x08", "", r.stdout)


def test_error_codes_render():
    text = render()
    sec = text[text.index("Status and errors"):text.index("Blocking calls")]
    flat = re.sub(r"\s+", " ", sec)
    assert '("invalid_params", "unavailable", "timeout", ' \
        '"permission_denied", "overloaded", ...)' in flat, flat
    assert '("overloaded" or "permission_denied")' in flat, flat
    for code in ("CONVC_OK", "CONVC_ERR_DAEMON", "CONVC_ERR_LOCAL",
                 "CONVC_ERR_CONN"):
        assert code in flat
    # every quote opens and closes
    assert flat.count('"') % 2 == 0 and '""' not in flat, flat
