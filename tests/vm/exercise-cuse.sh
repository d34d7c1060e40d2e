#!/usr/bin/env bash
# exercise-cuse.sh: drive a real CUSE node with programs no one here wrote.
#
# Runs as root inside the CUSE VM (tests/vm/run-in-vm.sh), started by the
# meson test 'cuse-exercise'. It starts ringdevd on /dev/NAME, then:
#   1. copies the same random file through the node with dd, socat, pv and
#      fio (--ioengine=sync, with its own crc32c verify), each copy checked
#      byte for byte with cmp;
#   2. runs stress-ng's device stressor (--dev) against the data node for a
#      bounded time, and fails unless its rounds get through;
#   3. checks after each step that the daemon is alive, still serves a
#      round trip, and has no request left parked.
# Every command is bounded by timeout(1): a hang is a failure, not a stuck
# test. Ends with "exercise: N passed, M failed" and exits non-zero on any
# failure. Environment: RINGDEVD, RINGDEVCTL (paths), EXERCISE_STRESS_SECONDS
# (default 60), EXERCISE_MIB (size of each copy, default 16).
set -uo pipefail

readonly PROG=exercise
: "${RINGDEVD:?set RINGDEVD to the ringdevd binary}"
: "${RINGDEVCTL:?set RINGDEVCTL to the ringdevctl binary}"
stress_seconds=${EXERCISE_STRESS_SECONDS:-60}
mib=${EXERCISE_MIB:-16}
[[ $stress_seconds =~ ^[0-9]+$ && $mib =~ ^[0-9]+$ ]] || {
	echo "$PROG: EXERCISE_STRESS_SECONDS and EXERCISE_MIB must be numbers" >&2
	exit 2
}
readonly name=rdx$$
readonly node=/dev/$name
readonly ctl=/dev/$name-ctl
size=$((mib * 1024 * 1024))

passed=0
failed=0
daemon_pid=
work=$(mktemp -d /tmp/exercise.XXXXXX)

cleanup() {
	local pid
	# Anything a step left running (it was killed by its timeout, or the
	# step failed half way): end it by pid.
	for pid in $(jobs -p); do
		[[ $pid == "$daemon_pid" ]] || kill -KILL "$pid" 2>/dev/null
	done
	if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid"
		timeout 20 tail --pid="$daemon_pid" -f /dev/null || kill -KILL "$daemon_pid"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}
not_ok() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

ctl() { timeout 20 "$RINGDEVCTL" -d "$node" "$@"; }

# The daemon is alive, a 5-byte round trip through the default pipe works,
# and nothing is parked. Prints why when it is not so.
still_serving() {
	local what=$1 got stats
	if ! kill -0 "$daemon_pid" 2>/dev/null; then
		not_ok "$what: ringdevd (pid $daemon_pid) is gone"
		return 1
	fi
	ctl flush default >/dev/null || true
	got=$(timeout 20 bash -c "printf hello >$node && head -c 5 $node") || got="(timed out or failed: $?)"
	if [[ $got != hello ]]; then
		not_ok "$what: round trip through $node gave '$got'"
		return 1
	fi
	stats=$(ctl --json stats) || {
		not_ok "$what: ringdevctl stats failed"
		return 1
	}
	if ! grep -q '"parked_total": 0[,}]' <<<"$stats"; then
		not_ok "$what: requests left parked: $stats"
		return 1
	fi
	ok "$what: ringdevd still serves, nothing parked"
}

# One copy: $1 names it, $2 is the writer (a command line reading $data),
# $3 the reader (writing $out). Both run at once, each under a time limit.
# The reader starts once the writer has the pipe open: a pipe that had a
# writer and has none reads as end-of-file (ringdev(4)), so a reader that
# came first would rightly see the previous copy's end.
copy_check() {
	local what=$1 writer=$2 reader=$3 wpid wrc rrc i
	rm -f "$out"
	ctl flush default >/dev/null || true
	timeout 300 bash -c "$writer" &
	wpid=$!
	for ((i = 0; i < 200; i++)); do
		ctl --json info default | grep -q '"writers": [1-9]' && break
		sleep 0.05
	done
	timeout 300 bash -c "$reader"
	rrc=$?
	wait "$wpid"
	wrc=$?
	if ((wrc || rrc)); then
		not_ok "$what: writer exit $wrc, reader exit $rrc"
	elif cmp -s "$data" "$out"; then
		ok "$what: $mib MiB through $node, byte for byte"
	else
		not_ok "$what: the copy differs: $(cmp "$data" "$out" 2>&1 | head -n 1)"
	fi
	still_serving "$what"
}

for tool in stress-ng socat pv fio dd cmp timeout; do
	command -v "$tool" >/dev/null || {
		echo "$PROG: $tool is missing (scripts/deps.sh test installs it)" >&2
		exit 1
	}
done

"$RINGDEVD" --frontend=cuse --name "$name" -f --ring-size 1M >"$work/ringdevd.log" 2>&1 &
daemon_pid=$!
for ((i = 0; i < 200; i++)); do
	[[ -c $node && -c $ctl ]] && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.05
done
if [[ ! -c $node ]]; then
	echo "$PROG: ringdevd did not make $node:" >&2
	cat "$work/ringdevd.log" >&2
	exit 1
fi
echo "$PROG: ringdevd pid $daemon_pid serves $node"

data=$work/data
out=$work/out
head -c "$size" /dev/urandom >"$data"

# 1. Copies by four programs, each side at its own block size.
copy_check dd \
	"dd if=$data of=$node bs=64k status=none" \
	"dd if=$node of=$out bs=4k count=$((size / 4096)) iflag=fullblock status=none"
copy_check socat \
	"socat -u OPEN:$data,rdonly OPEN:$node,wronly" \
	"socat -u OPEN:$node,rdonly,readbytes=$size OPEN:$out,wronly,creat,trunc"
copy_check pv \
	"pv -q $data >$node" \
	"head -c $size $node | pv -q >$out"
# fio writes its own pattern and reads it back with a checksum per block, so
# the pipe must hold the whole file: resize the default pipe first. Its
# verify pass "seeks" back to 0 (CUSE's llseek moves nothing) and reads
# the pipe in order; its log must show that read pass.
if ctl resize default $((2 * size)) >/dev/null; then
	ctl flush default >/dev/null || true
	if timeout 300 fio --name=through-ringdev --filename="$node" --rw=write \
		--bs=4k --size="$size" --ioengine=sync --direct=0 --invalidate=0 \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --output="$work/fio.log" >/dev/null 2>&1 &&
		! grep -q 'err= *[1-9]' "$work/fio.log" && grep -q 'READ: bw=' "$work/fio.log"; then
		ok "fio: $mib MiB written and verified (crc32c per 4 KiB) through $node"
	else
		not_ok "fio: failed: $(grep -m1 -E 'err=|verify' "$work/fio.log" 2>/dev/null)"
	fi
	ctl resize default 1M >/dev/null || not_ok "ringdevctl resize default 1M failed"
else
	not_ok "fio: ringdevctl resize default $((2 * size)) failed"
fi
still_serving fio

# 2. stress-ng's device stressor: opens, non-blocking reads, lseek, poll,
# mmap, fsync and ioctls with commands of its own choice, two workers at once.
# (Not on the control node: stress-ng opens devices read-only, which the
# control node refuses, so it would exercise nothing there; tests/fuzz's
# fuzz_ctl and the fault tests play the misbehaving broker instead.)
run_stress() {
	local what=$1 file=$2 seconds=$3 min_ops=$4 rc ops
	timeout $((seconds + 120)) stress-ng --temp-path "$work" --dev 2 --dev-file "$file" \
		-t "${seconds}s" --metrics-brief >"$work/stress-ng.log" 2>&1
	rc=$?
	ops=$(awk '$4 == "dev" && $5 ~ /^[0-9]+$/ { print $5; exit }' "$work/stress-ng.log")
	# It also says how many of the devices it could open and exercise.
	if ((rc == 0)) && [[ -n $ops ]] && ((ops >= min_ops)) &&
		! grep -q ' 0 of [0-9]* devices opened' "$work/stress-ng.log"; then
		ok "stress-ng --dev on $file for ${seconds} s: $ops bogo ops"
	else
		not_ok "stress-ng --dev on $file: exit $rc, ${ops:-no} bogo ops: $(tail -n 3 "$work/stress-ng.log" | tr '\n' ' ')"
	fi
	still_serving "stress-ng on $what"
}
run_stress "the data node" "$node" "$stress_seconds" 1

# 3. After all of it, SIGTERM still ends the daemon, and cleanly.
kill -TERM "$daemon_pid"
if timeout 20 tail --pid="$daemon_pid" -f /dev/null; then
	wait "$daemon_pid"
	rc=$?
	if ((rc == 0)); then ok "ringdevd ended on SIGTERM with status 0"; else not_ok "ringdevd ended with status $rc"; fi
else
	not_ok "ringdevd did not end within 20 s of SIGTERM"
fi
daemon_pid=
if grep -qiE 'assert|sanitizer|segfault' "$work/ringdevd.log"; then
	not_ok "ringdevd's log shows a crash:"
	cat "$work/ringdevd.log"
fi

echo "$PROG: $passed passed, $failed failed"
((failed == 0))
