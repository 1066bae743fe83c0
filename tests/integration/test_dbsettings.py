"""Connection settings (issue 13, point 11): one precedence rule for the
config file, DATABASE_URL, DB_* and libpq's PG* variables, the same in
convd and convctl (both build them with src/dbconf.c), checked against a
real PostgreSQL listening on 127.0.0.1 without SSL.

The rule: DATABASE_URL > DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD >
the file ([database] url, then its other keys) > PG* > libpq's defaults;
the seed's sslmode=require applies last, to a TCP host, only where none of
these says an SSL mode.
"""

import os
import subprocess

import convdtest
from test_regressions import tcp_pg  # noqa: F401  (a TCP cluster)

DB_VARS = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER",
           "DB_PASSWORD")
SECRET = "s3cr3t-never-shown"


def clean_env(**kw):
    """The environment without any connection variable, plus kw."""
    env = {k: v for k, v in os.environ.items()
           if k not in DB_VARS and not k.startswith("PG")}
    env.update(kw)
    return env


def run(argv, env):
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def convctl_db(conf, env, *args):
    return run([convdtest.CONVCTL, "-c", conf, "db"] + list(args), env)


def convd_check(conf, env):
    return run([convdtest.CONVD, "-c", conf, "--check-config"], env)


def test_malformed_database_url_names_the_variable(tmp_path):
    conf = convdtest.write_config(str(tmp_path / "c.conf"), {
        "migrations": {"directory": convdtest.MIGRATIONS}})
    cases = {
        f"postgresq://bob:{SECRET}@db1/convd":
            'DATABASE_URL: the scheme "postgresq://" is not PostgreSQL\'s',
        "not a url": "DATABASE_URL: not a connection URL",
        f"mysql://bob:{SECRET}@db1/convd":
            'DATABASE_URL: the scheme "mysql://"',
        "convd": "DATABASE_URL: not a connection URL",
    }
    for url, want in cases.items():
        for r in (convctl_db(conf, clean_env(DATABASE_URL=url), "check"),
                  convd_check(conf, clean_env(DATABASE_URL=url))):
            out = r.stdout + r.stderr
            assert r.returncode == 1, (url, out)
            assert want in out, (url, out)
            assert "socket" not in out and SECRET not in out, (url, out)
    # the same for the file's url, named as the file's option
    bad = convdtest.write_config(str(tmp_path / "bad.conf"), {
        "database": {"url": f"postgresq://bob:{SECRET}@db1/convd"},
        "migrations": {"directory": convdtest.MIGRATIONS}})
    for r in (convctl_db(bad, clean_env(), "check"),
              convd_check(bad, clean_env())):
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "[database] url: the scheme" in out, out
        assert SECRET not in out
    # good ones still work: a URI and a key=value string
    for url in ("postgresql://db1/convd", "host=db1 dbname=convd"):
        r = convd_check(conf, clean_env(DATABASE_URL=url))
        assert r.returncode == 0, r.stderr


def test_precedence_and_the_default_sslmode(tcp_pg, tmp_path):  # noqa: F811
    pg = tcp_pg
    port = str(pg.port)
    ssl_refused = "does not support SSL"

    def conf(name, **db):
        return convdtest.write_config(str(tmp_path / name), {
            "database": dict({"user": pg.user, "name": pg.dbname}, **db),
            "migrations": {"directory": convdtest.MIGRATIONS}})

    plain = conf("plain.conf")
    # DB_HOST=127.0.0.1 alone: the seed's require (the server has no SSL)
    r = convctl_db(plain, clean_env(DB_HOST="127.0.0.1", DB_PORT=port),
                   "check")
    assert r.returncode == 3 and ssl_refused in r.stderr, r.stderr
    # PGSSLMODE says otherwise: it is read, not overridden
    tcp = clean_env(DB_HOST="127.0.0.1", DB_PORT=port, PGSSLMODE="disable")
    r = convctl_db(plain, tcp, "check")
    assert r.returncode == 0, r.stderr
    # ... and convd, which builds its parameters the same way, serves
    d = convdtest.Convd(pg, tmp=str(tmp_path), env={
        "DB_HOST": "127.0.0.1", "DB_PORT": port, "PGSSLMODE": "disable"})
    try:
        d.start()
        # (ok once the first schema check is done, a moment after start)
        try:
            convdtest.wait_until(
                lambda: (lambda h: h.returncode == 0 and '"ok":true' in
                         h.stdout)(d.convctl("--json", "health")),
                timeout=convdtest.scaled(10), what="health ok")
        except AssertionError:
            h = d.convctl("--json", "health")
            raise AssertionError(h.stdout + h.stderr + d.log())
    finally:
        d.stop()

    # an explicit [database] sslmode is the file saying so: it beats PG*
    strict = conf("strict.conf", sslmode="require")
    r = convctl_db(strict, tcp, "check")
    assert r.returncode == 3 and ssl_refused in r.stderr, r.stderr

    # PGHOST / PGPORT reach a TCP host when nothing above names one: the
    # default applies to it too, and PGSSLMODE lifts it
    r = convctl_db(plain, clean_env(PGHOST="127.0.0.1", PGPORT=port),
                   "check")
    assert r.returncode == 3 and ssl_refused in r.stderr, r.stderr
    r = convctl_db(plain, clean_env(PGHOST="127.0.0.1", PGPORT=port,
                                    PGSSLMODE="disable"), "check")
    assert r.returncode == 0, r.stderr

    # the file beats PG*: a wrong PGPORT does not matter when the file
    # has the port; DB_PORT beats the file
    filed = conf("filed.conf", host="127.0.0.1", port=port)
    r = convctl_db(filed, clean_env(PGPORT="1", PGSSLMODE="disable"),
                   "check")
    assert r.returncode == 0, r.stderr
    wrong = conf("wrong.conf", host="127.0.0.1", port="1")
    r = convctl_db(wrong, clean_env(DB_PORT=port, PGSSLMODE="disable"),
                   "check")
    assert r.returncode == 0, r.stderr

    # a URL that says no SSL mode: the same default, the same way out
    url = f"postgresql://{pg.user}@127.0.0.1:{port}/{pg.dbname}"
    r = convctl_db(plain, clean_env(DATABASE_URL=url), "check")
    assert r.returncode == 3 and ssl_refused in r.stderr, r.stderr
    r = convctl_db(plain, clean_env(DATABASE_URL=url, PGSSLMODE="disable"),
                   "check")
    assert r.returncode == 0, r.stderr
    r = convctl_db(plain, clean_env(DATABASE_URL=url + "?sslmode=disable"),
                   "check")
    assert r.returncode == 0, r.stderr
    # DATABASE_URL beats DB_*: DB_PORT is wrong, the URL's port wins
    r = convctl_db(plain, clean_env(DATABASE_URL=url + "?sslmode=disable",
                                    DB_PORT="1", DB_HOST="127.0.0.2"),
                   "check")
    assert r.returncode == 0, r.stderr
    # a Unix socket never gets require
    r = convctl_db(plain, clean_env(DB_HOST=pg.sockdir, DB_PORT=port),
                   "check")
    assert r.returncode == 0, r.stderr
