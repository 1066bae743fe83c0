"""`convctl --json db ...` writes valid JSON whatever bytes it reports
(issue 16: one JSON writer, src/json.c).  JSON text is Unicode: a byte that
is not UTF-8 (here in the migrations directory's path, as a file system
allows) is written as U+FFFD, and convctl db says on stderr how many bytes
it replaced, so that nothing is lost silently.  Before, the byte went out
as it was and the document was not valid UTF-8 JSON."""

import json
import os
import shutil
import subprocess

import convdtest


def migrations_at(directory):
    """A copy of the product's revisions in directory (a bytes path)."""
    os.mkdir(directory)
    for name in os.listdir(convdtest.MIGRATIONS):
        if name.endswith(".sql"):
            shutil.copy(os.path.join(convdtest.MIGRATIONS, name),
                        os.fsdecode(directory))
    return directory


def heads_json(tmp_path, directory):
    conf = tmp_path / "convd.conf"
    conf.write_bytes(b"[migrations]\ndirectory = " + directory + b"\n")
    r = subprocess.run([convdtest.CONVCTL, "-c", str(conf), "--json", "db",
                        "heads"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    doc = json.loads(r.stdout.decode("utf-8"))   # strict: raises if not
    return doc, r.stderr.decode("utf-8")


def test_invalid_utf8_becomes_fffd_and_is_reported(tmp_path):
    base = os.fsencode(str(tmp_path))
    d = migrations_at(base + b"/mig\xe9\xff")
    doc, err = heads_json(tmp_path, d)
    files = [h["file"] for h in doc["heads"]]
    assert len(files) == 1, doc
    assert files[0].startswith(str(tmp_path) + "/mig\ufffd\ufffd/"), files
    assert ("convctl db: warning: 2 bytes of invalid UTF-8 written as "
            "U+FFFD in the JSON output") in err, err


def test_valid_utf8_passes_through_without_a_warning(tmp_path):
    base = os.fsencode(str(tmp_path))
    d = migrations_at(base + "/mig-caf\u00e9-\u6f22".encode("utf-8"))
    doc, err = heads_json(tmp_path, d)
    assert doc["heads"][0]["file"].startswith(
        str(tmp_path) + "/mig-caf\u00e9-\u6f22/"), doc
    assert err == "", err
