"""convctl's JSON output through the one JSON writer (json.h, issue 16):
bytes that are not UTF-8 in a value convd sent become U+FFFD and are
counted on stderr; DEL and the other control characters are escaped.  The
real convctl against a socket that answers `stats` with chosen bytes."""

import json
import subprocess

import msgpack

import convdtest
from convdtest import scaled
from test_convctl import fake_stats_daemon


def run_stats(tmp_path, packed, *args):
    path = str(tmp_path / "fake.sock")
    t = fake_stats_daemon(path, None, packed=packed)
    r = subprocess.run([convdtest.CONVCTL, "-s", path, "stats", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    t.join(scaled(30))
    return r


def test_json_invalid_utf8_replaced_and_counted(tmp_path):
    packed = msgpack.packb({"pool": {"last_error": b'caf\xe9 \xff"x'}},
                           use_bin_type=False)
    r = run_stats(tmp_path, packed, "--json")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    out = r.stdout.decode("utf-8")      # strict: raises if not UTF-8
    assert out.endswith("\n") and out.count("\n") == 1, out
    assert json.loads(out) == {"pool": {"last_error": 'caf\ufffd \ufffd"x'}}
    assert '"caf\\ufffd \\ufffd\\"x"' in out, out
    assert r.stderr.decode() == ("convctl: warning: 2 bytes of invalid "
                                 "UTF-8 written as U+FFFD in the JSON "
                                 "output\n"), r.stderr


def test_json_control_characters_escaped_no_warning(tmp_path):
    value = "tab\there\x1b[31m\x7fend\u00e9"
    packed = msgpack.packb({"k": value}, use_bin_type=True)
    r = run_stats(tmp_path, packed, "--json")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    out = r.stdout.decode("utf-8")
    assert out == '{"k":"tab\\there\\u001b[31m\\u007fend\u00e9"}\n', out
    assert json.loads(out) == {"k": value}
    assert r.stderr == b"", r.stderr


def test_text_output_not_utf8_escaped_no_warning(tmp_path):
    """Without --json the bytes are shown escaped (\\xNN) for people, and
    nothing is said on stderr: only JSON replaces bytes."""
    packed = msgpack.packb({"pool": {"last_error": b'caf\xe9'}},
                           use_bin_type=False)
    r = run_stats(tmp_path, packed)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == b"pool.last_error  caf\\xE9\n", r.stdout
    assert r.stderr == b"", r.stderr
