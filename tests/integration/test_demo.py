"""The README's first quick-start command, scripts/demo.sh, against this
build: it must store a conversation and read it back.  (A regression test:
the demo once put convd's socket in a directory owned by postgres, which
convd rightly refuses.)"""
import os
import subprocess

import pytest

import convdtest


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo runs as root")
def test_demo_stores_and_reads_back():
    r = subprocess.run(
        ["sh", os.path.join(convdtest.SRCDIR, "scripts", "demo.sh")],
        env=dict(os.environ, CONVD_DEMO_BUILT="1",
                 CONVD_BUILD=convdtest.BUILDDIR),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=convdtest.scaled(300))
    assert r.returncode == 0, r.stdout[-4000:]
    out = r.stdout
    assert "the database is at head" in out, out[-4000:]
    assert "added message 1" in out and "added message 2" in out, out[-4000:]
    # read back: the table and the JSON carry both messages in order
    assert out.index("Hello! What's the capital of Taiwan?") < \
        out.index("The capital of Taiwan is Taipei")
    assert '"role":"assistant","content":"The capital of Taiwan is Taipei' \
        in out, out[-4000:]
    assert "thread_abc123" in out
    assert "== done:" in out
