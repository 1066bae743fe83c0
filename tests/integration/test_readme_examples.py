"""The README's examples run as written against the real convd: the
protocol "by hand" example (regression: it read through a buffered file,
which waited for 16 KiB or the end of the connection, so it hung).  The
Responses API flow is tests/integration/test_python_model.py's
examples/responses_flow.py."""

import os
import re
import subprocess

import convdtest

README = os.path.join(convdtest.SRCDIR, "README.md")


def block_after(marker):
    text = open(README, encoding="utf-8").read()
    at = text.index(marker)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, at)
    return m.group(1)


def test_by_hand_example_answers(convd):
    code = block_after("by hand, a client needs nothing but")
    assert '"/run/convd/convd.sock"' in code
    code = code.replace('"/run/convd/convd.sock"', repr(convd.socket))
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True,
                       text=True, timeout=convdtest.scaled(20))
    assert r.returncode == 0, r.stderr
    # [1, 1, None, {'id': N, 'created_at': Timestamp(...)}]
    assert re.match(r"\[1, 1, None, \{'id': \d+, 'created_at': ",
                    r.stdout), r.stdout
