#!/bin/sh
# wsgate: the one test command.  From a fresh Debian 12 machine as root:
#
#     tests/run.sh
#
# installs the build and test dependencies (apt), builds out of tree with
# ASan/UBSan and -Werror, runs `make check` (unit, fuzz replay and
# integration tests against real Redis/PostgreSQL processes), a short
# libFuzzer run of every fuzz target (clang, one pass/fail item each) and
# `make distcheck`, prints how long each phase took and ends with one
# line: `N passed, N failed`.
#
# Environment:
#   WSGATE_NO_APT=1          do not install packages
#   WSGATE_SKIP_DISTCHECK=1  skip `make distcheck` (CI runs it)
#   WSGATE_SKIP_FUZZ=1       skip the libFuzzer runs
#   WSGATE_FUZZ_SECONDS=S    libFuzzer time per target (default 30)
#   WSGATE_CHECK_DIR=DIR     build directory (default: a fresh mktemp dir)
#   WSGATE_KEEP_BUILD=1      keep the build directory after success
#   WSGATE_TEST_TIMEOUT_MULT timeout multiplier for the integration tests
#                            (default 2: the build uses ASan)
#   MAKE_JOBS                parallel jobs (default 2)

set -u

PACKAGES="build-essential autoconf automake libtool pkg-config libev-dev
libhiredis-dev libcurl4-openssl-dev libpq-dev libjsmn-dev libssl-dev
redis-server postgresql python3 openssl clang llvm python3-websockets
dpkg-dev debhelper lintian systemd logrotate man-db
prometheus python3-prometheus-client haproxy nginx-light iproute2"

CHECK_TIMEOUT=${WSGATE_CHECK_TIMEOUT:-1800}
DISTCHECK_TIMEOUT=${WSGATE_DISTCHECK_TIMEOUT:-2400}
FUZZ_SECONDS=${WSGATE_FUZZ_SECONDS:-30}
JOBS=${MAKE_JOBS:-2}

srcdir=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$srcdir" || exit 1

say() { printf '==> %s\n' "$*"; }

# Report a build-level failure: the last line is the summary.
die_build() {
	say "FAILED: $*"
	echo "0 passed, 1 failed"
	exit 1
}

# Phase timing: `phase_done NAME` after each phase prints and records the
# seconds since the previous one.
t_start=$(date +%s)
t_phase=$t_start
timings=
phase_done() {
	now=$(date +%s)
	say "$1 took $((now - t_phase))s"
	timings="$timings${timings:+, }$1 $((now - t_phase))s"
	t_phase=$now
}

# Print the last lines of a log file, indented.
show_tail() {
	[ -f "$1" ] || return 0
	echo "---- last ${2:-80} lines of $1 ----"
	tail -n "${2:-80}" "$1"
	echo "----"
}

# ---- 1. Packages ----
missing_packages() {
	for p in $PACKAGES; do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
		[ "$st" = "install ok installed" ] || printf '%s ' "$p"
	done
}

if [ "${WSGATE_NO_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null 2>&1; then
	missing=$(missing_packages)
	if [ -n "$missing" ]; then
		say "installing: $missing"
		if [ "$(id -u)" -eq 0 ]; then
			SUDO=
		elif command -v sudo >/dev/null 2>&1; then
			SUDO=sudo
		else
			die_build "packages missing ($missing) and not root: run as root or install them"
		fi
		export DEBIAN_FRONTEND=noninteractive
		$SUDO apt-get update -q || die_build "apt-get update"
		# The packages' services are not wanted (the tests start
		# private instances), least of all Prometheus on :9090, the
		# default admin_listen port: a policy-rc.d for the install
		# keeps invoke-rc.d and deb-systemd-invoke from starting them.
		policy=/usr/sbin/policy-rc.d made_policy=
		if [ ! -e $policy ] &&
		    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null &&
		    $SUDO chmod 755 $policy; then
			made_policy=1
		fi
		# shellcheck disable=SC2086
		$SUDO apt-get install -y -q --no-install-recommends $missing
		rc=$?
		[ -z "$made_policy" ] || $SUDO rm -f $policy
		[ $rc -eq 0 ] || die_build "apt-get install $missing"
	else
		say "all packages installed"
	fi
fi
phase_done packages

# ---- 2. Build: autoreconf, out-of-tree configure, make ----
say "autoreconf -fi"
autoreconf -fi >/dev/null 2>"${TMPDIR:-/tmp}/wsgate-autoreconf.$$" || {
	cat "${TMPDIR:-/tmp}/wsgate-autoreconf.$$"
	rm -f "${TMPDIR:-/tmp}/wsgate-autoreconf.$$"
	die_build "autoreconf"
}
rm -f "${TMPDIR:-/tmp}/wsgate-autoreconf.$$"

if [ -n "${WSGATE_CHECK_DIR:-}" ]; then
	builddir=$WSGATE_CHECK_DIR
	{ rm -rf "$builddir" && mkdir -p "$builddir"; } || die_build "cannot create $builddir"
else
	builddir=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-check.XXXXXX") ||
		die_build "mktemp"
fi
builddir=$(cd "$builddir" && pwd)
say "building in $builddir"
cd "$builddir" || die_build "cd $builddir"

"$srcdir/configure" --enable-asan --enable-werror >configure.out 2>&1 || {
	show_tail configure.out 40
	show_tail config.log 60
	die_build "configure"
}
make -j"$JOBS" >make.out 2>&1 || {
	show_tail make.out 100
	die_build "make"
}
say "build ok"
phase_done build

# ---- 3. make check ----
export WSGATE_TEST_TIMEOUT_MULT="${WSGATE_TEST_TIMEOUT_MULT:-2}"
say "make check (timeout ${CHECK_TIMEOUT}s)"
timeout -k 30 "$CHECK_TIMEOUT" make -j"$JOBS" check >check.out 2>&1
check_rc=$?
[ $check_rc -eq 124 ] && say "make check timed out after ${CHECK_TIMEOUT}s"
# One line per test program: its result and how many TAP results it gave.
for trs in $(find . -name '*.trs' | sort); do
	res=$(sed -n 's/^:global-test-result: //p' "$trs")
	n=$(grep -c '^:test-result:' "$trs")
	printf '  %-5s %s (%s)\n' "$res" "${trs#./}" "$n"
done | sed 's/\.trs (/ (/'
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR): ' check.out || true

count() {
	# Sum one "# NAME: N" line of test-suite.log (0 if absent).
	[ -f test-suite.log ] || { echo 0; return; }
	awk -v k="# $1:" 'index($0, k) == 1 { n += $NF } END { print n + 0 }' test-suite.log
}
pass=$(count PASS)
skip=$(count SKIP)
failed=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) ))

if [ ! -f test-suite.log ]; then
	show_tail check.out 100
	say "make check produced no test-suite.log"
	failed=$((failed + 1))
elif [ $check_rc -ne 0 ] && [ $failed -eq 0 ]; then
	# make check failed without a failed test (build of a test program,
	# timeout): count it.
	show_tail check.out 100
	failed=$((failed + 1))
fi

# The logs of every test that did not pass.
for trs in $(find . -name '*.trs' | sort); do
	if grep -Eq '^:global-test-result: (FAIL|ERROR|XPASS)' "$trs"; then
		log=${trs%.trs}.log
		echo "==================== ${log#./} ===================="
		cat "$log"
	fi
done
phase_done check

# ---- 4. libFuzzer: a short run of every fuzz target (one item each) ----
# A separate build with clang, -fsanitize=fuzzer and ASan/UBSan; each target
# runs for FUZZ_SECONDS on a copy of its seed corpus (never written in the
# source tree) with its .dict (if not empty).  A crash, leak, timeout or
# OOM fails the item, with libFuzzer's output and the reproducer shown;
# the build directory (and the reproducer in it) is then kept.
fuzz_fail() {
	say "fuzz: FAILED: $*"
	failed=$((failed + 1))
}

run_fuzzers() {
	fuzzdir=$builddir/fuzz-build
	case $FUZZ_SECONDS in
	'' | *[!0-9]*) fuzz_fail "WSGATE_FUZZ_SECONDS=$FUZZ_SECONDS is not a number of seconds"; return ;;
	esac
	command -v clang >/dev/null 2>&1 || { fuzz_fail "clang not found"; return; }
	{ rm -rf "$fuzzdir" && mkdir -p "$fuzzdir" && cd "$fuzzdir"; } ||
		{ fuzz_fail "cannot create $fuzzdir"; return; }
	say "fuzz: building with clang in $fuzzdir"
	CC=clang "$srcdir/configure" --enable-fuzzing --enable-asan >configure.out 2>&1 || {
		show_tail configure.out 40
		show_tail config.log 60
		fuzz_fail "configure --enable-fuzzing"
		return
	}
	# The targets, as the Makefile's FUZZERS variable lists them.
	# shellcheck disable=SC2016
	fuzzers=$(printf 'wsgate-print-fuzzers:\n\t@echo $(FUZZERS)\n' |
		make -s --no-print-directory -f Makefile -f - wsgate-print-fuzzers 2>/dev/null)
	[ -n "$fuzzers" ] || { fuzz_fail "no FUZZERS in the Makefile"; return; }
	# shellcheck disable=SC2086
	make -k -j"$JOBS" $fuzzers >make.out 2>&1 || show_tail make.out 100
	for f in $fuzzers; do
		name=$(basename "$f" -fuzzer)
		if [ ! -x "$f" ]; then
			fuzz_fail "$f was not built (make.out above)"
			continue
		fi
		corpus=$fuzzdir/corpus-$name
		artifacts=$fuzzdir/artifacts-$name
		mkdir -p "$corpus" "$artifacts"
		if [ -d "$srcdir/tests/fuzz/corpus/$name" ]; then
			cp -R "$srcdir/tests/fuzz/corpus/$name/." "$corpus/"
			chmod -R u+w "$corpus"
		fi
		set -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$artifacts/"
		[ -s "$srcdir/tests/fuzz/$name.dict" ] &&
			set -- "$@" -dict="$srcdir/tests/fuzz/$name.dict"
		log=$fuzzdir/$name-fuzzer.log
		timeout -k 10 $((FUZZ_SECONDS + 300)) "./$f" "$@" "$corpus" >"$log" 2>&1
		rc=$?
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
		if [ $rc -eq 0 ]; then
			printf '  %-5s %s (%ss, %s runs, %s)\n' PASS "$f" "$FUZZ_SECONDS" \
				"${runs:-?}" "${cov:-cov: ?}"
			pass=$((pass + 1))
			continue
		fi
		printf '  %-5s %s (exit %s)\n' FAIL "$f" "$rc"
		echo "==================== fuzz: $name-fuzzer (exit $rc) ===================="
		[ $rc -eq 124 ] && echo "(killed: still running $((FUZZ_SECONDS + 300))s after start)"
		# The crash report: from the sanitizer's or libFuzzer's first
		# "==PID==" line to the end, without ASan's shadow byte map.
		awk '/^==[0-9]+==/ && !p { p = 1 } p' "$log" |
			sed '/^Shadow bytes around/,/Right alloca redzone/d' | head -n 200
		grep -q '^==[0-9]*==' "$log" || tail -n 60 "$log"
		for a in "$artifacts"/*; do
			[ -f "$a" ] || continue
			echo "---- reproducer: $a ($(wc -c <"$a") bytes) ----"
			od -A d -c "$a" | head -n 40
			[ "$(wc -c <"$a")" -le 4096 ] && echo "base64: $(base64 -w 0 "$a")"
			echo "---- replay: $fuzzdir/$f $a ----"
		done
		failed=$((failed + 1))
	done
}

if [ "${WSGATE_SKIP_FUZZ:-0}" = 1 ]; then
	say "libFuzzer runs skipped (WSGATE_SKIP_FUZZ=1)"
else
	say "libFuzzer: ${FUZZ_SECONDS}s per target"
	run_fuzzers
	cd "$builddir" || die_build "cd $builddir"
fi
phase_done fuzz

# ---- 5. make distcheck (one more item) ----
if [ "${WSGATE_SKIP_DISTCHECK:-0}" = 1 ]; then
	say "make distcheck skipped (WSGATE_SKIP_DISTCHECK=1)"
else
	say "make distcheck (timeout ${DISTCHECK_TIMEOUT}s)"
	if timeout -k 30 "$DISTCHECK_TIMEOUT" make -j"$JOBS" distcheck >distcheck.out 2>&1; then
		say "distcheck ok"
		pass=$((pass + 1))
	else
		show_tail distcheck.out 150
		# A failing test inside distcheck: show its log too.
		for trs in $(find . -path './wsgate-*/_build/*' -name '*.trs' 2>/dev/null | sort); do
			if grep -Eq '^:global-test-result: (FAIL|ERROR|XPASS)' "$trs"; then
				echo "==================== distcheck: ${trs%.trs}.log ===================="
				cat "${trs%.trs}.log"
			fi
		done
		say "distcheck FAILED"
		failed=$((failed + 1))
	fi
fi
phase_done distcheck

cd "$srcdir" || true
if [ "$failed" -eq 0 ] && [ "${WSGATE_KEEP_BUILD:-0}" != 1 ] && [ -z "${WSGATE_CHECK_DIR:-}" ]; then
	rm -rf "$builddir"
else
	say "build directory kept: $builddir"
fi

[ "$skip" -gt 0 ] && say "$skip skipped"
say "time: $timings; total $(($(date +%s) - t_start))s"
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
