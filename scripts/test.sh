#!/usr/bin/env bash
# test.sh - install what the tests need, build twice (warnings as errors;
# then with AddressSanitizer and UBSan) and run every test: unit, the
# integration suite on a real FUSE mount, the same suite against a real CUSE
# node inside a VM, man pages, the install tree and the privilege drop, the
# stress suite; then every fuzz target for a minute and the analysis checks
# (valgrind, ThreadSanitizer, clang, clang-tidy). Ends with one
# "N passed, N failed" line. Longer runs: tests/fuzz/README.md,
# tests/stress/README.md, tests/analysis/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test

status=0
passed=0
failed=0

# Count results of a meson test run from its JSON log.
tally() {
	local log=$1/meson-logs/testlog.json
	[[ -f $log ]] || return 0
	local p f
	p=$(grep -c '"result": "OK"' "$log" || true)
	f=$(grep -c '"result": "\(FAIL\|TIMEOUT\|ERROR\|UNEXPECTEDPASS\)"' "$log" || true)
	passed=$((passed + p))
	failed=$((failed + f))
	if grep -q '"result": "SKIP"' "$log"; then
		echo "test.sh: tests were skipped in $1; nothing may skip here:" >&2
		grep -o '"name": "[^"]*", [^}]*"result": "SKIP"' "$log" >&2 || true
		failed=$((failed + 1))
	fi
}

# Count a script's closing "NAME: N passed, M failed" line from its output.
tally_script() {
	local out=$1 line p f
	line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [[ -z $line ]]; then
		echo "test.sh: $out has no closing count" >&2
		failed=$((failed + 1))
		return
	fi
	p=$(sed -E 's/^[a-z]+: ([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
	passed=$((passed + p))
	failed=$((failed + f))
}

run_build() {
	local dir=$1
	shift
	if [[ -d $dir ]]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir"
}

echo "== build: warnings are errors"
# -Dvm_tests=true: the VM runs what this host cannot (CUSE; 32-bit callers
# where this kernel refuses them), so it is never left out here.
run_build build-test --werror -Dtests=enabled -Dman=enabled -Dvm_tests=true
# Where the 32-bit compat test runs: here, or (this kernel refusing 32-bit
# programs) only in the VM, where it must pass; the host runs of the
# integration suite then leave it out by name (run-integration.sh).
echo "== 32-bit programs: $(tests/integration/run-integration.sh --probe build-test/tests/integration/integration-tests)"
echo "== tests: unit, integration (FUSE mount), man, install, stress, CUSE in a VM"
meson test -C build-test --print-errorlogs --num-processes 2 || status=1
tally build-test

echo "== build: AddressSanitizer + UndefinedBehaviorSanitizer"
run_build build-asan --werror -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false -Dman=disabled
echo "== tests under the sanitizers: unit, integration (FUSE mount), stress"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0 \
	meson test -C build-asan --print-errorlogs --num-processes 2 --suite unit --suite integration --suite stress || status=1
tally build-asan

echo "== fuzz: every libFuzzer target for 60 s, then the crash inputs found before"
mkdir -p build-fuzz
scripts/fuzz.sh 60 2>&1 | tee build-fuzz/fuzz.log || status=1
tally_script build-fuzz/fuzz.log

echo "== analysis: clang + clang-tidy, ringdevd under valgrind, ThreadSanitizer (tests/analysis/README.md)"
mkdir -p build-analysis
scripts/analyze.sh --quick 2>&1 | tee build-analysis/analyze.log || status=1
tally_script build-analysis/analyze.log

echo "test.sh: $passed passed, $failed failed"
if ((failed)); then status=1; fi
exit $status
