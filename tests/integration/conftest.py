"""pytest glue: TAP output for automake's tap-driver, and shared fixtures.

The terminal reporter is off (runtest passes -p no:terminal); this plugin
prints one TAP line per test ("ok N - name" / "not ok N - name", with the
failure as "#" comments) and the plan at the end, so `make check` counts
every test case, not just every file.
"""

import os
import shutil
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


def pytest_addoption(parser, pluginmanager):
    # runtest passes -p no:terminal, which also drops the options that
    # pytest's own assertion and traceback code reads (-v, --tb, ...):
    # declare the few it needs so that failures are reported, not masked
    # by "no option named 'verbose'".
    if pluginmanager.is_blocked("terminal"):
        group = parser.getgroup("convd-tap")
        group.addoption("--verbose", action="count", default=0,
                        dest="verbose")
        group.addoption("--tb", dest="tbstyle", default="auto")
        group.addoption("--showlocals", action="store_true",
                        dest="showlocals", default=False)


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
    r = convdtest.convctl("db", "setup", *convdtest.layout_args(),
                          config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    return pg


@pytest.fixture(scope="module")
def convd(schema):
    """A running convd on the set-up database."""
    d = convdtest.Convd(schema).start()
    yield d
    d.stop()
    report = d.sanitizer_report()
    shutil.rmtree(d.tmp, ignore_errors=True)
    assert report is None, report


@pytest.fixture
def client(convd):
    with convd.client() as c:
        yield c


@pytest.fixture
def pg_factory():
    """Makes extra private clusters for one test (destroyed after it):
    make(schema=True) -> a started PgCluster with database `convd`, set up
    by `convctl db setup` unless schema=False."""
    made = []

    def make(schema=True):
        cluster = convdtest.PgCluster().initdb()
        made.append(cluster)
        cluster.start()
        cluster.createdb()
        if schema:
            convdtest.setup_schema(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.destroy()


@pytest.fixture
def convd_factory():
    """Starts extra convd processes for one test (stopped after it):
    make(pg, extra=None, env=None, start=True, wait=True) -> Convd."""
    made = []

    def make(pg, extra=None, env=None, start=True, wait=True):
        d = convdtest.Convd(pg, extra=extra, env=env)
        made.append(d)
        if start:
            d.start(wait=wait)
        return d

    yield make
    reports = []
    for d in made:
        d.stop()
        reports.append(d.sanitizer_report())
        shutil.rmtree(d.tmp, ignore_errors=True)
    reports = [r for r in reports if r]
    assert not reports, reports[0]
