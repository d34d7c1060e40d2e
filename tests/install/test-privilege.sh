#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-privilege.sh - ringdevd --user and ringdev-broker --user keep nothing
# of root, and go on serving.
# - ringdevd --user nobody on a real FUSE mount: /proc/PID/status of every
#   thread shows no uid or gid 0 (Uid, Gid lines), no supplementary groups,
#   and empty CapEff, CapPrm, CapInh, CapAmb and CapBnd; the device is
#   still owned by root, who started it;
# - it still serves: a write and a read through the mount, a pipe created
#   by an open, a reader that waits for a later writer;
# - ringdev-broker --user nobody on its control node: the same status
#   checks, and opens go through it;
# - SIGTERM stops both with status 0, and the mount is gone afterwards
#   (fusermount3's auto_unmount helper removes it, ringdevd no longer can);
# - --user as a non-root user fails (status 1) before mounting, and an
#   unknown user is a usage error (status 2).
# With RINGDEV_TEST_FRONTEND=cuse (the CUSE VM of tests/vm) the same checks
# run on /dev/NAME: the drop happens once the kernel made both nodes, the
# pipes are reached through the node's default pipe, and the nodes are gone
# after SIGTERM.
# Needs root and /dev/fuse (or /dev/cuse); daemons are killed by pid, the
# mount and the temporary folder removed at exit.
set -euo pipefail

fail() { echo "test-privilege: $*" >&2; exit 1; }
skip() { echo "test-privilege: SKIP: $*" >&2; exit 77; }
[[ -n ${RINGDEVD:-} && -n ${RINGDEV_BROKER:-} ]] || fail "RINGDEVD and RINGDEV_BROKER must be set (run through meson test)"
[[ $(id -u) -eq 0 ]] || skip "needs root"
frontend=${RINGDEV_TEST_FRONTEND:-fuse}
[[ $frontend == fuse || $frontend == cuse ]] || fail "RINGDEV_TEST_FRONTEND is fuse or cuse, not '$frontend'"
[[ -e /dev/$frontend ]] || skip "no /dev/$frontend"
[[ ${HAVE_CAPNG:-} == true ]] || skip "built without libcap-ng: --user is refused"
user=nobody
uid=$(id -u "$user") gid=$(id -g "$user")

tmp=$(mktemp -d)
mnt=$tmp/mnt
node=/dev/rdpriv$$
if [[ $frontend == cuse ]]; then
	where=(--frontend=cuse --name "${node#/dev/}")
	dev=$node
	present() { [[ -c $node ]]; }
else
	where=(--frontend=fuse --mount "$mnt")
	dev=$mnt
	present() { grep -q " $mnt " /proc/mounts; }
fi
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
setpriv --reuid="$uid" --regid="$gid" --clear-groups "$RINGDEVD" -f "${where[@]}" --user "$user" \
	>"$tmp/nonroot.log" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "--user as non-root: status $rc, want 1: $(cat "$tmp/nonroot.log")"
grep -q -- '--user' "$tmp/nonroot.log" || fail "--user as non-root: $(cat "$tmp/nonroot.log")"
present && fail "--user as non-root made $dev"
set +e
"$RINGDEVD" -f "${where[@]}" --user no-such-user-here >"$tmp/nouser.log" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "--user no-such-user: status $rc, want 2"

"$RINGDEVD" -f -v "${where[@]}" --user "$user" >"$tmp/daemon.log" 2>&1 &
daemon=$!
wait_for present || fail "no $dev: $(cat "$tmp/daemon.log")"
wait_for dropped "$daemon" || fail "ringdevd did not drop to $user: $(cat "$tmp/daemon.log")"
check_status "$daemon" ringdevd
# The device keeps the owner it had before the drop (ringdevd(8) --user,
# ringdev(4) "Creating a pipe"): root, not the user it now runs as.
owner=$(stat -c %u:%g "$dev")
[[ $owner == 0:0 ]] || fail "$dev is owned by $owner after --user $user, want 0:0 (root, who started it)"

# It serves: write then read, and a reader waiting for a later writer. On
# the mount each through a pipe file an open creates; on CUSE through the
# default pipe every open of the node starts on.
pipe_of() { if [[ $frontend == cuse ]]; then echo "$node"; else echo "$mnt/$1"; fi; }
printf 'hello' >"$(pipe_of HELLO)"
[[ $(timeout 5 head -c 5 "$(pipe_of hello)") == hello ]] || fail "read back through $dev failed"
exec 4>"$(pipe_of LATER)" # held open: the reader waits instead of seeing EOF
timeout 5 head -c 4 "$(pipe_of LATER)" >"$tmp/later.out" 4>&- &
reader=$!
sleep 0.3
printf 'late' >&4
exec 4>&-
wait "$reader" || fail "the waiting reader failed"
[[ $(cat "$tmp/later.out") == late ]] || fail "the waiting reader got '$(cat "$tmp/later.out")'"

# The broker, through the control node.
RINGDEV_BROKER_POLICY=$tmp/no-policy "$RINGDEV_BROKER" -f -d "$dev" --user "$user" >"$tmp/broker.log" 2>&1 &
broker=$!
wait_for grep -q 'no capabilities' "$tmp/broker.log" || fail "ringdev-broker did not drop: $(cat "$tmp/broker.log")"
check_status "$broker" ringdev-broker
printf 'via' >"$(pipe_of BROKERED)"
[[ $(timeout 5 head -c 3 "$(pipe_of BROKERED)") == via ]] || fail "read back with the broker failed"
grep -q "open pipe '" "$tmp/broker.log" || fail "the broker saw no open: $(cat "$tmp/broker.log")"
kill -TERM "$broker"
rc=0; wait "$broker" || rc=$?
broker=
[[ $rc -eq 0 ]] || fail "ringdev-broker exited with $rc after SIGTERM: $(cat "$tmp/broker.log")"

kill -TERM "$daemon"
rc=0; wait "$daemon" || rc=$?
daemon=
[[ $rc -eq 0 ]] || fail "ringdevd exited with $rc after SIGTERM: $(cat "$tmp/daemon.log")"
if [[ $frontend == cuse ]]; then
	wait_for sh -c "[ ! -e $node ]" || fail "$node stayed after ringdevd exited"
else
	wait_for sh -c "! grep -q ' $mnt ' /proc/mounts" || fail "the mount stayed after ringdevd exited"
fi
echo "test-privilege: ok ($frontend)"
