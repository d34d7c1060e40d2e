#!/usr/bin/env bash
# analyze.sh - the analysis beyond scripts/test.sh: a clang build with its
# own warning set, clang-tidy on a documented check list, the daemon under
# valgrind memcheck for the integration suites, and ThreadSanitizer for the
# unit suites (the core's timer thread, the broker library's loop threads)
# and for the daemon and brokers under the integration suites. What each
# step checks and why: tests/analysis/README.md.
#
#   analyze.sh          everything: the CI variant, plus the ringcat and
#                       ringdevctl suites under memcheck, every handover
#                       test under memcheck and TSan, and three TSan rounds
#                       of the integration suites instead of one
#   analyze.sh --quick  the CI variant (about 15 minutes on 2 cores): the
#                       restart suite's handovers under memcheck (below)
#
# Installs what it needs (as root) when it is missing. Ends with one line
# "analyze: N passed, M failed" (N and M count steps); exits 1 if any failed.
# Build directories: build-clang, build-valgrind (gcc, plain), build-tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
case "${1:-}" in
--quick) quick=1 ;;
"") ;;
*) echo "usage: analyze.sh [--quick]" >&2; exit 2 ;;
esac

scripts/deps.sh analyze

# Other builds and tests share the machine: everything from here is niced.
renice -n 10 $$ >/dev/null

passed=0
failed=0
failures=()
start=$SECONDS
logs=$(mktemp -d /tmp/ringdev-analyze.XXXXXX)
trap 'rm -rf "$logs"' EXIT

# step NAME COMMAND...: run one step (a program or a function) and count
# it; ok is 1 after a step that passed, 0 after one that failed.
ok=0
step() {
	local name=$1 t0=$SECONDS
	shift
	echo "== $name"
	if "$@"; then
		ok=1
		passed=$((passed + 1))
		echo "-- $name: ok ($((SECONDS - t0)) s)"
	else
		ok=0
		failed=$((failed + 1))
		failures+=("$name")
		echo "-- $name: FAILED ($((SECONDS - t0)) s)"
	fi
}

# skip NAME: a step that cannot run because the one it needs failed.
skip() {
	echo "== $1: not run (the build it needs failed)"
	failed=$((failed + 1))
	failures+=("$1")
}

# setup CC DIR ARGS...: configure (or reconfigure) and build a build dir
# with compiler CC (meson keeps the compiler of the first setup).
# Quiet unless it fails: then the log's end says why.
setup() {
	local cc=$1 dir=$2 log
	shift 2
	log=$logs/setup-$(basename "$dir").log
	if [[ -d $dir ]]; then
		meson setup --reconfigure "$dir" "$@" >"$log" 2>&1 || { tail -n 40 "$log"; return 1; }
	else
		CC=$cc meson setup "$dir" "$@" >"$log" 2>&1 || { tail -n 40 "$log"; return 1; }
	fi
	ninja -C "$dir" >>"$log" 2>&1 || { grep -E -A12 '^FAILED|error:' "$log" | head -n 80; return 1; }
}

# Nothing in these checks needs the man pages or the CUSE VM; they all need
# the test programs (Criterion), which a plain build leaves out without it.
common_opts=(--werror -Dtests=enabled -Dman=disabled -Dvm_tests=false)

# A Criterion run whose logs must also be empty: the run passes when the
# suite passes and no file in DIR holds a report (valgrind writes one log
# per process, empty when it found nothing; TSan writes one per process
# that had a report). Reports are printed.
# criterion_run LOGDIR COMMAND...
criterion_run() {
	local dir=$1 status=0 f
	shift
	"$@" || status=1
	for f in "$dir"/*; do
		[[ -s $f ]] || continue
		echo "---- $f" >&2
		cat "$f" >&2
		status=1
	done
	return $status
}

# --- clang: the build with the clang-only warnings, and clang-tidy --------
step "clang build (--werror, the clang warning set)" setup clang build-clang "${common_opts[@]}"
if ((ok)); then
	step "clang-tidy (.clang-tidy) over the product code" \
		python3 tests/analysis/clang-tidy.py build-clang "$root" tests/analysis/clang-tidy-known.txt
else
	skip "clang-tidy"
fi

# --- valgrind memcheck: the daemon under the integration suites -----------
vg=$root/build-valgrind
step "gcc build for valgrind (and the test programs of the TSan runs)" setup gcc build-valgrind "${common_opts[@]}"
vg_built=$ok
vg_env=(RINGDEVD="$root/tests/analysis/ringdevd-valgrind.sh" RINGDEVD_REAL="$vg/cuse_dev/ringdevd"
	RINGDEV_TEST_FRONTEND=fuse RINGDEV_TEST_STRICT=1)
mkdir -p "$logs/vg-it" "$logs/vg-broker" "$logs/vg-priv" "$logs/vg-shell"
# --user: the daemon drops to nobody, and valgrind opens the log of each
# process after that (a refused start; the new image of a handover after
# the drop, restart/restart_after_the_privilege_drop): nobody must reach
# the dirs of the runs that drop.
chmod 0755 "$logs"
chmod 0777 "$logs/vg-it" "$logs/vg-priv"
# Every handover under valgrind starts valgrind again (seconds; under TSan
# a new TSan runtime), and the restart attack suites make well over a
# hundred, the broker's five-SIGHUP storm two minutes more: together they
# outlast CI's time. --quick (CI) keeps the restart suite's handovers under
# memcheck (five in a row, refusal, guard, storms, --user) and leaves the
# attack suites and the storm to the long run, under TSan the restart
# suites too; CI runs all of them natively, under ASan and in the VM.
vg_long_only=()
long_only=()
broker_long_only=()
if ((quick)); then
	vg_long_only=(--exclude 'attack_restart_*/*')
	long_only=(--exclude 'restart/*' --exclude 'attack_restart_*/*')
	broker_long_only=(--filter '!(broker/records_move_exactly_once_across_five_sighups)')
fi
if ((vg_built)); then
	# The stress suite moves 2 x 256 MiB through the daemon: under memcheck
	# that outlasts its fixed 300-s Criterion limit. The same paths run in
	# the other suites with small sizes; stress runs under the TSan daemon.
	# run-integration.sh leaves the 32-bit compat test out, saying so in one
	# line, where this kernel refuses 32-bit programs (the VM of
	# scripts/test.sh runs it then): it would fail for the host's sake.
	step "valgrind: integration suite but stress (ringdevd under memcheck)" \
		criterion_run "$logs/vg-it" env "${vg_env[@]}" RINGDEV_VALGRIND_LOGS="$logs/vg-it" \
		RINGDEV_BROKER="$vg/broker/ringdev-broker" \
		tests/integration/run-integration.sh --exclude 'stress/*' "${vg_long_only[@]}" \
		"$vg/tests/integration/integration-tests" --jobs 2
	step "valgrind: broker-integration (ringdevd under memcheck)" \
		criterion_run "$logs/vg-broker" env "${vg_env[@]}" RINGDEV_VALGRIND_LOGS="$logs/vg-broker" \
		RINGDEV_BROKER="$vg/broker/ringdev-broker" RINGDEV_ECHO_BROKER="$vg/broker/echo-broker" \
		"$vg/tests/broker/broker-integration-tests" --jobs 2 "${broker_long_only[@]}"
	step "valgrind: the --user drop (tests/install/test-privilege.sh, ringdevd under memcheck)" \
		criterion_run "$logs/vg-priv" env "${vg_env[@]}" RINGDEV_VALGRIND_LOGS="$logs/vg-priv" \
		RINGDEV_BROKER="$vg/broker/ringdev-broker" HAVE_CAPNG=true tests/install/test-privilege.sh
	if ((!quick)); then
		step "valgrind: ringcat and ringdevctl shell suites (ringdevd under memcheck)" \
			criterion_run "$logs/vg-shell" env "${vg_env[@]}" RINGDEV_VALGRIND_LOGS="$logs/vg-shell" \
			RINGCAT="$vg/tools/ringcat" RINGDEVCTL="$vg/tools/ringdevctl" \
			bash -c 'tests/integration/test_ringcat.sh && tests/integration/test_ringdevctl.sh'
	fi
else
	skip "valgrind runs"
fi

# --- ThreadSanitizer -------------------------------------------------------
# allocator_may_return_null: a unit test makes calloc fail on purpose.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1"
ts=$root/build-tsan
step "TSan build (gcc)" setup gcc build-tsan "${common_opts[@]}" -Db_sanitize=thread -Db_lundef=false
ts_built=$ok
if ((ts_built)); then
	# Criterion cannot run in a TSan process (tests/analysis/tsan/criterion/
	# criterion.h): the unit suites are built again, same sources, against a
	# stand-in.
	step "TSan: build the unit suites against the Criterion stand-in" \
		python3 tests/analysis/tsan-units.py "$ts" "$ts/tsan-units" \
		tests/unit/unit-tests tests/unit/common/common-tests tests/broker/broker-unit-tests
	if ((ok)); then
		for t in unit-tests common-tests broker-unit-tests; do
			step "TSan: $t" bash -c "cd '$ts' && tsan-units/$t"
		done
	else
		skip "TSan: the unit suites"
	fi
else
	skip "TSan: the unit suites"
fi
if ((ts_built && vg_built)); then
	# The daemon and the brokers built with TSan, the test programs from the
	# plain build (Criterion again); every report also lands in the log dir.
	# Races hang on timing: the long run repeats these rounds.
	rounds=1
	((quick)) || rounds=3
	for ((round = 1; round <= rounds; round++)); do
		d=$logs/tsan-$round
		mkdir -p "$d/it" "$d/broker" "$d/stress"
		step "TSan: integration suite, round $round of $rounds (ringdevd built with TSan)" \
			criterion_run "$d/it" env TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$d/it/tsan" \
			RINGDEVD="$ts/cuse_dev/ringdevd" RINGDEV_BROKER="$ts/broker/ringdev-broker" \
			RINGDEV_TEST_FRONTEND=fuse RINGDEV_TEST_STRICT=1 \
			tests/integration/run-integration.sh "${long_only[@]}" "$vg/tests/integration/integration-tests" --jobs 2
		step "TSan: broker-integration, round $round of $rounds (ringdevd and the brokers built with TSan)" \
			criterion_run "$d/broker" env TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$d/broker/tsan" \
			RINGDEVD="$ts/cuse_dev/ringdevd" RINGDEV_BROKER="$ts/broker/ringdev-broker" \
			RINGDEV_ECHO_BROKER="$ts/broker/echo-broker" RINGDEV_TEST_FRONTEND=fuse RINGDEV_TEST_STRICT=1 \
			"$vg/tests/broker/broker-integration-tests" --jobs 2 "${broker_long_only[@]}"
		step "TSan: stress-load and stress-soak, round $round of $rounds (ringdevd built with TSan)" \
			criterion_run "$d/stress" env TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$d/stress/tsan" \
			RINGDEVD="$ts/cuse_dev/ringdevd" RINGDEV_TEST_FRONTEND=fuse RINGDEV_TEST_STRICT=1 \
			bash -c '"$1" --jobs 1 && "$2" --jobs 1' stress \
			"$vg/tests/stress/stress-load" "$vg/tests/stress/stress-soak"
	done
else
	skip "TSan: the integration suites"
fi

echo "analyze.sh: $((SECONDS - start)) s$( ((quick)) && echo " (--quick)")"
if ((failed)); then
	echo "analyze.sh: failed: ${failures[*]}" >&2
fi
echo "analyze: $passed passed, $failed failed"
((failed == 0))
