#!/bin/sh
# The whole test suite on a fresh Debian 12 machine, as root:
# installs the dependencies, builds convd, runs `make check` (unit tests and
# integration tests against a private PostgreSQL and the real binaries),
# and ends with "N passed, N failed".
. "$(dirname "$0")/common.sh"

install_deps
build
cd "$BUILD"
echo "== make check"
status=0
make -j"$(nproc)" check >check.out 2>&1 || status=$?
cat check.out | grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' | grep -v '^PASS' || true
log=test-suite.log
if [ ! -f "$log" ]; then
	cat check.out
	echo "0 passed, 1 failed"
	exit 1
fi
if grep -qE '^# (FAIL|ERROR|XPASS): +[1-9]' "$log"; then
	# show what failed
	sed -n '/^FAIL\|^ERROR\|^not ok/,+20p' "$log" | head -200
fi
num() { sed -n "s/^# $1: *\([0-9]*\).*/\1/p" "$log" | head -1; }
pass=$(num PASS); fail=$(num FAIL); err=$(num ERROR); xpass=$(num XPASS)
skip=$(num SKIP); xfail=$(num XFAIL)
failed=$(( ${fail:-0} + ${err:-0} + ${xpass:-0} ))
passed=$(( ${pass:-0} + ${xfail:-0} ))
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed, ${skip:-0} skipped"
[ "$failed" -eq 0 ]
