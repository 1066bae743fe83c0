# Shared by scripts/demo.sh, scripts/test.sh and scripts/bench.sh: install
# what convd needs on Debian 12, and build it out of tree in ./build.
# Sourced, not run.

set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${CONVD_BUILD:-$TOP/build}

# Every package the build, the tests and the demo need (Debian names).
DEPS="build-essential autoconf automake libtool pkg-config
      libpq-dev libevent-dev libmsgpack-dev libsystemd-dev systemd
      postgresql postgresql-contrib
      python3 python3-msgpack python3-pytest
      mandoc clang valgrind redis-server redis-tools"
DEPS="$DEPS python3-pynvim python3-greenlet"   # issue 14: a third-party msgpack-rpc client
DEPS="$DEPS nodejs"   # issue 14: Node.js msgpack-rpc clients from npm (npm comes with it)
DEPS="$DEPS python3-alembic python3-sqlalchemy python3-psycopg2"   # issue 13: real Alembic databases

install_deps() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run as root (it installs packages with apt-get)" >&2
		exit 1
	fi
	echo "== installing dependencies (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $DEPS >/dev/null
	# The postgresql package may start a system cluster; we use our own.
	if command -v pg_lsclusters >/dev/null 2>&1; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
			pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
		done
	fi
}

build() {
	echo "== building in $BUILD"
	cd "$TOP"
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	mkdir -p "$BUILD"
	cd "$BUILD"
	[ -f Makefile ] || "$TOP/configure" -q "$@"
	make -j"$(nproc)" >/dev/null
	cd "$TOP"
}
