#!/bin/sh
# The benchmark suite on a fresh Debian 12 machine, as root: installs the
# dependencies, builds convd, and runs bench/run.py (a private PostgreSQL,
# convd, pgbench, redis-benchmark and the seed's SQLAlchemy approach side by
# side).  Options go to bench/run.py: --seconds N, --scale.
# Benchmarks are not tests: `make check` never runs this.
. "$(dirname "$0")/common.sh"

DEPS="$DEPS python3-sqlalchemy python3-psycopg2"
install_deps
build
# 10,000 idle clients need as many descriptors in this process and in convd
ulimit -n "$(ulimit -Hn)"
CONVD_BUILDDIR=$BUILD /usr/bin/python3 "$TOP/bench/run.py" "$@"
