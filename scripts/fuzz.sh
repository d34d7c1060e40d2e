#!/usr/bin/env bash
# fuzz.sh - fuzz ringdev with libFuzzer: build the targets of tests/fuzz/
# with clang, AddressSanitizer and UBSan in build-fuzz/, run each for
# SECONDS (default 60) on a copy of its seed corpus, then replay every
# committed crash input (tests/fuzz/crashes/TARGET-DESC) through its target.
# Prints one line per target and per replay, ends with "fuzz: N passed,
# M failed", and exits 1 if any target crashed or any replay failed.
#   scripts/fuzz.sh [SECONDS]
# New inputs collect in build-fuzz/corpus/TARGET (kept between runs, so a
# longer run goes on where the last one stopped); the committed corpus is
# never written. A run's crash inputs go to build-fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if [[ ! $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
	echo "usage: fuzz.sh [SECONDS]" >&2
	exit 2
fi

targets=(ioctl ctl ops name policy encode state)
# The core's targets see ~15000 features per input (every step runs the
# invariant checks); libFuzzer 14's entropic scheduler then spends most of
# the time ranking them: without it they run 4x faster and cover as much.
declare -A extra=([ioctl]=-entropic=0 [ctl]=-entropic=0 [ops]=-entropic=0)
build="build-fuzz"

# clang with libFuzzer and the symbolizer, and what the project needs to
# configure (the tests are configured too: Criterion); installed if missing.
scripts/deps.sh fuzz

options=(-Dfuzz=true -Dtests=enabled "-Db_sanitize=address,undefined" -Db_lundef=false -Dman=disabled -Dvm_tests=false)
if [[ -f $build/build.ninja ]]; then
	meson setup --reconfigure "$build" "${options[@]}" >/dev/null
else
	CC=clang meson setup "$build" "${options[@]}" >/dev/null
fi
# Only the targets: the rest of a clang build is not what this script is for.
nice meson compile -C "$build" "${targets[@]/#/fuzz-}" >/dev/null

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)}

passed=0
failed=0
mkdir -p "$build/logs"

for t in "${targets[@]}"; do
	corpus=$build/corpus/$t
	artifacts=$build/artifacts/$t
	log=$build/logs/fuzz-$t.log
	rm -rf "$artifacts"
	mkdir -p "$corpus" "$artifacts"
	cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
	rc=0
	# shellcheck disable=SC2086 # extra holds whole options
	nice "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 ${extra[$t]:-} -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
	execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
	speed=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
	units=$(find "$corpus" -type f | wc -l)
	crashes=$(find "$artifacts" -type f | sort)
	if ((rc == 0)) && [[ -z $crashes ]]; then
		echo "fuzz: $t: ${execs:-0} executions in ${seconds} s (${speed:-0}/s), corpus $units inputs: passed"
		passed=$((passed + 1))
	else
		echo "fuzz: $t: FAILED (exit $rc) after ${execs:-?} executions; log $log"
		grep -E "invariant violated|ERROR: |SUMMARY: |runtime error" "$log" | head -5 | sed 's/^/fuzz:   /' || true
		while read -r c; do
			[[ -z $c ]] || echo "fuzz:   crash input: $c"
		done <<<"$crashes"
		echo "fuzz:   once understood, keep it as tests/fuzz/crashes/$t-DESC and in tests/fuzz/corpus/$t/"
		failed=$((failed + 1))
	fi
done

# The crash inputs found so far, one run each: the bugs they showed stay fixed.
shopt -s nullglob
for f in tests/fuzz/crashes/*; do
	name=$(basename "$f")
	t=${name%%-*}
	if [[ ! -x $build/tests/fuzz/fuzz-$t ]]; then
		echo "fuzz: crashes/$name: FAILED: no target '$t' (name it TARGET-DESC)"
		failed=$((failed + 1))
		continue
	fi
	log=$build/logs/replay-$name.log
	if "$build/tests/fuzz/fuzz-$t" -timeout=10 -rss_limit_mb=2048 "$f" >"$log" 2>&1; then
		echo "fuzz: crashes/$name: replayed through $t: passed"
		passed=$((passed + 1))
	else
		echo "fuzz: crashes/$name: replayed through $t: FAILED; log $log"
		grep -E "invariant violated|ERROR: |SUMMARY: |runtime error" "$log" | head -3 | sed 's/^/fuzz:   /' || true
		failed=$((failed + 1))
	fi
done

echo "fuzz: $passed passed, $failed failed"
((failed == 0))
