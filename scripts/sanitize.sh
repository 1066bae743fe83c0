#!/bin/sh
# convd under AddressSanitizer, UndefinedBehaviorSanitizer and valgrind:
# one command that exits 0 only if every test passed, no ASan/UBSan report
# was written and valgrind found no error (definite leaks count).
#
#   scripts/sanitize.sh                 both steps below, one after the other
#   scripts/sanitize.sh asan            step 1 only
#   scripts/sanitize.sh valgrind        step 2 only
#   SANITIZE_TESTS='tests/unit/ tests/integration/test_methods.py' \
#       scripts/sanitize.sh valgrind    step 2 on these tests only (here:
#                                       every unit test and one file)
#
# 1. asan: configures a build with --enable-sanitizers (ASan + UBSan) in
#    its own directory ($CONVD_ASAN_BUILD, default build-asan/ at the top
#    of the tree) and runs the whole `make check` there: the unit tests and
#    the integration tests, against the sanitized convd and convctl.  Every
#    sanitizer report of every process (convd, convctl, the unit tests)
#    goes to a file of its own in <build dir>/sanitizer-reports/
#    (asan.<pid>, ubsan.<pid>), whether or not a test saw it; any such file
#    fails the step.  The sanitizers stop a process with exit status 86.
#    A leak's stack that stops in libc (asprintf, strdup: glibc has no
#    frame pointers) is complete when the test is run again with
#    ASAN_OPTIONS=fast_unwind_on_malloc=0 (slower, so not the default).
# 2. valgrind: configures a plain -O1 -g build in $CONVD_VALGRIND_BUILD
#    (default build-valgrind/), runs the unit tests under valgrind, then
#    the integration tests with convd under valgrind: convdtest.Convd puts
#    $CONVD_WRAPPER in front of every convd it starts, and stretches the
#    tests' time limits by CONVD_TIME_FACTOR (10 by default under a
#    wrapper).  valgrind writes one log per process in
#    <build dir>/sanitizer-reports/ (unit.<pid>.log, vg.<pid>.log).
#    Tests that fail only by timing out under valgrind's slowdown are not
#    memory errors: the step's verdict on memory is the "valgrind:" line.
#
# How long (measured 2026-12-03 with both steps running at once on 2 cores
# shared with other builds, load 7 to 16; the figures grow with load):
#   asan       build 3 min (JOBS=2), then the whole `make check` at -j2:
#              28 min (1,656 s, 6,556 tests); 31 min in all.
#   valgrind   build 3 min (JOBS=1); the unit tests 4 min (237 s, 5,402
#              tests); every integration test about 64 min (3,863 s at
#              load 22); the nine files of the request path (test_methods,
#              test_conversations, test_context, test_paging, test_search,
#              test_forget, test_python_retrieval, test_daemon, test_faults:
#              746 tests) 19 min (1,114 s) at -j1.
# Use SANITIZE_TESTS (and JOBS) to fit a run into the time you have.
#
# Test logs stay in the build directories (test-suite-<run>.log,
# check-<run>.log, tests/*/*.log).  Needs what scripts/test.sh installs
# (valgrind included) and root, like the integration tests.
#
# Environment: CONVD_ASAN_BUILD, CONVD_VALGRIND_BUILD (build directories),
# JOBS (make -j, default: the number of CPUs), SANITIZE_TESTS (the tests to
# run instead of all of them: paths as Makefile.am lists them, e.g.
# tests/unit/test_proto, tests/integration/test_methods.py, or tests/unit/
# for every unit test, tests/integration/ for every integration test; the
# valgrind step runs the unit ones under valgrind and the integration ones
# with convd under valgrind), CONVD_TIME_FACTOR.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
ASAN_BUILD=${CONVD_ASAN_BUILD:-$TOP/build-asan}
VG_BUILD=${CONVD_VALGRIND_BUILD:-$TOP/build-valgrind}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
SANITIZE_TESTS=${SANITIZE_TESTS:-}
STEPS=${*:-asan valgrind}
failed=0

say() { printf '== %s [%s]\n' "$*" "$(date +%H:%M:%S)"; }

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

# check_run DIR NAME [make args...]: make check, summarised; its logs are
# DIR/check-NAME.log and DIR/test-suite-NAME.log.
check_run() {
	dir=$1
	name=$2
	shift 2
	status=0
	t0=$(date +%s)
	make -C "$dir" -j"$JOBS" check TEST_SUITE_LOG="test-suite-$name.log" \
		"$@" >"$dir/check-$name.log" 2>&1 || status=$?
	grep -E '^(FAIL|ERROR|XPASS):' "$dir/check-$name.log" || true
	if [ -f "$dir/test-suite-$name.log" ]; then
		grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' \
			"$dir/test-suite-$name.log" | sed "s/^/$name: /"
	fi
	echo "$name: $(($(date +%s) - t0)) s"
	if [ "$status" -ne 0 ]; then
		echo "$name: make check failed (see $dir/test-suite-$name.log)"
		failed=1
	fi
}

# make_list TEST...: the tests as make's TESTS; tests/unit/ stands for
# every unit test, tests/integration/ for every integration test.
make_list() {
	for t in "$@"; do
		# shellcheck disable=SC2016 # make expands them
		case $t in
		tests/unit/) printf '%s ' '$(check_PROGRAMS)' ;;
		tests/integration/) printf '%s ' '$(INTEGRATION_TESTS)' ;;
		*) printf '%s ' "$t" ;;
		esac
	done
}

# pick KIND: the tests of SANITIZE_TESTS whose path starts with KIND
# (tests/unit/, tests/integration/), as make_list writes them.
pick() {
	for t in $SANITIZE_TESTS; do
		case $t in
		"$1"*) make_list "$t" ;;
		esac
	done
}

step_asan() {
	reports=$ASAN_BUILD/sanitizer-reports
	configure_in "$ASAN_BUILD" --enable-sanitizers CFLAGS="-O1 -g"
	rm -rf "$reports"
	mkdir -p "$reports"
	# tests run some processes as other users (runuser)
	chmod 1777 "$reports"
	say "make check under ASan + UBSan"
	set --
	# shellcheck disable=SC2086 # a list of paths
	[ -z "$SANITIZE_TESTS" ] || set -- TESTS="$(make_list $SANITIZE_TESTS)"
	ASAN_OPTIONS="exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$reports/asan" \
	UBSAN_OPTIONS="exitcode=86:print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
	CONVD_TIME_FACTOR=${CONVD_TIME_FACTOR:-2} \
		check_run "$ASAN_BUILD" asan "$@"
	# a report that went to stderr anyway (a process that reset the options)
	bad=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$ASAN_BUILD"/tests/unit/*.log "$ASAN_BUILD"/tests/integration/*.log \
		2>/dev/null || true)
	files=$(find "$reports" -type f | sort)
	if [ -n "$files$bad" ]; then
		echo "asan: sanitizer reports:"
		for f in $files $bad; do
			echo "--- $f"
			pat='ERROR: (Address|Leak)Sanitizer|runtime error:'
			if grep -q -E "$pat" "$f"; then
				grep -E -A25 "$pat" "$f" | head -60
			else
				head -20 "$f"
			fi
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
	vg="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30"
	# shellcheck disable=SC2016 # make expands it: every unit test
	unit='$(check_PROGRAMS)'
	integ=
	if [ -n "$SANITIZE_TESTS" ]; then
		unit=$(pick tests/unit/)
		integ=$(pick tests/integration/)
	fi
	if [ -n "$unit" ]; then
		# the test programs linked with libconvclient are libtool
		# wrappers: libtool runs valgrind on the real program
		say "unit tests under valgrind"
		check_run "$VG_BUILD" valgrind-unit TESTS="$unit" \
			LOG_COMPILER="$VG_BUILD/libtool --mode=execute $vg --log-file=$reports/unit.%p.log"
	fi
	if [ -z "$SANITIZE_TESTS" ] || [ -n "$integ" ]; then
		# with check_PROGRAMS empty, Makefile.am's TESTS is
		# $(INTEGRATION_TESTS), all of its lines.  The one test program
		# an integration test drives (test_libclient.py) is built here.
		make -C "$VG_BUILD" tests/libclient_nb >>"$VG_BUILD/build.log" 2>&1
		set -- check_PROGRAMS=
		[ -z "$integ" ] || set -- "$@" TESTS="$integ"
		say "integration tests with convd under valgrind"
		CONVD_WRAPPER="$vg --log-file=$reports/vg.%p.log" \
			check_run "$VG_BUILD" valgrind "$@"
	fi
	bad=$(grep -l -E 'ERROR SUMMARY: [1-9]' "$reports"/*.log 2>/dev/null ||
		true)
	n=$(find "$reports" -name '*.log' | wc -l)
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
		echo "valgrind: no error in $n processes"
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
