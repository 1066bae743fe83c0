#!/bin/sh
# convd under AddressSanitizer, UndefinedBehaviorSanitizer and valgrind:
# one command that exits 0 only if every test passed, no ASan/UBSan report
# was printed and valgrind found no error (definite leaks count).
#
#   scripts/sanitize.sh            both steps below
#   scripts/sanitize.sh asan       step 1 only
#   scripts/sanitize.sh valgrind   step 2 only
#
# 1. asan: configures a build with --enable-sanitizers (ASan + UBSan) in
#    its own directory ($CONVD_ASAN_BUILD, default build-asan/ at the top
#    of the tree) and runs the whole `make check` there: the unit tests and
#    the integration tests, against the sanitized convd and convctl.  Any
#    sanitizer report in the test logs fails the step, even one that no
#    test noticed.
# 2. valgrind: configures a plain -O1 -g build in $CONVD_VALGRIND_BUILD
#    (default build-valgrind/) and runs the integration tests (the unit
#    tests ran in step 1) with convd under valgrind: convdtest.Convd puts
#    $CONVD_WRAPPER in front of every convd it starts, and stretches the
#    tests' time limits by CONVD_TIME_FACTOR (10 by default under a
#    wrapper).  valgrind writes one log per convd process in
#    <build dir>/sanitizer-reports/.
#
# Test logs stay in the build directories (test-suite.log, tests/*/*.log).
# Needs what scripts/test.sh installs (valgrind included) and root, like
# the integration tests.  Takes about 4 to 6 minutes on 2 cores.
#
# Environment: CONVD_ASAN_BUILD, CONVD_VALGRIND_BUILD (build directories),
# JOBS (make -j, default: the number of CPUs).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
ASAN_BUILD=${CONVD_ASAN_BUILD:-$TOP/build-asan}
VG_BUILD=${CONVD_VALGRIND_BUILD:-$TOP/build-valgrind}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
STEPS=${*:-asan valgrind}
failed=0

say() { printf '== %s\n' "$*"; }

# configure_in DIR [configure args...]: a fresh out-of-tree build in DIR.
configure_in() {
	dir=$1
	shift
	if [ ! -x "$TOP/configure" ]; then
		say "autoreconf"
		(cd "$TOP" && autoreconf -fi)
	fi
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		say "configuring $dir: $*"
		(cd "$dir" && "$TOP/configure" -q "$@")
	fi
	say "building in $dir"
	make -C "$dir" -j"$JOBS" >"$dir/build.log" 2>&1 || {
		tail -40 "$dir/build.log"
		echo "build failed in $dir (see $dir/build.log)" >&2
		exit 1
	}
}

# check_run DIR NAME [make args...]: make check, summarised.
check_run() {
	dir=$1
	name=$2
	shift 2
	status=0
	make -C "$dir" -j"$JOBS" check "$@" >"$dir/check.log" 2>&1 ||
		status=$?
	grep -E '^(FAIL|ERROR|XPASS):' "$dir/check.log" || true
	if [ -f "$dir/test-suite.log" ]; then
		grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' \
			"$dir/test-suite.log" | sed "s/^/$name: /"
	fi
	if [ "$status" -ne 0 ]; then
		echo "$name: make check failed (see $dir/test-suite.log)"
		failed=1
	fi
}

step_asan() {
	configure_in "$ASAN_BUILD" --enable-sanitizers CFLAGS="-O1 -g"
	say "make check under ASan + UBSan"
	# Reports go to stderr: the test harness finds them in convd's log
	# (Convd.sanitizer_report), the unit tests' and convctl's in the test
	# logs.  A sanitizer that stops a process exits 86.
	ASAN_OPTIONS="exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1" \
	UBSAN_OPTIONS="exitcode=86:print_stacktrace=1:halt_on_error=1" \
	CONVD_TIME_FACTOR=${CONVD_TIME_FACTOR:-2} \
		check_run "$ASAN_BUILD" asan
	bad=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$ASAN_BUILD"/tests/unit/*.log "$ASAN_BUILD"/tests/integration/*.log \
		2>/dev/null || true)
	if [ -n "$bad" ]; then
		echo "asan: sanitizer reports in:"
		for f in $bad; do
			echo "--- $f"
			grep -E -A25 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
				"$f" | head -60
		done
		failed=1
	else
		echo "asan: no sanitizer report"
	fi
}

step_valgrind() {
	reports=$VG_BUILD/sanitizer-reports
	command -v valgrind >/dev/null || {
		echo "valgrind is not installed" >&2
		exit 1
	}
	configure_in "$VG_BUILD" CFLAGS="-O1 -g"
	rm -rf "$reports"
	mkdir -p "$reports"
	# every integration test: with check_PROGRAMS empty, Makefile.am's
	# TESTS is $(INTEGRATION_TESTS), all of its lines.  The one test
	# program an integration test drives (test_libclient.py) is built here.
	make -C "$VG_BUILD" tests/libclient_nb >>"$VG_BUILD/build.log" 2>&1
	say "integration tests with convd under valgrind"
	CONVD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 --log-file=$reports/vg.%p.log" \
		check_run "$VG_BUILD" valgrind check_PROGRAMS=
	bad=$(grep -l -E 'ERROR SUMMARY: [1-9]' "$reports"/vg.*.log 2>/dev/null ||
		true)
	n=$(find "$reports" -name 'vg.*.log' | wc -l)
	if [ -n "$bad" ]; then
		echo "valgrind: errors in:"
		for f in $bad; do
			echo "--- $f"
			sed -n '/^==[0-9]*== Command:/p' "$f"
			grep -v -E '^==[0-9]+== *$' "$f" |
				sed -n '/Invalid\|uninitialised\|definitely lost\|Mismatched\|overlap\|ERROR SUMMARY/,+25p' |
				head -80
		done
		failed=1
	else
		echo "valgrind: no error in $n convd runs"
	fi
}

start=$(date +%s)
for step in $STEPS; do
	case $step in
	asan) step_asan ;;
	valgrind) step_valgrind ;;
	*)
		echo "usage: $0 [asan] [valgrind]" >&2
		exit 2
		;;
	esac
done
echo "sanitize: $(($(date +%s) - start)) s"
if [ "$failed" -ne 0 ]; then
	echo "sanitize: FAILED"
	exit 1
fi
echo "sanitize: OK"
