#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-privilege.sh - ringdevd --user and ringdev-broker --user keep nothing
# of root, and go on serving.
# - ringdevd --user nobody on a real FUSE mount: /proc/PID/status of every
#   thread shows no uid or gid 0 (Uid, Gid lines), no supplementary groups,
#   and empty CapEff, CapPrm, CapInh, CapAmb and CapBnd;
# - it still serves: a write and a read through the mount, a pipe created
#   by an open, a reader that waits for a later writer;
# - ringdev-broker --user nobody on its control node: the same status
#   checks, and opens go through it;
# - SIGTERM stops both with status 0, and the mount is gone afterwards
#   (fusermount3's auto_unmount helper removes it, ringdevd no longer can);
# - --user as a non-root user fails (status 1) before mounting, and an
#   unknown user is a usage error (status 2).
# Needs root and /dev/fuse; daemons are killed by pid, the mount and the
# temporary folder removed at exit.
set -euo pipefail

fail() { echo "test-privilege: $*" >&2; exit 1; }
skip() { echo "test-privilege: SKIP: $*" >&2; exit 77; }
[[ -n ${RINGDEVD:-} && -n ${RINGDEV_BROKER:-} ]] || fail "RINGDEVD and RINGDEV_BROKER must be set (run through meson test)"
[[ $(id -u) -eq 0 ]] || skip "needs root"
[[ -e /dev/fuse ]] || skip "no /dev/fuse"
[[ ${HAVE_CAPNG:-} == true ]] || skip "built without libcap-ng: --user is refused"
user=nobody
uid=$(id -u "$user") gid=$(id -g "$user")

tmp=$(mktemp -d)
mnt=$tmp/mnt
daemon= broker=
cleanup() {
	[[ -n $broker ]] && kill -KILL "$broker" 2>/dev/null
	[[ -n $daemon ]] && kill -KILL "$daemon" 2>/dev/null
	for _ in $(seq 50); do grep -q " $mnt " /proc/mounts || break; sleep 0.1; done
	grep -q " $mnt " /proc/mounts && umount -l "$mnt"
	rm -rf "$tmp"
}
trap cleanup EXIT

# Wait until CMD succeeds, for at most 5 s.
wait_for() {
	for _ in $(seq 50); do "$@" && return 0; sleep 0.1; done
	return 1
}
dropped() { grep -qE "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid\$" "/proc/$1/status"; }

# Every thread: no root, no groups, no capabilities.
check_status() {
	local pid=$1 what=$2 t
	for t in /proc/"$pid"/task/*; do
		local s=$t/status
		grep -qE "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid\$" "$s" || fail "$what: $(grep ^Uid: "$s")"
		grep -qE "^Gid:\s+$gid\s+$gid\s+$gid\s+$gid\$" "$s" || fail "$what: $(grep ^Gid: "$s")"
		grep -qE '^Groups:\s*$' "$s" || fail "$what: $(grep ^Groups: "$s")"
		for c in CapEff CapPrm CapInh CapAmb CapBnd; do
			grep -qE "^$c:\s+0+\$" "$s" || fail "$what: $(grep "^$c:" "$s")"
		done
	done
}

# Refusals first: they must not mount anything.
set +e
setpriv --reuid="$uid" --regid="$gid" --clear-groups "$RINGDEVD" -f --frontend=fuse --mount "$mnt" --user "$user" \
	>"$tmp/nonroot.log" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "--user as non-root: status $rc, want 1: $(cat "$tmp/nonroot.log")"
grep -q -- '--user' "$tmp/nonroot.log" || fail "--user as non-root: $(cat "$tmp/nonroot.log")"
grep -q " $mnt " /proc/mounts && fail "--user as non-root mounted"
set +e
"$RINGDEVD" -f --frontend=fuse --mount "$mnt" --user no-such-user-here >"$tmp/nouser.log" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "--user no-such-user: status $rc, want 2"

"$RINGDEVD" -f -v --frontend=fuse --mount "$mnt" --user "$user" >"$tmp/daemon.log" 2>&1 &
daemon=$!
wait_for grep -q " $mnt " /proc/mounts || fail "no mount: $(cat "$tmp/daemon.log")"
wait_for dropped "$daemon" || fail "ringdevd did not drop to $user: $(cat "$tmp/daemon.log")"
check_status "$daemon" ringdevd

# It serves: write then read, and a reader waiting for a later writer.
printf 'hello' >"$mnt/HELLO"
[[ $(timeout 5 cat "$mnt/hello") == hello ]] || fail "read back through the mount failed"
exec 4>"$mnt/LATER" # held open: the reader waits instead of seeing EOF
timeout 5 cat "$mnt/LATER" >"$tmp/later.out" 4>&- &
reader=$!
sleep 0.3
printf 'late' >&4
exec 4>&-
wait "$reader" || fail "the waiting reader failed"
[[ $(cat "$tmp/later.out") == late ]] || fail "the waiting reader got '$(cat "$tmp/later.out")'"

# The broker, through the control node.
RINGDEV_BROKER_POLICY=$tmp/no-policy "$RINGDEV_BROKER" -f -d "$mnt" --user "$user" >"$tmp/broker.log" 2>&1 &
broker=$!
wait_for grep -q 'no capabilities' "$tmp/broker.log" || fail "ringdev-broker did not drop: $(cat "$tmp/broker.log")"
check_status "$broker" ringdev-broker
printf 'via' >"$mnt/BROKERED"
[[ $(timeout 5 cat "$mnt/BROKERED") == via ]] || fail "read back with the broker failed"
grep -q "open pipe 'BROKERED'" "$tmp/broker.log" || fail "the broker saw no open: $(cat "$tmp/broker.log")"
kill -TERM "$broker"
rc=0; wait "$broker" || rc=$?
broker=
[[ $rc -eq 0 ]] || fail "ringdev-broker exited with $rc after SIGTERM: $(cat "$tmp/broker.log")"

kill -TERM "$daemon"
rc=0; wait "$daemon" || rc=$?
daemon=
[[ $rc -eq 0 ]] || fail "ringdevd exited with $rc after SIGTERM: $(cat "$tmp/daemon.log")"
wait_for sh -c "! grep -q ' $mnt ' /proc/mounts" || fail "the mount stayed after ringdevd exited"
echo "test-privilege: ok"
