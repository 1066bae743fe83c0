"""The Debian package, as CI checks it: dpkg-buildpackage -us -uc -b on a
copy of the source tree in a temp dir, lintian with no error, dpkg -i,
every file and the convd user checked, `convctl db setup` and `convd`
run from the installed paths against a private PostgreSQL cluster (and
probed over HTTP), then dpkg -r and dpkg -P, after which nothing of the
package is left.  Needs root (it installs the package); the install part
is serialised with a lock, as other test runs may share the machine."""

import fcntl
import glob
import grp
import os
import pathlib
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

import convdtest
from convdtest import http_address, http_get, scaled

PACKAGES = ["libconvclient1", "libconvclient-dev", "convd"]
LOCK = "/tmp/convd-package-test.lock"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="installs a package: needs root")


def run(argv, timeout=600, check=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=scaled(timeout), **kw)
    if check:
        assert r.returncode == 0, (argv, r.returncode, r.stdout[-6000:])
    return r


def dpkg(*args, check=True):
    """dpkg, waiting (up to 10 min) while another dpkg holds its lock."""
    deadline = time.monotonic() + 600
    while True:
        r = run(["dpkg"] + list(args), check=False)
        if r.returncode == 0 or "lock" not in r.stdout or \
                time.monotonic() > deadline:
            break
        time.sleep(2)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout[-6000:])
    return r


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout not in ("", "not-installed")


def copy_source(dest):
    """The source tree without build output: the files git knows (tracked
    or new), or, outside a git checkout, everything but build trees."""
    src = convdtest.SRCDIR
    r = subprocess.run(["git", "-C", src, "ls-files", "-z", "-co",
                        "--exclude-standard"], capture_output=True)
    if r.returncode == 0 and r.stdout:
        for rel in r.stdout.decode().split("\0"):
            if not rel or not os.path.lexists(os.path.join(src, rel)):
                continue
            os.makedirs(os.path.join(dest, os.path.dirname(rel)),
                        exist_ok=True)
            shutil.copy2(os.path.join(src, rel), os.path.join(dest, rel),
                         follow_symlinks=False)
        return

    def ignore(d, names):
        skip = {".git", "autom4te.cache", "__pycache__", "node_modules"}
        return [n for n in names if n in skip or
                os.path.exists(os.path.join(d, n, "config.status"))]
    shutil.copytree(src, dest, symlinks=True, ignore=ignore,
                    dirs_exist_ok=True)


@pytest.fixture(scope="module")
def debs():
    """Builds the packages once; yields {package: .deb path}."""
    tmp = tempfile.mkdtemp(prefix="convd-deb-")
    try:
        src = os.path.join(tmp, "convd")
        copy_source(src)
        env = dict(os.environ,
                   DEB_BUILD_OPTIONS="nocheck noautodbgsym "
                                     f"parallel={os.cpu_count() or 1}")
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
            timeout=1200)
        out = {}
        for pkg in PACKAGES:
            found = glob.glob(os.path.join(tmp, f"{pkg}_*.deb"))
            assert len(found) == 1, (pkg, os.listdir(tmp))
            out[pkg] = found[0]
        out["changes"] = glob.glob(os.path.join(tmp, "*.changes"))[0]
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_lintian_no_errors(debs):
    r = run(["lintian", "--fail-on", "error", "--tag-display-limit", "0",
             debs["changes"]], check=False)
    errors = [line for line in r.stdout.splitlines()
              if line.startswith("E: ")]
    assert r.returncode == 0 and not errors, r.stdout


def mode_owner(path):
    st = os.lstat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def test_install_run_remove_purge(debs):
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for pkg in PACKAGES:
            assert not installed(pkg), \
                f"{pkg} is installed already: not touching this machine"
        try:
            pwd.getpwnam("convd")
            pytest.skip("a convd user exists on this machine: the purge "
                        "would remove it")
        except KeyError:
            pass
        try:
            check_installed_package(debs)
        finally:
            if any(installed(p) for p in PACKAGES):
                dpkg("-P", *PACKAGES, check=False)


def check_installed_package(debs):
    dpkg("-i", *[debs[p] for p in PACKAGES])
    for pkg in PACKAGES:
        assert installed(pkg), pkg

    # every file the packages list is there
    files = {}
    for pkg in PACKAGES:
        listed = run(["dpkg", "-L", pkg]).stdout.split("\n")
        for path in filter(None, listed):
            assert os.path.lexists(path), (pkg, path)
            files[path] = pkg
    multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout \
        .strip()
    expect = {
        "/usr/sbin/convd": "convd",
        "/usr/bin/convctl": "convd",
        "/usr/bin/convd-bench": "convd",
        "/etc/convd/convd.conf": "convd",
        "/lib/systemd/system/convd.service": "convd",
        "/lib/systemd/system/convd.socket": "convd",
        "/usr/lib/sysusers.d/convd-sysusers.conf": "convd",
        "/usr/lib/tmpfiles.d/convd-tmpfiles.conf": "convd",
        "/usr/share/man/man8/convd.8.gz": "convd",
        "/usr/share/man/man1/convctl.1.gz": "convd",
        "/usr/share/man/man1/convd-bench.1.gz": "convd",
        "/usr/share/man/man5/convd.conf.5.gz": "convd",
        "/usr/share/man/man7/convd-protocol.7.gz": "convd",
        "/usr/share/doc/convd/copyright": "convd",
        f"/usr/lib/{multiarch}/libconvclient.so.1": "libconvclient1",
        f"/usr/lib/{multiarch}/libconvclient.so": "libconvclient-dev",
        f"/usr/lib/{multiarch}/libconvclient.a": "libconvclient-dev",
        f"/usr/lib/{multiarch}/pkgconfig/convclient.pc":
            "libconvclient-dev",
        "/usr/include/convd/client.h": "libconvclient-dev",
        "/usr/share/man/man3/libconvclient.3.gz": "libconvclient-dev",
    }
    for name in os.listdir(os.path.join(convdtest.SRCDIR, "migrations")):
        if name.endswith(".sql"):
            expect[f"/usr/share/convd/migrations/{name}"] = "convd"
    for path, pkg in expect.items():
        assert files.get(path) == pkg, (path, files.get(path), pkg)
    for exe in ("/usr/sbin/convd", "/usr/bin/convctl", "/usr/bin/convd-bench"):
        assert os.access(exe, os.X_OK), exe
    assert not [p for p in files if p.endswith(".la")], "libtool archives"
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "convd"]).stdout
    assert "/etc/convd/convd.conf" in conffiles, conffiles
    with open("/etc/convd/convd.conf") as f, \
            open(os.path.join(convdtest.SRCDIR, "etc", "convd.conf")) as g:
        assert f.read() == g.read()
    # the user and the directories
    pw = pwd.getpwnam("convd")
    assert grp.getgrgid(pw.pw_gid).gr_name == "convd", pw
    assert pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin",
                                                "/sbin/nologin"), pw
    assert pw.pw_dir == "/nonexistent" and not os.path.exists(pw.pw_dir)
    assert mode_owner("/etc/convd") == (0o750, "root", "convd")
    assert mode_owner("/etc/convd/convd.conf") == (0o640, "root", "convd")
    assert mode_owner("/run/convd") == (0o755, "convd", "convd")
    # installed, not started, not enabled: the database is not set up yet
    assert run(["pgrep", "-u", "convd"], check=False).returncode == 1
    assert not glob.glob("/etc/systemd/system/*.wants/convd.*")
    assert run(["/usr/sbin/convd", "--version"]).stdout.startswith("convd ")
    r = run(["/usr/sbin/convd", "--check-config"], check=False)
    assert "/etc/convd/convd.conf" in r.stdout, r.stdout

    run_installed()

    # remove: the programs go, the configuration and the user stay
    dpkg("-r", *reversed(PACKAGES))
    for path in expect:
        if path != "/etc/convd/convd.conf":
            assert not os.path.lexists(path), path
    assert os.path.exists("/etc/convd/convd.conf")
    pwd.getpwnam("convd")
    # purge: nothing is left
    dpkg("-P", *PACKAGES)
    for pkg in PACKAGES:
        assert not installed(pkg), pkg
    for path in ("/etc/convd", "/run/convd", "/usr/share/convd"):
        assert not os.path.lexists(path), path
    with pytest.raises(KeyError):
        pwd.getpwnam("convd")
    with pytest.raises(KeyError):
        grp.getgrnam("convd")


def run_installed():
    """convctl db setup, then convd as the convd user, from the installed
    paths and migrations, against a private cluster."""
    pg = convdtest.PgCluster().initdb().start()
    d = None
    # (pytest's tmp_path is under a 0700 directory: not for the convd user)
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="convd-pkg-"))
    try:
        pg.createdb()
        work = tmp_path / "run"
        work.mkdir()
        os.chmod(tmp_path, 0o755)
        os.chown(work, pwd.getpwnam("convd").pw_uid,
                 grp.getgrnam("convd").gr_gid)
        conf = convdtest.write_config(str(tmp_path / "convd.conf"), {
            "database": {"host": pg.sockdir, "port": pg.port,
                         "name": pg.dbname, "user": pg.user},
            "server": {"socket": str(work / "convd.sock")},
            "http": {"listen": "127.0.0.1:0"},
        })
        os.chmod(conf, 0o644)
        run(["/usr/bin/convctl", "-c", conf, "db", "setup"])
        # the revisions applied are the installed ones
        r = run(["/usr/bin/convctl", "-c", conf, "db", "verify",
                 "--offline"])
        r = run(["/usr/bin/convctl", "-c", conf, "db", "check"])
        assert "up to date" in r.stdout or "head" in r.stdout, r.stdout
        log = open(tmp_path / "convd.log", "wb")
        d = subprocess.Popen(["/usr/sbin/convd", "-c", conf],
                             stdout=log, stderr=log, user="convd",
                             group="convd", extra_groups=[])

        class Logged:
            def log(self):
                assert d.poll() is None, f"convd exited: {read_log()}"
                return read_log()

        def read_log():
            with open(tmp_path / "convd.log", "rb") as f:
                return f.read().decode("utf-8", "replace")
        addr = http_address(Logged())
        sock = str(work / "convd.sock")
        convdtest.wait_until(
            lambda: http_get(addr, "/readyz")[0] == 200,
            timeout=scaled(20), what="the installed convd to be ready")
        r = run(["/usr/bin/convctl", "-s", sock, "add", "pkg-user",
                 "anthropic", "user", "from the package"])
        r = run(["/usr/bin/convctl", "-s", sock, "--json", "history",
                 "pkg-user", "anthropic"])
        assert "from the package" in r.stdout, r.stdout
        assert pg.psql("SELECT count(*) FROM simple_conversation_history "
                       "WHERE user_id = 'pkg-user'").strip() == "1"
        d.send_signal(signal.SIGTERM)
        assert d.wait(scaled(30)) == 0, read_log()
        d = None
    finally:
        if d is not None:
            d.kill()
            d.wait()
        pg.destroy()
        shutil.rmtree(tmp_path, ignore_errors=True)
