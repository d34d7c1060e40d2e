#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_ringdevctl.sh - ringdevctl(8) against a real ringdevd, on a FUSE mount
# or, with RINGDEV_TEST_FRONTEND=cuse (in the VM of tests/vm), on a CUSE node:
# every command, human and --json, the JSON checked against the state a
# scripted workload left (pipes with known byte counts, a parked reader, a
# writer holding its pipe open), the privilege rules seen by an ordinary
# user (uid 65534), each daemon limit hit and counted, rm of pipes with
# parked requests (EIDRM, then ENXIO), and top on a pseudo-terminal (the
# terminal restored after --count, 'q', SIGINT and SIGTERM) and off one.
#
# Env: RINGDEVD, RINGCAT and RINGDEVCTL, paths to the binaries (meson passes
# them); RINGDEV_TEST_FRONTEND, fuse (default) or cuse. Needs python3 (JSON,
# errno checks), setpriv and script (util-linux).
# Exit: 0 pass, 1 fail, 77 skip (not root, or no /dev/fuse or /dev/cuse).
set -u

if [ -z "${RINGDEVD:-}" ] || [ -z "${RINGCAT:-}" ] || [ -z "${RINGDEVCTL:-}" ]; then
	echo "test_ringdevctl: set RINGDEVD, RINGCAT and RINGDEVCTL to the binaries" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: test_ringdevctl needs root (FUSE mount, a second user)"
	exit 77
fi
FRONTEND=${RINGDEV_TEST_FRONTEND:-fuse}
case $FRONTEND in
fuse | cuse) ;;
*)
	echo "test_ringdevctl: RINGDEV_TEST_FRONTEND is fuse or cuse, not '$FRONTEND'" >&2
	exit 1
	;;
esac
if [ ! -c "/dev/$FRONTEND" ]; then
	echo "SKIP: test_ringdevctl needs /dev/$FRONTEND"
	exit 77
fi
# What differs on a CUSE node: the default pipe always exists (BASE_PIPES),
# and ringdevctl's own handle is an open of the device (SELF_OPENS), listed
# detached; on a FUSE mount it asks the mount root, which is no open.
if [ "$FRONTEND" = cuse ]; then
	BASE_PIPES=1
	SELF_OPENS=1
else
	BASE_PIPES=0
	SELF_OPENS=0
fi
# What the checks need is part of any Debian system: missing, it is a
# broken test machine, not a reason to pass without checking.
for tool in python3 setpriv script timeout; do
	if ! command -v "$tool" >/dev/null; then
		echo "test_ringdevctl: $tool is missing; it is needed to check the output" >&2
		exit 1
	fi
done
# The interpreter itself, not a wrapper that finds it (pyenv and the like
# cost a shell per call, which the VM of tests/vm feels).
PYTHON=$(python3 -c 'import sys; print(sys.executable)') || exit 1

TMP=$(mktemp -d /tmp/test_ringdevctl.XXXXXX) || exit 1
# The unprivileged user must reach the mounts and the binaries.
chmod 755 "$TMP"
mkdir "$TMP/bin"
cp "$RINGDEVCTL" "$TMP/bin/ringdevctl" && cp "$RINGCAT" "$TMP/bin/ringcat" || exit 1
chmod 755 "$TMP/bin" "$TMP/bin/ringdevctl" "$TMP/bin/ringcat"
NOBODY=65534
ADMIN_GID=4242 # --admin-group, given as a number: no /etc/group entry needed

DEV=
DAEMON_PID=
MOUNTS=()
CHILD_PIDS=()
PASSED=0
FAILED=0

is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

stop_daemon() {
	if [ -n "$DAEMON_PID" ]; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	DAEMON_PID=
}

# Always runs: stop what we started (by pid), unmount, remove the temp dir.
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	local pid m
	for pid in "${CHILD_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	stop_daemon
	for m in "${MOUNTS[@]}"; do
		if is_mounted "$m"; then
			umount -l "$m"
		fi
	done
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

# A background child, killed by pid at the end if still there.
track() {
	CHILD_PIDS+=("$1")
}

# start_daemon NAME [ringdevd options...]: a fresh daemon, on the mount
# $TMP/NAME or the CUSE node /dev/rdtest-PID-NAME; DEV is what -d takes.
start_daemon() {
	stop_daemon
	local name=$1
	shift
	if [ "$FRONTEND" = cuse ]; then
		DEV=/dev/rdtest-$$-$name
		"$RINGDEVD" --frontend=cuse --name "${DEV#/dev/}" -f "$@" 2>>"$TMP/daemon.log" &
	else
		DEV=$TMP/$name
		mkdir -p "$DEV"
		MOUNTS+=("$DEV")
		"$RINGDEVD" --frontend=fuse --mount "$DEV" -f "$@" 2>>"$TMP/daemon.log" &
	fi
	DAEMON_PID=$!
	for _ in $(seq 200); do
		if { [ "$FRONTEND" = cuse ] && [ -c "$DEV" ]; } || { [ "$FRONTEND" = fuse ] && is_mounted "$DEV"; }; then
			return 0
		fi
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "test_ringdevctl: ringdevd $* did not make $DEV within 20 s" >&2
	cat "$TMP/daemon.log" >&2
	exit 1
}

# pipe.py: how the python helpers reach a pipe on either frontend (the
# file DEV/NAME, or the node DEV moved with RINGDEV_IOC_ATTACH).
cat >"$TMP/pipe.py" <<'EOF'
import fcntl, os, struct
ATTACH = (1 << 30) | (120 << 16) | (0xE5 << 8) | 0x01  # _IOW(0xE5, 1, struct ringdev_attach)

def pipe_open(dev, name, flags):
    if os.path.isdir(dev):
        return os.open(os.path.join(dev, name), flags)
    fd = os.open(dev, flags)
    fcntl.ioctl(fd, ATTACH, struct.pack("<64s4IQ4Q", name.encode(), 0, 0, 0, 0, 0, 0, 0, 0, 0))
    return fd
EOF
export PYTHONPATH=$TMP

# ringdevctl and ringcat with a deadline, as root or as the ordinary user.
ctl() {
	timeout 20 "$RINGDEVCTL" -d "$DEV" "$@"
}
rc() {
	timeout 20 "$RINGCAT" -d "$DEV" "$@"
}
as_nobody() {
	setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$@"
}
as_admin() {
	setpriv --reuid="$NOBODY" --regid="$ADMIN_GID" --clear-groups "$@"
}
ctl_nobody() {
	as_nobody timeout 20 "$TMP/bin/ringdevctl" -d "$DEV" "$@"
}
ctl_admin() {
	as_admin timeout 20 "$TMP/bin/ringdevctl" -d "$DEV" "$@"
}

# jv FILE EXPR: EXPR evaluated with d = the JSON document in FILE, and
# pipe(NAME) its pipe of that name; strings print as they are, anything else
# as JSON (true, 3, null, [..]).
jv() {
	"$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
def pipe(name):
    return next(p for p in d["pipes"] if p["name"] == name)
v = eval(sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2" 2>&1
}

# check_json TEST FILE EXPR EXPECTED
check_json() {
	local got
	got=$(jv "$2" "$3")
	if [ "$got" = "$4" ]; then
		pass "$1: $3 is $4"
	else
		fail "$1: $3 is $4" "got: $got" "document: $(head -c 2000 "$2")"
	fi
}

# check_info TEST PIPE EXPR EXPECTED: check_json on `info PIPE --json`.
check_info() {
	ctl --json info "$2" >"$TMP/info_check.json" 2>&1
	check_json "$1" "$TMP/info_check.json" "$3" "$4"
}

# json_ok TEST FILE: the file is one valid JSON document.
json_ok() {
	if "$PYTHON" -m json.tool "$2" >/dev/null 2>"$TMP/json.err"; then
		pass "$1: valid JSON"
	else
		fail "$1: valid JSON" "$(cat "$TMP/json.err")" "$(head -c 2000 "$2")"
	fi
}

# run_json TEST FILE ringdevctl-args...: runs as root, must exit 0 and print
# valid JSON into FILE.
run_json() {
	local name=$1 file=$2 got
	shift 2
	ctl --json "$@" >"$file" 2>"$TMP/run.err"
	got=$?
	if [ "$got" = 0 ]; then
		json_ok "$name" "$file"
	else
		fail "$name: exit 0" "exit $got: $(cat "$TMP/run.err")"
	fi
}

# expect_error TEST EXPECTED_RC GREP_PATTERN command...: the command must
# exit with EXPECTED_RC and print exactly one line on stderr, starting with
# "ringdevctl: " and matching the pattern.
expect_error() {
	local name=$1 want=$2 pattern=$3 got lines
	shift 3
	"$@" </dev/null >"$TMP/err.out" 2>"$TMP/err.txt"
	got=$?
	lines=$(wc -l <"$TMP/err.txt")
	if [ "$got" = "$want" ] && [ "$lines" = 1 ] &&
	   grep -q '^ringdevctl: ' "$TMP/err.txt" && grep -q -- "$pattern" "$TMP/err.txt"; then
		pass "$name (exit $want: $(cat "$TMP/err.txt"))"
	else
		fail "$name" "exit $got (want $want), $lines stderr lines (want 1, matching '$pattern'):" \
			"$(cat "$TMP/err.txt")"
	fi
}

# expect_ok TEST command...: exit 0, nothing on stderr.
expect_ok() {
	local name=$1 got
	shift
	"$@" </dev/null >"$TMP/ok.out" 2>"$TMP/ok.err"
	got=$?
	if [ "$got" = 0 ] && [ ! -s "$TMP/ok.err" ]; then
		pass "$name"
	else
		fail "$name" "exit $got: $(cat "$TMP/ok.err")"
	fi
}

# wait_json FILE EXPR EXPECTED ringdevctl-args...: polls (root) until the
# expression has the value, up to 10 s. 0 when it did.
wait_json() {
	local file=$1 expr=$2 want=$3
	shift 3
	for _ in $(seq 100); do
		if ctl --json "$@" >"$file" 2>/dev/null && [ "$(jv "$file" "$expr")" = "$want" ]; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# A stat of the device, as root: stat_value FIELD
stat_value() {
	ctl --json stats >"$TMP/stat.json" 2>&1 && jv "$TMP/stat.json" "d['stats']['$1']"
}

# check_stat TEST FIELD EXPECTED
check_stat() {
	local got
	got=$(stat_value "$2")
	if [ "$got" = "$3" ]; then
		pass "$1: stats $2 is $3"
	else
		fail "$1: stats $2 is $3" "got: $got"
	fi
}

# ---------------------------------------------------------------------------

test_usage() {
	local got
	"$RINGDEVCTL" --help >"$TMP/help.out" 2>&1
	got=$?
	if [ "$got" = 0 ] && grep -q '^Usage: ringdevctl' "$TMP/help.out"; then
		pass "usage: --help exits 0"
	else
		fail "usage: --help exits 0" "exit $got"
	fi
	"$RINGDEVCTL" --version >"$TMP/version.out" 2>&1
	got=$?
	if [ "$got" = 0 ] && grep -q '^ringdevctl ' "$TMP/version.out"; then
		pass "usage: --version exits 0"
	else
		fail "usage: --version exits 0" "exit $got"
	fi
	expect_error "usage: no command" 2 'missing COMMAND' ctl
	expect_error "usage: unknown command" 2 "unknown command 'frob'" ctl frob
	expect_error "usage: info without NAME" 2 'missing argument' ctl info
	expect_error "usage: extra argument" 2 "unexpected argument 'x'" ctl list x
	expect_error "usage: resize without BYTES" 2 'missing argument' ctl resize A
	expect_error "usage: unknown option" 2 "unknown option '--frob'" ctl --frob list
	expect_error "usage: option without its argument" 2 'needs an argument' ctl top --interval
	expect_error "usage: create option on list" 2 '--kind is for create only' ctl list --kind stream
	expect_error "usage: top option on stats" 2 'for top only' ctl stats --count 2
	expect_error "usage: bad --interval" 2 '--interval' ctl top --interval 0
	expect_error "usage: bad --count" 2 '--count' ctl top --count -1
	expect_error "usage: bad --kind" 2 '--kind' ctl create X --kind datagram
	expect_error "usage: bad --capacity" 2 '--capacity' ctl create X --capacity 10
	expect_error "usage: bad --policy" 2 '--policy' ctl create X --policy drop
	expect_error "usage: bad --mode" 2 '--mode' ctl create X --mode 1777
	expect_error "usage: unknown --owner" 2 'no such user' ctl create X --owner no-such-user-here
	expect_error "usage: bad resize size" 2 "'lots' is not a size" ctl resize X lots
	expect_error "usage: bad chmod mode" 2 "'rwx' is not an octal mode" ctl chmod X rwx
	expect_error "usage: bad chown owner" 2 'chown' ctl chown X 'a:'
	expect_error "errors: invalid pipe name" 1 'invalid pipe name' ctl info .hidden
	expect_error "errors: name too long" 1 'longer than 63' ctl info "$(printf 'a%.0s' $(seq 64))"
	expect_error "errors: not a ringdev device" 1 'not a ringdev device' \
		timeout 20 "$RINGDEVCTL" -d "$TMP/bin" list
	expect_error "errors: no device" 1 'is ringdevd running' \
		timeout 20 "$RINGDEVCTL" -d "$TMP/nowhere" list
	RINGDEV_DEVICE=$DEV expect_ok "device: \$RINGDEV_DEVICE is used without -d" \
		timeout 20 "$RINGDEVCTL" stats
}

# The workload the JSON is checked against:
#   A  stream, 1000 bytes written by a ringcat that has exited
#   B  message, created by ringdevctl (4K, overwrite, 0644), 3 messages, 14 bytes
#   C  a reader parked on the empty pipe
#   D  a writer that wrote 5 bytes and keeps the pipe open
READER_C=
WRITER_D=
test_workload() {
	head -c 1000 /dev/urandom >"$TMP/a.in"
	rc -w --create A <"$TMP/a.in" || fail "workload: write A"
	expect_ok "create: B as a message pipe" \
		ctl create B --kind message --capacity 4K --policy overwrite --mode 0644
	printf 'one\ntwo\nthree\n' | rc -w B || fail "workload: write B"
	# Long-lived children run without timeout(1), so $! is their pid (the
	# one the daemon reports); cleanup kills them by that pid.
	"$RINGCAT" -d "$DEV" -r --create C >"$TMP/c.out" 2>"$TMP/c.err" &
	READER_C=$!
	track "$READER_C"
	mkfifo "$TMP/d.fifo"
	"$RINGCAT" -d "$DEV" -w --create D <"$TMP/d.fifo" 2>"$TMP/d.err" &
	WRITER_D=$!
	track "$WRITER_D"
	exec 7>"$TMP/d.fifo"
	printf hello >&7
	if ! wait_json "$TMP/wc.json" "d['pipe']['parked_reads']" 1 info C; then
		fail "workload: the reader of C parks" "$(cat "$TMP/wc.json")"
	fi
	if ! wait_json "$TMP/wd.json" "d['pipe']['queued_bytes']" 5 info D; then
		fail "workload: D holds 5 bytes" "$(cat "$TMP/wd.json")"
	fi
}

test_list() {
	local f=$TMP/list.json
	run_json "list --json" "$f" list
	local names='["A", "B", "C", "D"]'
	[ "$FRONTEND" = cuse ] && names='["A", "B", "C", "D", "default"]'
	check_json "list" "$f" "[p['name'] for p in d['pipes']]" "$names"
	check_json "list A" "$f" "pipe('A')['queued_bytes']" 1000
	check_json "list A" "$f" "pipe('A')['bytes_in']" 1000
	check_json "list A" "$f" "pipe('A')['writes'] >= 1" true
	check_json "list A" "$f" "pipe('A')['handles']" 0
	check_json "list A" "$f" "pipe('A')['kind']" stream
	check_json "list A" "$f" "pipe('A')['user']" root
	check_json "list B" "$f" "pipe('B')['kind']" message
	check_json "list B" "$f" "pipe('B')['policy']" overwrite
	check_json "list B" "$f" "pipe('B')['capacity']" 4096
	check_json "list B" "$f" "pipe('B')['mode']" 420
	check_json "list B" "$f" "pipe('B')['mode_octal']" 0644
	check_json "list B" "$f" "pipe('B')['persistent']" true
	check_json "list B" "$f" "pipe('B')['queued_messages']" 3
	check_json "list B" "$f" "pipe('B')['queued_bytes']" 14
	check_json "list C" "$f" "pipe('C')['readers']" 1
	check_json "list C" "$f" "pipe('C')['parked_reads']" 1
	check_json "list C" "$f" "pipe('C')['persistent']" false
	check_json "list D" "$f" "pipe('D')['writers']" 1
	check_json "list D" "$f" "pipe('D')['queued_bytes']" 5
	check_json "list types" "$f" \
		"all(isinstance(p[k], int) and not isinstance(p[k], bool) for p in d['pipes'] for k in ('capacity', 'queued_bytes', 'uid', 'mode', 'ino'))" true

	ctl list >"$TMP/list.txt" 2>&1
	if [ "$(head -1 "$TMP/list.txt" | awk '{ print $1 }')" = NAME ] &&
	   [ "$(wc -l <"$TMP/list.txt")" = $((5 + BASE_PIPES)) ] &&
	   awk '$1 == "A" && $6 == "1000" { a = 1 } $1 == "B" && $6 == "14" { b = 1 } END { exit !(a && b) }' "$TMP/list.txt"; then
		pass "list: a table with a header and one row per pipe"
	else
		fail "list: a table with a header and one row per pipe" "$(cat "$TMP/list.txt")"
	fi
	# Columns line up: every row has its QUEUED value end where the title does.
	if awk 'NR == 1 { end = index($0, "QUEUED") + 5; next }
		{ if (substr($0, end, 1) == " " || substr($0, end + 1, 1) != " ") bad = 1 }
		END { exit bad }' "$TMP/list.txt"; then
		pass "list: columns are aligned"
	else
		fail "list: columns are aligned" "$(cat "$TMP/list.txt")"
	fi
}

test_info() {
	local f=$TMP/info.json
	run_json "info C --json" "$f" info c
	check_json "info: a name in any case" "$f" "d['pipe']['name']" C
	check_json "info C" "$f" "d['pipe']['parked_reads']" 1
	check_json "info C" "$f" "d['pipe']['readers']" 1
	check_json "info C" "$f" "len(d['opens'])" 1
	check_json "info C" "$f" "d['opens'][0]['pid']" "$READER_C"
	check_json "info C" "$f" "d['opens'][0]['command']" ringcat
	check_json "info C" "$f" "d['opens'][0]['reader']" true
	check_json "info C" "$f" "d['opens'][0]['writer']" false
	check_json "info C" "$f" "d['opens'][0]['parked_reads']" 1
	check_json "info C" "$f" "d['opens_hidden']" 0

	run_json "info D --json" "$f" info D
	check_json "info D: who writes" "$f" "d['opens'][0]['pid']" "$WRITER_D"
	check_json "info D" "$f" "d['opens'][0]['writer']" true
	check_json "info D" "$f" "d['opens'][0]['bytes_in']" 5
	check_json "info D" "$f" "d['opens'][0]['user']" root

	ctl info C >"$TMP/info.txt" 2>&1
	if grep -q '^pipe C$' "$TMP/info.txt" &&
	   grep -q '^  parked    1 read waiting for data, 0 writes waiting for room$' "$TMP/info.txt" &&
	   grep -q '^  status    1 read waits for data' "$TMP/info.txt" &&
	   grep -qE "^ *[0-9]+ +root +$READER_C +ringcat +read +1 read " "$TMP/info.txt"; then
		pass "info: the human form shows the parked read and who waits"
	else
		fail "info: the human form shows the parked read and who waits" "$(cat "$TMP/info.txt")"
	fi
	ctl info A >"$TMP/infoa.txt" 2>&1
	if grep -q '^  queued    1000 bytes' "$TMP/infoa.txt" &&
	   grep -q 'unread data and no reader is attached' "$TMP/infoa.txt"; then
		pass "info: a pipe nobody reads says so"
	else
		fail "info: a pipe nobody reads says so" "$(cat "$TMP/infoa.txt")"
	fi
	expect_error "info: missing pipe" 1 'no such pipe' ctl info NOSUCH
}

test_opens() {
	local f=$TMP/opens.json
	run_json "opens --json" "$f" opens
	check_json "opens" "$f" "sorted((o['pipe'], o['reader'], o['writer']) for o in d['opens'] if o['pipe'])" \
		'[["C", true, false], ["D", false, true]]'
	check_json "opens" "$f" "sorted(o['pid'] for o in d['opens'] if o['pipe']) == sorted([$READER_C, $WRITER_D])" true
	check_json "opens: ringdevctl's own handle, if any, is detached" "$f" \
		"len([o for o in d['opens'] if o['detached'] and o['pipe'] is None])" "$SELF_OPENS"
	check_json "opens" "$f" "all(o['uid'] == 0 for o in d['opens'])" true
	ctl opens >"$TMP/opens.txt" 2>&1
	if [ "$(head -1 "$TMP/opens.txt" | awk '{ print $1, $2 }')" = "HANDLE PIPE" ] &&
	   [ "$(wc -l <"$TMP/opens.txt")" = $((3 + SELF_OPENS)) ]; then
		pass "opens: a table with one row per handle"
	else
		fail "opens: a table with one row per handle" "$(cat "$TMP/opens.txt")"
	fi
}

test_stats() {
	local f=$TMP/stats.json
	run_json "stats --json" "$f" stats
	check_json "stats" "$f" "d['frontend']" "$FRONTEND"
	check_json "stats" "$f" "d['abi_major']" 1
	check_json "stats" "$f" "d['stats']['pipes']" $((4 + BASE_PIPES))
	check_json "stats" "$f" "d['stats']['opens']" $((2 + SELF_OPENS))
	check_json "stats" "$f" "d['stats']['parked_reads']" 1
	check_json "stats" "$f" "d['stats']['parked_total']" 1
	check_json "stats" "$f" "d['stats']['bytes_in']" 1019
	check_json "stats" "$f" "d['stats']['pipes_created']" $((4 + BASE_PIPES))
	check_json "stats" "$f" "len(d['stats'])" 35
	check_json "stats" "$f" "d['stats']['relay_cancel_timeouts']" 0
	check_json "stats" "$f" "d['stats']['restarts']" 0
	check_json "stats" "$f" "d['stats']['last_restart_pause_us']" 0
	ctl stats >"$TMP/stats.txt" 2>&1
	if grep -q "^pipes       $((4 + BASE_PIPES)) of 1024" "$TMP/stats.txt" &&
	   grep -q '^parked      1 (reads 1, writes 0, other 0)' "$TMP/stats.txt" &&
	   grep -q '^restarts    none in place' "$TMP/stats.txt"; then
		pass "stats: the human form"
	else
		fail "stats: the human form" "$(cat "$TMP/stats.txt")"
	fi
}

# create, resize, chmod, chown, flush, each --json checked.
test_manage() {
	local f=$TMP/manage.json
	run_json "create E --json" "$f" create E --capacity 2K --mode 0640
	check_json "create E" "$f" "d['pipe']['capacity']" 2048
	check_json "create E" "$f" "d['pipe']['mode_octal']" 0640
	check_json "create E" "$f" "d['pipe']['uid']" 0
	check_json "create E" "$f" "d['pipe']['persistent']" true
	expect_error "create: an existing pipe" 1 'a pipe of that name exists' ctl create e
	run_json "create --owner --json" "$f" create OWNED --owner "$NOBODY"
	check_json "create --owner" "$f" "(d['pipe']['uid'], d['pipe']['gid'])" "[$NOBODY, $NOBODY]"
	expect_ok "create: --mode 0 is applied" ctl create ZERO --mode 0
	check_info "create --mode 0" ZERO "d['pipe']['mode']" 0

	head -c 1000 /dev/zero | rc -w E
	run_json "resize E --json" "$f" resize E 8K
	check_json "resize E" "$f" "d['pipe']['capacity']" 8192
	check_json "resize E: data kept" "$f" "d['pipe']['queued_bytes']" 1000
	expect_error "resize: below what the pipe holds" 1 'holds more than the new capacity' \
		ctl resize E 512
	run_json "chmod E --json" "$f" chmod E 0604
	check_json "chmod E" "$f" "d['pipe']['mode']" 388
	run_json "chown E --json" "$f" chown E "$NOBODY:$NOBODY"
	check_json "chown E" "$f" "(d['pipe']['uid'], d['pipe']['gid'])" "[$NOBODY, $NOBODY]"
	run_json "chown E :GROUP" "$f" chown E :0
	check_json "chown E :GROUP keeps the user" "$f" "(d['pipe']['uid'], d['pipe']['gid'])" "[$NOBODY, 0]"
	run_json "chown E USER" "$f" chown E root
	check_json "chown E USER keeps the group" "$f" "(d['pipe']['uid'], d['pipe']['gid'])" "[0, 0]"

	run_json "flush E --json" "$f" flush E
	check_json "flush E" "$f" "d['flushed_bytes']" 1000
	check_json "flush E" "$f" "d['flushed_messages']" 0
	check_info "flush E: empty after" E "d['pipe']['queued_bytes']" 0
	run_json "flush B --json" "$f" flush B
	check_json "flush B (message pipe)" "$f" "(d['flushed_bytes'], d['flushed_messages'])" "[14, 3]"
	ctl flush A >"$TMP/flush.txt" 2>&1
	if grep -q '^A: flushed 1000 (1000 bytes, 0 messages)$' "$TMP/flush.txt"; then
		pass "flush: the human form says what was discarded"
	else
		fail "flush: the human form says what was discarded" "$(cat "$TMP/flush.txt")"
	fi
	check_stat "flush" flushed_bytes 2014
	# A, unused and now empty, is not persistent: it goes away.
	ctl --json list >"$f"
	check_json "flush: an unused temporary pipe goes once empty" "$f" \
		"'A' in [p['name'] for p in d['pipes']]" false

	expect_ok "rm: a pipe" ctl rm ZERO
	expect_error "rm: a missing pipe" 1 'no such pipe' ctl rm ZERO
	run_json "rm --json" "$f" rm OWNED
	check_json "rm --json" "$f" "d" '{"name": "OWNED", "removed": true}'
}

# An ordinary user (65534) next to root's pipes and handles.
test_privileges() {
	local f=$TMP/priv.json
	expect_ok "privileges: root creates PUB 0666" ctl create PUB --mode 0666
	expect_ok "privileges: root creates PRIV 0600" ctl create PRIV --mode 0600
	"$RINGCAT" -d "$DEV" -r PUB >/dev/null 2>&1 &
	track $!
	wait_json "$f" "d['pipe']['parked_reads']" 1 info PUB || fail "privileges: a reader parks on PUB"

	ctl_nobody --json list >"$f" 2>"$TMP/priv.err"
	json_ok "privileges: list as a user" "$f"
	check_json "privileges: a user sees pipes it could open, not PRIV" "$f" \
		"('PUB' in [p['name'] for p in d['pipes']], 'PRIV' in [p['name'] for p in d['pipes']])" \
		'[true, false]'
	ctl_nobody --json opens >"$f" 2>"$TMP/priv.err"
	check_json "privileges: a user does not see root's handles" "$f" \
		"[o for o in d['opens'] if o['uid'] != $NOBODY]" '[]'
	ctl_nobody --json info PUB >"$f" 2>"$TMP/priv.err"
	check_json "privileges: info hides root's handles" "$f" "len(d['opens'])" 0
	check_json "privileges: info counts what it hides" "$f" "d['opens_hidden']" 1
	check_json "privileges: info still shows the counts" "$f" "d['pipe']['parked_reads']" 1
	ctl_nobody info PUB >"$TMP/priv.txt" 2>&1
	if grep -q "^opens: 0 shown of 1" "$TMP/priv.txt"; then
		pass "privileges: human info says handles are hidden"
	else
		fail "privileges: human info says handles are hidden" "$(cat "$TMP/priv.txt")"
	fi

	expect_error "privileges: info of a pipe a user may not open" 1 'Permission denied' \
		ctl_nobody info PRIV
	expect_error "privileges: rm of root's pipe" 1 'Operation not permitted' ctl_nobody rm PUB
	expect_error "privileges: chmod of root's pipe" 1 'Operation not permitted' \
		ctl_nobody chmod PUB 0777
	expect_error "privileges: chown of root's pipe" 1 'Operation not permitted' \
		ctl_nobody chown PUB "$NOBODY"
	expect_error "privileges: flush of root's pipe" 1 'Operation not permitted' ctl_nobody flush PUB
	expect_error "privileges: resize of root's pipe" 1 'Operation not permitted' \
		ctl_nobody resize PUB 128K
	expect_error "privileges: create --owner by a user" 1 'may create a pipe for another owner' \
		ctl_nobody create FORROOT --owner root
	check_info "privileges: PUB is untouched" PUB \
		"(d['pipe']['mode'], d['pipe']['uid'])" '[438, 0]'

	# A user's own pipe: managed by the user, but the owner stays root's call.
	expect_ok "privileges: a user creates its pipe" ctl_nobody create MINE
	check_info "privileges: the user owns it" MINE "d['pipe']['uid']" "$NOBODY"
	expect_ok "privileges: the user chmods its pipe" ctl_nobody chmod MINE 0640
	expect_ok "privileges: the user resizes its pipe" ctl_nobody resize MINE 4K
	expect_ok "privileges: the user flushes its pipe" ctl_nobody flush MINE
	expect_error "privileges: the user may not give its pipe away" 1 'Operation not permitted' \
		ctl_nobody chown MINE root
	as_nobody "$TMP/bin/ringcat" -d "$DEV" -r MINE >/dev/null 2>&1 &
	track $!
	wait_json "$f" "d['pipe']['parked_reads']" 1 info MINE || fail "privileges: the user's reader parks"
	ctl_nobody --json opens >"$f"
	check_json "privileges: a user sees its own handle" "$f" \
		"[(o['pipe'], o['uid']) for o in d['opens'] if o['pipe']]" "[[\"MINE\", $NOBODY]]"
	ctl --json opens >"$f"
	check_json "privileges: root sees every handle" "$f" \
		"sorted(set(o['uid'] for o in d['opens']))" "[0, $NOBODY]"

	# A member of --admin-group (by primary gid) sees and manages everything.
	ctl_admin --json opens >"$f"
	check_json "privileges: the admin group sees every handle" "$f" \
		"sorted(set(o['uid'] for o in d['opens']))" "[0, $NOBODY]"
	ctl_admin --json list >"$f"
	check_json "privileges: the admin group sees every pipe" "$f" \
		"'PRIV' in [p['name'] for p in d['pipes']]" true
	expect_ok "privileges: the admin group chowns" ctl_admin chown PRIV "$NOBODY"
	expect_ok "privileges: the admin group creates for another owner" ctl_admin create BYADMIN --owner 0:0
	check_info "privileges: owned as asked" BYADMIN "(d['pipe']['uid'], d['pipe']['gid'])" '[0, 0]'
	expect_ok "privileges: the admin group removes it" ctl_admin rm BYADMIN
	expect_ok "privileges: the admin group removes root's pipe" ctl_admin rm PRIV
	expect_ok "privileges: the user removes its pipe" ctl_nobody rm MINE
}

# A python reader or writer on pipe NAME: does the op, which must park,
# then after the pipe is removed, one more; prints the two errno names.
parked_op() {
	"$PYTHON" - "$DEV" "$1" "$2" <<'EOF'
import errno, os, sys
from pipe import pipe_open
dev, name, op = sys.argv[1:4]
fd = pipe_open(dev, name, os.O_RDONLY if op == "read" else os.O_WRONLY)
def attempt():
    try:
        if op == "read":
            os.read(fd, 100)
        else:
            os.write(fd, b"x" * 64)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
if op == "write":
    os.write(fd, b"x" * 64)  # fills the 64-byte pipe; the next write parks
first = attempt()
print(first, attempt(), flush=True)
EOF
}

test_rm_parked() {
	local f=$TMP/rm.json reader writer removed
	ctl create R >/dev/null
	parked_op R read >"$TMP/rm_r.out" 2>&1 &
	reader=$!
	track "$reader"
	ctl create W --capacity 64 >/dev/null
	parked_op W write >"$TMP/rm_w.out" 2>&1 &
	writer=$!
	track "$writer"
	wait_json "$f" "d['pipe']['parked_reads']" 1 info R || fail "rm: the reader parks" "$(cat "$f")"
	wait_json "$f" "d['pipe']['parked_writes']" 1 info W || fail "rm: the writer parks" "$(cat "$f")"
	ctl info W >"$TMP/rm.txt"
	if grep -q '^  status    stuck: 1 write waits for room and no reader is attached' "$TMP/rm.txt"; then
		pass "info: a stuck writer is called stuck"
	else
		fail "info: a stuck writer is called stuck" "$(cat "$TMP/rm.txt")"
	fi
	removed=$(stat_value pipes_removed)
	expect_ok "rm: a pipe with a parked reader" ctl rm R
	expect_ok "rm: a pipe with a parked writer" ctl rm W
	for pid in "$reader" "$writer"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	if [ "$(cat "$TMP/rm_r.out")" = "EIDRM ENXIO" ]; then
		pass "rm: the parked read fails with EIDRM, the next with ENXIO"
	else
		fail "rm: the parked read fails with EIDRM, the next with ENXIO" "got: $(cat "$TMP/rm_r.out")"
	fi
	if [ "$(cat "$TMP/rm_w.out")" = "EIDRM ENXIO" ]; then
		pass "rm: the parked write fails with EIDRM, the next with ENXIO"
	else
		fail "rm: the parked write fails with EIDRM, the next with ENXIO" "got: $(cat "$TMP/rm_w.out")"
	fi
	expect_error "rm: the pipe is gone" 1 'no such pipe' ctl info R
	check_stat "rm" pipes_removed $((removed + 2))
	check_stat "rm: nothing left parked on removed pipes" parked_writes 0

	# ringcat's view of the same: one line, exit 1.
	ctl create R2 >/dev/null
	rc -r R2 >/dev/null 2>"$TMP/rm_rc.err" &
	reader=$!
	track "$reader"
	wait_json "$f" "d['pipe']['parked_reads']" 1 info R2 || fail "rm: ringcat parks"
	ctl rm R2
	wait "$reader"
	local status=$?
	if [ "$status" = 1 ] && grep -q 'Identifier removed' "$TMP/rm_rc.err"; then
		pass "rm: ringcat -r ends with exit 1 ($(cat "$TMP/rm_rc.err"))"
	else
		fail "rm: ringcat -r ends with exit 1" "exit $status: $(cat "$TMP/rm_rc.err")"
	fi
}

# Names from the system are escaped: a process name with a quote, a
# backslash, a newline, a control byte and an invalid UTF-8 byte.
test_json_escape() {
	local f=$TMP/esc.json pid
	ctl create ESC --mode 0666 >/dev/null
	"$PYTHON" - "$DEV" <<'EOF' &
import ctypes, os, sys
from pipe import pipe_open
ctypes.CDLL(None).prctl(15, b'q"\\\n\x01\xff z', 0, 0, 0)  # PR_SET_NAME
fd = pipe_open(sys.argv[1], "ESC", os.O_RDONLY)
try:
    os.read(fd, 1)
except OSError:
    pass  # EIDRM when the pipe is removed below
EOF
	pid=$!
	track "$pid"
	wait_json "$f" "d['pipe']['parked_reads']" 1 info ESC || fail "escape: the reader parks"
	ctl --json opens >"$f"
	json_ok "escape: opens with a strange process name" "$f"
	check_json "escape: the name comes back, the invalid byte as U+FFFD" "$f" \
		"[o['command'] for o in d['opens'] if o['pipe'] == 'ESC'] == ['q\"\\\\\\n\\x01\\ufffd z']" true
	ctl rm ESC
}

test_top() {
	local got
	timeout 20 "$RINGDEVCTL" -d "$DEV" top --count 2 --interval 0.2 >"$TMP/top.txt" 2>&1
	got=$?
	if [ "$got" = 0 ] && [ "$(grep -c ' device ' "$TMP/top.txt")" = 2 ] &&
	   grep -q ' pipe C in=.* readers=1 .*parked_reads=1 ' "$TMP/top.txt"; then
		pass "top: plain lines when stdout is not a terminal"
	else
		fail "top: plain lines when stdout is not a terminal" "exit $got" "$(cat "$TMP/top.txt")"
	fi
	timeout 20 "$RINGDEVCTL" -d "$DEV" --json top --count 2 --interval 0.2 >"$TMP/top.json" 2>&1
	got=$?
	if [ "$got" = 0 ] && [ "$(wc -l <"$TMP/top.json")" = 2 ] && "$PYTHON" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["interval"] is None and lines[0]["rate_in"] is None
assert lines[1]["interval"] > 0 and isinstance(lines[1]["rate_in"], int)
assert all("rate_out" in p and "name" in p for p in lines[1]["pipes"])
assert lines[1]["stats"]["parked_reads"] >= 1
' "$TMP/top.json"; then
		pass "top --json: one object per refresh"
	else
		fail "top --json: one object per refresh" "exit $got" "$(head -c 1500 "$TMP/top.json")"
	fi

	# Busiest first: a pipe that moves data while top watches.
	timeout 5 "$RINGCAT" -d "$DEV" -w --create BUSY </dev/zero >/dev/null 2>&1 &
	track $!
	timeout 10 "$RINGCAT" -d "$DEV" -r --create BUSY >/dev/null 2>&1 &
	track $!
	timeout 20 "$RINGDEVCTL" -d "$DEV" top --count 3 --interval 0.3 >"$TMP/busy.txt" 2>&1
	if awk '/ device / { n++; first = "" } / pipe / && first == "" { first = $3 } END { exit !(n == 3 && first == "BUSY") }' \
		"$TMP/busy.txt"; then
		pass "top: the busiest pipe comes first"
	else
		fail "top: the busiest pipe comes first" "$(tail -8 "$TMP/busy.txt")"
	fi

	# On a terminal: full screen, and the terminal as it was afterwards.
	local cmd="stty -g >$TMP/tty.before; timeout --foreground 20 $RINGDEVCTL -d $DEV top --count 3 --interval 0.2; echo \$? >$TMP/tty.rc; stty -g >$TMP/tty.after"
	timeout 30 script -qec "$cmd" /dev/null </dev/null >"$TMP/tty.out" 2>&1
	if [ "$(cat "$TMP/tty.rc" 2>/dev/null)" = 0 ] && grep -q 'IN/s' "$TMP/tty.out" &&
	   grep -q $'\e\\[?1049h' "$TMP/tty.out" && grep -q $'\e\\[?1049l' "$TMP/tty.out" &&
	   cmp -s "$TMP/tty.before" "$TMP/tty.after"; then
		pass "top: three refreshes on a pseudo-terminal, terminal restored"
	else
		fail "top: three refreshes on a pseudo-terminal, terminal restored" \
			"exit $(cat "$TMP/tty.rc" 2>/dev/null)" "$(head -c 600 "$TMP/tty.out" | od -c | head -8)"
	fi

	# 'q' quits.
	rm -f "$TMP/tty.rc" "$TMP/tty.after"
	cmd="stty -g >$TMP/tty.before; timeout --foreground 20 $RINGDEVCTL -d $DEV top --interval 0.2; echo \$? >$TMP/tty.rc; stty -g >$TMP/tty.after"
	{ sleep 1.5; printf q; sleep 1; } | timeout 30 script -qec "$cmd" /dev/null >"$TMP/tty.out" 2>&1
	if [ "$(cat "$TMP/tty.rc" 2>/dev/null)" = 0 ] && cmp -s "$TMP/tty.before" "$TMP/tty.after"; then
		pass "top: 'q' quits, terminal restored"
	else
		fail "top: 'q' quits, terminal restored" "exit $(cat "$TMP/tty.rc" 2>/dev/null)"
	fi

	# SIGINT and SIGTERM: timeout --foreground keeps top in the terminal's
	# foreground process group and sends the signal after 1.5 s.
	local sig
	for sig in INT TERM; do
		rm -f "$TMP/tty.rc" "$TMP/tty.after"
		cmd="stty -g >$TMP/tty.before; timeout --foreground --preserve-status -s $sig 1.5 $RINGDEVCTL -d $DEV top --interval 0.2; echo \$? >$TMP/tty.rc; stty -g >$TMP/tty.after"
		timeout 30 script -qec "$cmd" /dev/null </dev/null >"$TMP/tty.out" 2>&1
		if [ "$(cat "$TMP/tty.rc" 2>/dev/null)" = 0 ] && cmp -s "$TMP/tty.before" "$TMP/tty.after" &&
		   grep -q $'\e\\[?1049l' "$TMP/tty.out"; then
			pass "top: SIG$sig ends it with exit 0, terminal restored"
		else
			fail "top: SIG$sig ends it with exit 0, terminal restored" \
				"exit $(cat "$TMP/tty.rc" 2>/dev/null)"
		fi
	done

	# An error inside the view is printed after the screen is left.
	expect_error "top: usage error" 2 'unexpected argument' ctl top now
}

# Each limit on its own daemon: hit, reported with its errno, counted.
test_limits() {
	local f=$TMP/limit.json status

	# On CUSE the default pipe is one of the two.
	start_daemon limit-pipes --max-pipes 2
	ctl create P1 >/dev/null
	[ "$BASE_PIPES" = 0 ] && ctl create P2 >/dev/null
	expect_error "limits: --max-pipes" 1 'No space left on device; a limit is reached' ctl create P3
	check_stat "limits: --max-pipes" limit_pipes_hits 1
	check_stat "limits: --max-pipes" pipes_limit 2
	ctl stats >"$TMP/limit.txt"
	if grep -q '^limit hits  pipes 1, ' "$TMP/limit.txt" && grep -q '^pipes       2 of 2 ' "$TMP/limit.txt"; then
		pass "limits: stats shows the --max-pipes hit"
	else
		fail "limits: stats shows the --max-pipes hit" "$(cat "$TMP/limit.txt")"
	fi

	start_daemon limit-uid-pipes --max-pipes-per-uid 1
	expect_ok "limits: a user's first pipe" ctl_nobody create U1
	expect_error "limits: --max-pipes-per-uid" 1 'No space left on device' ctl_nobody create U2
	check_stat "limits: --max-pipes-per-uid" limit_uid_pipes_hits 1

	start_daemon limit-uid-opens --max-opens-per-uid 2
	ctl create O --mode 0666 >/dev/null
	for _ in 1 2; do
		as_nobody timeout 20 "$TMP/bin/ringcat" -d "$DEV" -r O >/dev/null 2>&1 &
		track $!
	done
	wait_json "$f" "d['pipe']['parked_reads']" 2 info O || fail "limits: two readers park" "$(cat "$f")"
	as_nobody timeout 20 "$TMP/bin/ringcat" -d "$DEV" -r O >/dev/null 2>"$TMP/limit.err"
	status=$?
	if [ "$status" = 1 ] && grep -q 'Too many open files' "$TMP/limit.err"; then
		pass "limits: --max-opens-per-uid gives EMFILE ($(cat "$TMP/limit.err"))"
	else
		fail "limits: --max-opens-per-uid gives EMFILE" "exit $status: $(cat "$TMP/limit.err")"
	fi
	check_stat "limits: --max-opens-per-uid" limit_uid_opens_hits 1
	expect_ok "limits: root is not held by the user's limit" ctl info O

	start_daemon limit-parked --max-parked 2
	for name in K1 K2; do
		rc -r --create "$name" >/dev/null 2>&1 &
		track $!
	done
	wait_json "$f" "d['stats']['parked_total']" 2 stats || fail "limits: two reads park"
	rc -r --create K3 >/dev/null 2>"$TMP/limit.err"
	status=$?
	if [ "$status" = 1 ] && grep -q 'No buffer space available' "$TMP/limit.err"; then
		pass "limits: --max-parked gives a blocking read ENOBUFS ($(cat "$TMP/limit.err"))"
	else
		fail "limits: --max-parked gives a blocking read ENOBUFS" "exit $status: $(cat "$TMP/limit.err")"
	fi
	check_stat "limits: --max-parked" limit_parked_hits 1
	check_stat "limits: --max-parked" parked_total 2

	start_daemon limit-memory --max-memory 64K
	printf x | rc -w --create M1
	check_stat "limits: the first write allocates the ring" memory_used 65536
	expect_error "limits: --max-memory on resize" 1 'max-memory' ctl resize M1 128K
	check_stat "limits: --max-memory" limit_memory_hits 1
}

# Lists longer than one ioctl's page (60 pipes, 120 opens) come whole.
test_paging() {
	local f=$TMP/paging.json i holder
	start_daemon paging
	for i in $(seq 150); do
		if ! ctl create "PG$i" >/dev/null; then
			fail "paging: create PG$i"
			return
		fi
	done
	run_json "paging: list" "$f" list
	check_json "paging: list has each of 150 pipes once" "$f" \
		"(len(d['pipes']), len(set(p['name'] for p in d['pipes'])))" \
		"[$((150 + BASE_PIPES)), $((150 + BASE_PIPES))]"
	"$PYTHON" - "$DEV" 130 <<'EOF' &
import os, sys, time
from pipe import pipe_open
fds = [pipe_open(sys.argv[1], "PG1", os.O_RDONLY | os.O_NONBLOCK) for _ in range(int(sys.argv[2]))]
time.sleep(60)
EOF
	holder=$!
	track "$holder"
	if wait_json "$f" "len([o for o in d['opens'] if o['pipe'] == 'PG1'])" 130 opens; then
		pass "paging: opens has all 130 handles"
	else
		fail "paging: opens has all 130 handles" "got: $(jv "$f" "len(d['opens'])") handles"
	fi
	check_json "paging: each handle once" "$f" "len(set(o['handle'] for o in d['opens']))" \
		$((130 + SELF_OPENS))
	check_info "paging: info lists the pipe's handles" PG1 "len(d['opens'])" 130
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
}

# Output that cannot be written, and a daemon that goes away under top.
test_failures() {
	local status top
	ctl list >/dev/full 2>"$TMP/full.err"
	status=$?
	if [ "$status" = 1 ] && [ "$(wc -l <"$TMP/full.err")" = 1 ] &&
	   grep -q '^ringdevctl: stdout: No space left on device$' "$TMP/full.err"; then
		pass "errors: a full stdout is reported once, exit 1"
	else
		fail "errors: a full stdout is reported once, exit 1" "exit $status: $(cat "$TMP/full.err")"
	fi

	"$RINGDEVCTL" -d "$DEV" top --interval 0.2 >"$TMP/gone.out" 2>"$TMP/gone.err" &
	top=$!
	track "$top"
	sleep 0.6
	stop_daemon
	for _ in $(seq 50); do
		kill -0 "$top" 2>/dev/null || break
		sleep 0.1
	done
	wait "$top"
	status=$?
	if [ "$status" = 1 ] && [ "$(wc -l <"$TMP/gone.err")" = 1 ] &&
	   grep -q '^ringdevctl: .*ringdevd is \(gone\|shutting down\)' "$TMP/gone.err"; then
		pass "top: ends with exit 1 and one line when ringdevd goes ($(cat "$TMP/gone.err"))"
	else
		fail "top: ends with exit 1 and one line when ringdevd goes" "exit $status" "$(cat "$TMP/gone.err")"
	fi
}

start_daemon main --admin-group "$ADMIN_GID"
test_usage
test_workload
test_list
test_info
test_opens
test_stats
test_manage
test_privileges
test_rm_parked
test_json_escape
test_top
exec 7>&-
test_paging
test_limits
test_failures

echo "ringdevctl: $PASSED passed, $FAILED failed"
if [ "$FAILED" != 0 ]; then
	echo "--- ringdevd log (last 30 lines):"
	tail -30 "$TMP/daemon.log"
	exit 1
fi
exit 0
