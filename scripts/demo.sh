#!/bin/sh
# The quick start on a fresh Debian 12 machine, as root: installs the
# dependencies, builds convd, sets up a private PostgreSQL cluster (as the
# unprivileged user postgres, Unix socket only, in a temp dir), creates the
# schema with `convctl db setup`, starts convd, stores a conversation and
# reads it back.  Everything it started is stopped and removed at the end.
# CONVD_DEMO_BUILT=1 (with CONVD_BUILD): use that build as it is, install
# and build nothing (tests/integration/test_demo.py runs the demo so).
. "$(dirname "$0")/common.sh"

if [ "${CONVD_DEMO_BUILT:-}" != 1 ]; then
	install_deps
	build
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/convd-demo.XXXXXX)
chmod 755 "$WORK"
chown postgres: "$WORK"
PGDATA=$WORK/pg
# convd's socket directory: root's (convd refuses a directory that another
# user could change: $WORK is postgres's)
mkdir -m 755 "$WORK/run"
CONVD_PID=
cleanup() {
	[ -n "$CONVD_PID" ] && kill "$CONVD_PID" 2>/dev/null && wait "$CONVD_PID" 2>/dev/null
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "== starting a private PostgreSQL in $WORK"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
	-E UTF8 --locale=C >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$WORK'" start >/dev/null
runuser -u postgres -- "$PGBIN/createdb" -h "$WORK" -U postgres convd

cat >"$WORK/convd.conf" <<CONF
[database]
host = $WORK
name = convd
user = postgres

[server]
socket = $WORK/run/convd.sock

[migrations]
directory = $TOP/migrations
CONF

echo "== convctl db setup"
"$BUILD/convctl" -c "$WORK/convd.conf" db setup

echo "== starting convd"
"$BUILD/convd" -c "$WORK/convd.conf" 2>"$WORK/convd.log" &
CONVD_PID=$!
i=0
until "$BUILD/convctl" -s "$WORK/run/convd.sock" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then cat "$WORK/convd.log"; exit 1; fi
	sleep 0.1
done

export CONVD_SOCKET="$WORK/run/convd.sock"
echo "== storing a conversation"
set -x
"$BUILD/convctl" add U1234 anthropic user "Hello! What's the capital of Taiwan?"
"$BUILD/convctl" add U1234 anthropic assistant "The capital of Taiwan is Taipei (臺北)."
"$BUILD/convctl" thread set U1234 thread_abc123
set +x
echo "== reading it back"
set -x
"$BUILD/convctl" history U1234 anthropic
"$BUILD/convctl" --json history U1234 anthropic -n 1
"$BUILD/convctl" thread get U1234
"$BUILD/convctl" stats-user U1234
set +x
echo "== done: convd stored the conversation in PostgreSQL and read it back"
