"""pytest glue: TAP output for automake's tap-driver, and shared fixtures.

The terminal reporter is off (runtest passes -p no:terminal); this plugin
prints one TAP line per test ("ok N - name" / "not ok N - name", with the
failure as "#" comments) and the plan at the end, so `make check` counts
every test case, not just every file.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import convdtest  # noqa: E402

_tap = {"n": 0}


def _out(line):
    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::", 1)[-1]
    if report.when == "call" or (report.when == "setup" and
                                 (report.failed or report.skipped)) \
            or (report.when == "teardown" and report.failed):
        _tap["n"] += 1
        n = _tap["n"]
        if report.passed:
            _out(f"ok {n} - {name}")
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) \
                else str(report.longrepr)
            _out(f"ok {n} - {name} # SKIP {reason}")
        else:
            what = "" if report.when == "call" else f" ({report.when})"
            _out(f"not ok {n} - {name}{what}")
            for line in str(report.longreprtext).splitlines():
                _out("# " + line)


def pytest_collectreport(report):
    if report.failed:
        _tap["n"] += 1
        _out(f"not ok {_tap['n']} - collect {report.nodeid}")
        for line in str(report.longreprtext).splitlines():
            _out("# " + line)


def pytest_sessionfinish(session, exitstatus):
    _out(f"1..{_tap['n']}")


@pytest.fixture(scope="module")
def pg():
    """A private PostgreSQL cluster with an empty database `convd`."""
    cluster = convdtest.PgCluster().initdb()
    cluster.start()
    cluster.createdb()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def schema(pg):
    """The database brought to head by `convctl db setup`."""
    cfg = convdtest.write_config(os.path.join(pg.tmp, "setup.conf"), {
        "database": {"host": pg.sockdir, "port": pg.port, "name": pg.dbname,
                     "user": pg.user},
        "migrations": {"directory": convdtest.MIGRATIONS},
    })
    r = convdtest.convctl("db", "setup", config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    return pg


@pytest.fixture(scope="module")
def convd(schema):
    """A running convd on the set-up database."""
    d = convdtest.Convd(schema).start()
    yield d
    d.stop()


@pytest.fixture
def client(convd):
    with convd.client() as c:
        yield c
