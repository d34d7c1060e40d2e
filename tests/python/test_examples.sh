#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_examples.sh - the examples of examples/ against a real ringdevd on a
# FUSE mount: attach-write-poll through the mount directory and through a
# pipe file (ATTACH CREATE), its error line and exit codes; mini-broker
# answering its device-specific ioctl and deciding opens as ringdevd would.
#
# Env: RINGDEVD, ATTACH_WRITE_POLL, MINI_BROKER (binaries), PYTHON and
# PYTHONPATH (the ringdev package, for the broker's client side).
# Exit: 0 pass, 1 fail.
set -u

for v in RINGDEVD ATTACH_WRITE_POLL MINI_BROKER PYTHON; do
	if [ -z "${!v:-}" ]; then
		echo "test_examples: set $v (meson test does)" >&2
		exit 1
	fi
done
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ]; then
	echo "test_examples: needs root and /dev/fuse (a FUSE mount)" >&2
	exit 1
fi

TMP=$(mktemp -d /tmp/test_examples.XXXXXX) || exit 1
chmod 755 "$TMP"
MNT=$TMP/mnt
DAEMON_PID=
BROKER_PID=
FAILED=0

is_mounted() {
	awk -v m="$MNT" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# stop PID: SIGTERM, wait up to 10 s, then SIGKILL; its exit code.
stop() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# Always runs: stop what we started (by pid), unmount, remove the temp dir.
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$BROKER_PID" ] && stop "$BROKER_PID"
	[ -n "$DAEMON_PID" ] && stop "$DAEMON_PID"
	is_mounted && umount -l "$MNT"
	rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

pass() { echo "ok - $1"; }
fail() {
	FAILED=$((FAILED + 1))
	echo "not ok - $1"
	shift
	for line in "$@"; do echo "    $line"; done
}

# expect NAME WANT_RC PATTERN... -- CMD...: the exit code, and each pattern
# (grep -F) in stdout+stderr.
expect() {
	local name=$1 want=$2 got
	shift 2
	local patterns=()
	while [ "$1" != -- ]; do patterns+=("$1"); shift; done
	shift
	timeout 20 "$@" >"$TMP/out" 2>&1
	got=$?
	if [ "$got" != "$want" ]; then
		fail "$name" "exit $got (want $want):" "$(cat "$TMP/out")"
		return
	fi
	for p in "${patterns[@]}"; do
		if ! grep -qF -- "$p" "$TMP/out"; then
			fail "$name" "no '$p' in:" "$(cat "$TMP/out")"
			return
		fi
	done
	pass "$name"
}

mkdir -p "$MNT"
"$RINGDEVD" --frontend=fuse --mount "$MNT" -f >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
	is_mounted && break
	kill -0 "$DAEMON_PID" 2>/dev/null || break
	sleep 0.1
done
if ! is_mounted; then
	echo "test_examples: ringdevd did not mount $MNT" >&2
	cat "$TMP/daemon.log" >&2
	exit 1
fi

AWP=$ATTACH_WRITE_POLL

# 1. The mount directory: DIR/PIPE with O_CREAT, settings by SET_CONFIG.
expect "attach-write-poll: message pipe on the mount" 0 \
	"device $MNT: FUSE mount" "attached to pipe ex1 (message, capacity 4096)" \
	"poll before write: POLLOUT" "poll before read: POLLIN" \
	"read 3 bytes (NREAD said 3): one" "read 5 bytes (NREAD said 5): three" \
	"pipe ex1: 0 bytes queued, 2 writes, 2 reads" \
	-- "$AWP" -d "$MNT" -k message -c 4096 ex1 one three

# 2. A pipe file on the mount (kept by fd 3): ATTACH CREATE moves the handle.
exec 3<>"$MNT/start"
expect "attach-write-poll: ATTACH from a pipe file" 0 \
	"attached to pipe ex2 (stream, capacity 65536)" "read 2 bytes (NREAD said 2): hi" \
	-- "$AWP" -d "$MNT/start" ex2 hi
exec 3>&-

# 3. Errors: one line naming the call, and the exit codes.
expect "attach-write-poll: missing device is exit 1" 1 \
	"attach-write-poll: device $MNT/nosuch: No such file or directory" \
	-- "$AWP" -d "$MNT/nosuch" ex3
expect "attach-write-poll: bad pipe name is exit 1" 1 \
	"attach-write-poll: open $MNT/.bad:" -- "$AWP" -d "$MNT" .bad
expect "attach-write-poll: usage error is exit 2" 2 "no PIPE given" -- "$AWP" -d "$MNT"
if [ "$(wc -l <"$TMP/out")" = 1 ]; then pass "usage error is one line"; else fail "usage error is one line" "$(cat "$TMP/out")"; fi

# 4. mini-broker: serves the control node, answers WHOAMI, lets opens through.
"$MINI_BROKER" "$MNT" >"$TMP/broker.out" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
	grep -q "serving" "$TMP/broker.out" && break
	kill -0 "$BROKER_PID" 2>/dev/null || break
	sleep 0.1
done
if grep -q "mini-broker: serving $MNT" "$TMP/broker.out"; then
	pass "mini-broker: serving"
else
	fail "mini-broker: serving" "$(cat "$TMP/broker.out")"
fi
expect "mini-broker: WHOAMI answered, unknown ioctl ENOTTY, opens decided as without a broker" 0 \
	"whoami ok" -- "$PYTHON" - "$MNT" <<'PY'
import errno, os, struct, sys
import ringdev
mnt = sys.argv[1]
WHOAMI = ringdev.IOR(0x90, 80)
with ringdev.open_pipe("wb", "rw", device=mnt) as p:
    for n in (1, 2):
        uid, gid, pid, calls, pipe = struct.unpack("=4I64s", p.ioctl(WHOAMI))
        assert (uid, gid, pid, calls) == (os.getuid(), os.getgid(), os.getpid(), n), (uid, gid, pid, calls)
        assert pipe.rstrip(b"\0") == b"wb", pipe
    try:
        p.ioctl(ringdev.IOR(0x91, 8))
        raise SystemExit("0x91 answered")
    except OSError as e:
        assert e.errno == errno.ENOTTY, e
    s = ringdev.stats(mnt)
    assert s.broker_connected == 1 and s.relayed >= 3, s
    pid = os.fork()
    if pid == 0:  # nobody is refused root's 0600 pipe, as by ringdevd alone
        code = 100
        try:
            os.setgroups([]); os.setgid(65534); os.setuid(65534)
            ringdev.open_pipe("wb", "r", create=False, device=mnt).close()
            code = 0
        except OSError as e:
            code = e.errno
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == errno.EACCES, status
print("whoami ok")
PY
stop "$BROKER_PID"
rc=$?
BROKER_PID=
if [ "$rc" = 0 ]; then pass "mini-broker: exits 0 on SIGTERM"; else fail "mini-broker: exits 0 on SIGTERM" "exit $rc" "$(cat "$TMP/broker.out")"; fi

stop "$DAEMON_PID"
rc=$?
DAEMON_PID=
if [ "$rc" = 0 ]; then pass "ringdevd exits 0"; else fail "ringdevd exits 0" "exit $rc" "$(tail -5 "$TMP/daemon.log")"; fi

if [ "$FAILED" != 0 ]; then
	echo "test_examples: $FAILED failed"
	exit 1
fi
