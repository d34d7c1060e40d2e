#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-integration.sh - run the integration suite where the kernel may not
# run 32-bit programs.
#
# large::a_32bit_caller_gets_correct_answers starts compat32, a 32-bit
# program, to send compat ioctls. Some kernels (this project's machines:
# built with IA32 emulation, but 32-bit executables fail with "Exec format
# error") cannot start it, and the test would fail for the host's sake, not
# the daemon's. meson only checks that compat32 links, so this asks the
# kernel: it starts compat32 with no argument, which exits 0 at once.
#  - It starts: the suite runs whole.
#  - The kernel refuses it (ENOEXEC): the suite runs without that one test,
#    and one line says so; the test is not skipped but left to the VM of
#    tests/vm (Debian's kernel runs 32-bit programs), where `meson test
#    --suite cuse` runs it on CUSE (test cuse) and on a FUSE mount (test
#    vm-fuse-compat32, through --compat32 below), and must pass.
#  - Anything else (compat32 missing, crashing): the suite runs whole and
#    the test says what went wrong.
#
#   run-integration.sh [--exclude PATTERN]... EXE [ARGS...]
#       EXE (integration-tests; compat32 is beside it) with ARGS; each
#       PATTERN (a Criterion "suite/test" glob) is left out too.
#   run-integration.sh --compat32 EXE [ARGS...]
#       only the compat test, which must have run and passed (Criterion
#       exits 0 when a filter matches nothing).
#   run-integration.sh --probe EXE
#       print the one line saying where the compat test runs; exit 0.
#
# VM_TESTS=false (meson's -Dvm_tests) makes the line say that the test then
# runs nowhere in this build.
set -euo pipefail

readonly COMPAT_TEST=large/a_32bit_caller_gets_correct_answers

usage() {
	echo "usage: run-integration.sh [--exclude PATTERN]... | --compat32 | --probe  EXE [ARGS...]" >&2
	exit 2
}

mode=run
excludes=()
while (($#)); do
	case $1 in
	--exclude)
		(($# >= 2)) || usage
		excludes+=("$2")
		shift 2
		;;
	--compat32 | --probe)
		mode=${1#--}
		shift
		;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
(($#)) || usage
exe=$1
shift
compat32=$(dirname -- "$exe")/compat32

# refused: 0 when the kernel refused to start compat32 (ENOEXEC), with the
# reason in $why; 1 when it started (or failed otherwise: the test tells).
why=
refused() {
	local out rc=0
	[[ -x $compat32 ]] || return 1
	out=$(LC_ALL=C "$compat32" 2>&1) || rc=$?
	((rc == 126)) && [[ $out == *"Exec format error"* ]] || return 1
	why="this kernel refuses 32-bit programs (compat32: Exec format error)"
}

where_line() {
	if [[ ${VM_TESTS:-true} == false ]]; then
		echo "$COMPAT_TEST: not run: $why, and -Dvm_tests=false: it runs nowhere in this build"
	else
		echo "$COMPAT_TEST: left to the VM: $why; meson test --suite cuse runs it (tests cuse, vm-fuse-compat32)"
	fi
}

case $mode in
probe)
	if refused; then
		where_line
	else
		echo "$COMPAT_TEST: runs here (32-bit programs start on this kernel)"
	fi
	exit 0
	;;
compat32)
	log=$(mktemp /tmp/ringdev-compat32.XXXXXX)
	trap 'rm -f "$log"' EXIT
	rc=0
	"$exe" "$@" --filter "$COMPAT_TEST" >"$log" 2>&1 || rc=$?
	grep -v 'Test is disabled' "$log" || true
	((rc == 0)) || exit "$rc"
	grep -q 'Tested: 1 | Passing: 1 | Failing: 0 | Crashing: 0' "$log" || {
		echo "run-integration: $COMPAT_TEST did not run (renamed?)" >&2
		exit 1
	}
	exit 0
	;;
esac

if refused; then
	echo "run-integration: $(where_line)" >&2
	excludes+=("$COMPAT_TEST")
fi
if ((${#excludes[@]})); then
	# Criterion takes one filter, the last one given: a caller's own would
	# be silently replaced.
	for a in "$@"; do
		[[ $a != --filter* ]] || { echo "run-integration: use --exclude, not $a, with exclusions" >&2; exit 2; }
	done
	pattern=$(IFS='|'; echo "${excludes[*]}")
	exec "$exe" "$@" --filter "!($pattern)"
fi
exec "$exe" "$@"
