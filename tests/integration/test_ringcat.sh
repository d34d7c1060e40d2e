#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_ringcat.sh - ringcat(1) against a real ringdevd on a FUSE mount: shell
# pipelines through named pipes (stream and message kinds), a 5 MiB copy
# between a concurrent writer and reader, settings applied on create, and the
# error lines and exit codes.
#
# Env: RINGDEVD and RINGCAT, paths to the binaries (meson passes them).
# Exit: 0 pass, 1 fail, 77 skip (not root, or no /dev/fuse).
set -u

if [ -z "${RINGDEVD:-}" ] || [ -z "${RINGCAT:-}" ]; then
	echo "test_ringcat: set RINGDEVD and RINGCAT to the binaries" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: test_ringcat needs root (FUSE mount)"
	exit 77
fi
if [ ! -c /dev/fuse ]; then
	echo "SKIP: test_ringcat needs /dev/fuse"
	exit 77
fi

TMP=$(mktemp -d /tmp/test_ringcat.XXXXXX) || exit 1
MNT=$TMP/mnt
DAEMON_PID=
CHILD_PIDS=()
PASSED=0
FAILED=0

is_mounted() {
	awk -v m="$MNT" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Always runs: stop what we started (by pid), unmount, remove the temp dir.
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	local pid
	for pid in "${CHILD_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	if [ -n "$DAEMON_PID" ]; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	if is_mounted; then
		umount -l "$MNT"
	fi
	rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

pass() {
	PASSED=$((PASSED + 1))
	echo "ok - $1"
}

fail() {
	FAILED=$((FAILED + 1))
	echo "not ok - $1"
	shift
	local line
	for line in "$@"; do
		echo "    $line"
	done
}

# ringcat with a deadline, so a hang is a failure rather than a stuck suite.
rc() {
	timeout 20 "$RINGCAT" -d "$MNT" "$@"
}

# One field of RINGDEV_IOC_PIPE_INFO for pipe $1 (python3 speaks ioctl).
pipe_info() {
	python3 - "$MNT/$1" "$2" <<'EOF'
import fcntl, os, struct, sys
PIPE_INFO = (2 << 30) | (256 << 16) | (0xE5 << 8) | 0x03  # _IOR(0xE5, 3, 256 bytes)
NAMES = ("name kind policy mode uid gid flags readers writers handles parked_reads "
         "parked_writes reserved0 capacity queued_bytes queued_messages allocated_bytes "
         "bytes_in bytes_out writes reads dropped_bytes dropped_messages ino").split()
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    raw = fcntl.ioctl(fd, PIPE_INFO, bytes(256))
finally:
    os.close(fd)
print(dict(zip(NAMES, struct.unpack_from("<64s12I11Q", raw)))[sys.argv[2]])
EOF
}

have_python() {
	command -v python3 >/dev/null
}

# check_info TEST PIPE FIELD EXPECTED
check_info() {
	local got
	if ! have_python; then
		echo "    (no python3: $2 $3 not checked)"
		return
	fi
	got=$(pipe_info "$2" "$3" 2>&1)
	if [ "$got" = "$4" ]; then
		pass "$1: $2 $3 is $4"
	else
		fail "$1: $2 $3 is $4" "got: $got"
	fi
}

# check_error TEST EXPECTED_RC GREP_PATTERN ringcat-args...
# The command (stdin: $CHECK_INPUT or /dev/null) must exit with EXPECTED_RC
# and print exactly one line on stderr, "ringcat: ..." matching the pattern.
check_error() {
	local name=$1 want=$2 pattern=$3 got lines
	shift 3
	rc "$@" <"${CHECK_INPUT:-/dev/null}" >"$TMP/err.out" 2>"$TMP/err.txt"
	got=$?
	lines=$(wc -l <"$TMP/err.txt")
	if [ "$got" = "$want" ] && [ "$lines" = 1 ] &&
	   grep -q '^ringcat: ' "$TMP/err.txt" && grep -q -- "$pattern" "$TMP/err.txt"; then
		pass "$name (exit $want: $(cat "$TMP/err.txt"))"
	else
		fail "$name" "exit $got (want $want), $lines stderr lines (want 1):" \
			"$(cat "$TMP/err.txt")"
	fi
}

start_daemon() {
	mkdir -p "$MNT"
	"$RINGDEVD" --frontend=fuse --mount "$MNT" -f 2>"$TMP/daemon.log" &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		if is_mounted; then
			return 0
		fi
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "test_ringcat: ringdevd did not mount $MNT within 10 s" >&2
	cat "$TMP/daemon.log" >&2
	exit 1
}

# 1: a stream pipe through a shell pipeline; names are case-insensitive.
test_stream() {
	printf 'hello\nworld\n' >"$TMP/hello.want"
	if ! printf 'hello\nworld\n' | rc -w --create HELLO; then
		fail "stream: write --create HELLO"
		return
	fi
	pass "stream: write --create HELLO"
	rc -r hello >"$TMP/hello.got"
	local got=$?
	if [ "$got" = 0 ] && cmp -s "$TMP/hello.want" "$TMP/hello.got"; then
		pass "stream: read hello gets what HELLO was given"
	else
		fail "stream: read hello gets what HELLO was given" "exit $got, output:" \
			"$(od -c "$TMP/hello.got" | head -5)"
	fi
}

# 2: each input line is one message; a last line without newline is one too.
test_message() {
	printf 'one\ntwo\nthree\n' >"$TMP/msg.want"
	if ! rc -w --create --kind message MSG <"$TMP/msg.want"; then
		fail "message: write --create --kind message MSG"
		return
	fi
	pass "message: write --create --kind message MSG"
	check_info message MSG kind 2
	check_info message MSG queued_messages 3
	check_info message MSG queued_bytes 14
	rc -r msg >"$TMP/msg.got"
	local got=$?
	if [ "$got" = 0 ] && cmp -s "$TMP/msg.want" "$TMP/msg.got"; then
		pass "message: reader gets the 3 lines"
	else
		fail "message: reader gets the 3 lines" "exit $got, output:" "$(head -5 "$TMP/msg.got")"
	fi

	printf 'a\nb' | rc -w --create --kind message MSG2
	check_info message MSG2 queued_messages 2
	rc -r MSG2 >"$TMP/msg2.got"
	if [ "$(od -An -c "$TMP/msg2.got" | tr -d ' ')" = 'a\nb' ]; then
		pass "message: a last line without newline is one message"
	else
		fail "message: a last line without newline is one message" \
			"output: $(od -An -c "$TMP/msg2.got")"
	fi

	{ echo ok; head -c 70000 /dev/zero | tr '\0' x; echo; } >"$TMP/long.txt"
	CHECK_INPUT=$TMP/long.txt check_error "message: a line over RINGDEV_MESSAGE_MAX fails naming it" \
		1 'line 2' -w --create --kind message LONG
	check_info message LONG queued_messages 1
	rc -r LONG >/dev/null
}

# 3: 5 MiB of random bytes, reader started first, writer in parallel.
test_bulk() {
	local reader got
	head -c 5M /dev/urandom >"$TMP/big.in"
	timeout 60 "$RINGCAT" -d "$MNT" -r --create BIG >"$TMP/big.out" 2>"$TMP/big.err" &
	reader=$!
	CHILD_PIDS+=("$reader")
	for _ in $(seq 50); do
		[ -e "$MNT/BIG" ] && break
		sleep 0.1
	done
	timeout 60 "$RINGCAT" -d "$MNT" -w --create BIG <"$TMP/big.in"
	got=$?
	wait "$reader"
	local read_rc=$?
	local want_sum got_sum
	want_sum=$(sha256sum <"$TMP/big.in")
	got_sum=$(sha256sum <"$TMP/big.out")
	if [ "$got" = 0 ] && [ "$read_rc" = 0 ] && [ "$want_sum" = "$got_sum" ]; then
		pass "bulk: 5 MiB through a pipe, writer and reader in parallel"
	else
		fail "bulk: 5 MiB through a pipe, writer and reader in parallel" \
			"writer exit $got, reader exit $read_rc, $(stat -c %s "$TMP/big.out") bytes out" \
			"$(cat "$TMP/big.err")"
	fi
}

# Settings asked on the command line reach the pipe, on create and later.
test_settings() {
	if ! echo x | rc -w --create --capacity 4K --policy overwrite CFG; then
		fail "settings: write --create --capacity 4K --policy overwrite"
		return
	fi
	check_info settings CFG capacity 4096
	check_info settings CFG policy 2
	echo y | rc -w --capacity 8K CFG
	check_info settings CFG capacity 8192
	check_info settings CFG policy 2
	rc -r CFG >/dev/null
}

# A reader whose stdout closes exits 1 with one line; the pipe keeps the rest.
test_epipe() {
	local writer status
	head -c 1M /dev/zero >"$TMP/ep.in"
	rc -w --create EP <"$TMP/ep.in" 2>"$TMP/ep.werr" &
	writer=$!
	CHILD_PIDS+=("$writer")
	rc -r --create EP 2>"$TMP/ep.err" | head -c 10 >/dev/null
	status=${PIPESTATUS[0]}
	if [ "$status" = 1 ] && [ "$(wc -l <"$TMP/ep.err")" = 1 ] &&
	   grep -q '^ringcat: stdout: Broken pipe' "$TMP/ep.err"; then
		pass "epipe: reader exits 1 with one line ($(cat "$TMP/ep.err"))"
	else
		fail "epipe: reader exits 1 with one line" "exit $status:" "$(cat "$TMP/ep.err")"
	fi
	rc -r EP >"$TMP/ep.rest"
	wait "$writer"
	status=$?
	if [ "$status" = 0 ] && [ "$(stat -c %s "$TMP/ep.rest")" -gt 0 ]; then
		pass "epipe: the writer finishes once another reader drains the pipe"
	else
		fail "epipe: the writer finishes once another reader drains the pipe" \
			"writer exit $status, $(stat -c %s "$TMP/ep.rest") bytes drained" \
			"$(cat "$TMP/ep.werr")"
	fi
}

test_errors() {
	check_error "errors: missing pipe without --create" 1 'use --create' -r nosuch
	check_error "errors: bad name .x" 1 'invalid pipe name' -r .x
	check_error "errors: 64-byte name" 1 'longer than 63' \
		-r "$(printf 'a%.0s' $(seq 64))"
	check_error "errors: neither -w nor -r" 2 'give -w' x
	check_error "errors: both -w and -r" 2 'only one' -w -r x
	check_error "errors: no NAME" 2 'missing pipe NAME' -r
	check_error "errors: extra argument" 2 'unexpected argument' -r x y
	check_error "errors: --capacity too small" 2 'capacity' -w --capacity 10 x
	check_error "errors: --capacity not a number" 2 'capacity' -w --capacity lots x
	check_error "errors: bad --kind" 2 'kind' -w --kind datagram x
	check_error "errors: bad --policy" 2 'policy' -w --policy drop x
	check_error "errors: not a ringdev device" 1 'not a ringdev device' -d "$TMP" -r x
	"$RINGCAT" --help >"$TMP/help.out" 2>&1
	local got=$?
	if [ "$got" = 0 ] && grep -q '^Usage: ringcat' "$TMP/help.out"; then
		pass "errors: --help exits 0"
	else
		fail "errors: --help exits 0" "exit $got"
	fi
}

start_daemon
test_stream
test_message
test_bulk
test_settings
test_epipe
test_errors

echo "ringcat: $PASSED passed, $FAILED failed"
if [ "$FAILED" != 0 ]; then
	echo "--- ringdevd log (last 20 lines):"
	tail -20 "$TMP/daemon.log"
	exit 1
fi
exit 0
