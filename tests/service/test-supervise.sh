#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-supervise.sh - ringdev-supervise speaks systemd's notify and fd store
# protocol as libsystemd's client side expects, driven through fdstore-probe
# (a service that keeps a counter in a stored memfd):
# - a start, READY=1 and STATUS=, SIGHUP passed on (RELOADING=1), SIGUSR1
#   restarts with the store (counter 2, fds found by name, newest first),
#   SIGUSR2 is a crash that --restart-on-exit restarts (counter 3), a second
#   store of one open file is not stored twice, a stored fd that hangs up
#   goes (FDPOLL=0 keeps one), FDSTOREREMOVE drops a name for the next
#   start, SIGTERM stops it: status 0, no process left, no socket left;
# - a message from a pid other than the main pid is ignored, fds and all;
#   a message with more fds than --fdstore-max keeps the max and says so;
# - MAINPID= moves the main pid: the old one is no longer heard, the new
#   one (not a child of ours at first) is stopped by SIGTERM;
# - exits: a failure without --restart-on-exit ends it with 1 (and what the
#   process stored just before it died was taken first), a clean exit
#   with 0 (no restart), a command that always fails is given up on after
#   10 restarts; a main process that ignores SIGTERM is killed after
#   --stop-timeout, and what it left behind with it;
# - usage errors exit 2, --help 0, a command that cannot run fails.
# Every process is killed by its pid at exit, pass or fail.
set -euo pipefail

fail() { echo "test-supervise: FAIL: $*" >&2; [[ -f ${events:-} ]] && sed 's/^/  events: /' "$events" >&2; exit 1; }
[[ -x ${SUPERVISE:-} && -x ${PROBE:-} ]] || { echo "test-supervise: SUPERVISE and PROBE must be set (run through meson test)" >&2; exit 1; }

tmp=$(mktemp -d)
export TMPDIR=$tmp/sockets # the supervisor's private folder goes here: checked empty at the end
mkdir "$TMPDIR"
fifo=$tmp/cmd
mkfifo "$fifo"
# Held open read-write, so a command written while no probe runs waits in
# the FIFO instead of blocking the test.
exec 7<>"$fifo"
sup=
events=

# Kill by pid what a run started, if it is still one of ours (the command
# line names the supervisor, the probe or the sleep of the stop test).
# First the supervisor's own stop (it kills and reaps the service), then
# SIGKILL to it, so it restarts nothing, and to every pid it reported.
ours() { grep -qaE 'ringdev-supervise|fdstore-probe|sleep' "/proc/$1/cmdline" 2>/dev/null; }
kill_run() {
	local i
	if [[ -n $sup ]] && kill -TERM "$sup" 2>/dev/null; then
		for ((i = 0; i < 60; i++)); do kill -0 "$sup" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$sup" 2>/dev/null
	fi
	if [[ -n $events && -f $events ]]; then
		for p in $(grep -oE '(pid|new)=[0-9]+' "$events" | cut -d= -f2 | sort -u); do
			ours "$p" && kill -KILL "$p" 2>/dev/null
		done
	fi
	[[ -f $tmp/sleep.pid ]] && { p=$(cat "$tmp/sleep.pid"); ours "$p" && kill -KILL "$p" 2>/dev/null; }
	true
}
cleanup() { kill_run; exec 7>&-; rm -rf "$tmp"; }
trap cleanup EXIT

# start NAME OPTION... [-- COMMAND...]: the supervisor in the background;
# COMMAND defaults to the probe on the FIFO.
start() {
	local name=$1
	shift
	events=$tmp/$name.events
	local opts=() cmd=("$PROBE" "$fifo")
	while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
	[[ $# -gt 0 ]] && { shift; cmd=("$@"); }
	: >"$events"
	mark=0
	"$SUPERVISE" "${opts[@]}" --events "$events" -- "${cmd[@]}" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	sup=$!
}

# wait_for REGEX: the first event line after the mark that matches, within
# 10 s; prints it and moves the mark past it.
mark=0
wait_for() {
	local i line n
	for ((i = 0; i < 200; i++)); do
		line=$(tail -n +$((mark + 1)) "$events" | grep -nE -m1 -- "$1" || true)
		if [[ -n $line ]]; then
			n=${line%%:*}
			mark=$((mark + n))
			echo "${line#*:}"
			return 0
		fi
		sleep 0.05
	done
	fail "no event matching '$1' after line $mark"
}
# has REGEX: some event line (anywhere) matches.
has() { grep -qE -- "$1" "$events"; }
field() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<" $2"; }
cmd() { echo "$*" >&7; }

# wait_exit: the supervisor's status in rc, within 10 s.
wait_exit() {
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$sup" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$sup" 2>/dev/null && fail "the supervisor did not exit"
	rc=0
	wait "$sup" || rc=$?
	sup=
}
gone() { ! kill -0 "$1" 2>/dev/null || ! ours "$1"; }
all_gone() {
	local p
	for p in $(grep -oE '(pid|new)=[0-9]+' "$events" | cut -d= -f2 | sort -u); do
		gone "$p" || fail "pid $p still runs after the supervisor exited"
	done
	[[ -z $(ls -A "$TMPDIR") ]] || fail "the supervisor left $(ls -A "$TMPDIR") in TMPDIR"
}

# --- 1. start, reload, restart, crash, duplicate, hang-up, remove, stop ---
start main --restart-on-exit
wait_for "^supervisor pid=$sup\$" >/dev/null
p1=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
wait_for "^fdstore pid=$p1 name=state count=1\$" >/dev/null
wait_for "^fdstore pid=$p1 name=pipe count=2\$" >/dev/null
wait_for "^ready pid=$p1\$" >/dev/null
wait_for "^status pid=$p1 counter=1 fds=0 names=\$" >/dev/null

kill -HUP "$sup"
wait_for "^reloading pid=$p1\$" >/dev/null
wait_for "^status pid=$p1 reloaded\$" >/dev/null

kill -USR1 "$sup"
wait_for "^exit pid=$p1 status=0\$" >/dev/null
p2=$(field pid "$(wait_for '^start pid=[0-9]+ fds=2$')")
# newest first, as systemd passes them: the probe finds them by name
wait_for "^status pid=$p2 counter=2 fds=2 names=pipe,state\$" >/dev/null
gone "$p1" || fail "the first probe $p1 survived the restart"

kill -USR2 "$sup"
wait_for "^exit pid=$p2 status=signal=SIGKILL\$" >/dev/null
p3=$(field pid "$(wait_for '^start pid=[0-9]+ fds=2$')")
wait_for "^status pid=$p3 counter=3 fds=2 " >/dev/null

cmd dup
wait_for "^fdstore-duplicate pid=$p3 name=state count=1\$" >/dev/null
wait_for "^fdstore pid=$p3 name=state count=2\$" >/dev/null
wait_for "^status pid=$p3 done dup\$" >/dev/null

cmd hup
wait_for "^fdstore pid=$p3 name=hup count=3\$" >/dev/null
wait_for "^fdstore-hup name=hup count=2\$" >/dev/null

cmd remove pipe
wait_for "^fdstore-remove name=pipe\$" >/dev/null
wait_for "^status pid=$p3 done remove\$" >/dev/null

kill -USR1 "$sup"
wait_for "^exit pid=$p3 status=0\$" >/dev/null
p4=$(field pid "$(wait_for '^start pid=[0-9]+ fds=1$')")
wait_for "^status pid=$p4 counter=4 fds=1 names=state\$" >/dev/null

kill -TERM "$sup"
wait_for "^stopping pid=$p4\$" >/dev/null
wait_for "^exit pid=$p4 status=0\$" >/dev/null
wait_exit
[[ $rc == 0 ]] || fail "stop: status $rc, not 0"
all_gone
[[ $(grep -c '^start ' "$events") == 4 ]] || fail "not 4 starts"
echo "ok 1 start, reload, restart, crash, duplicate, hang-up, remove, stop"

# --- 2. another pid is not heard; more fds than the max ---
start limits --fdstore-max 3
p=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
wait_for "^status pid=$p counter=1 " >/dev/null
cmd other
wait_for "^ignored pid=[0-9]+ reason=not-main-pid\$" >/dev/null
wait_for "^status pid=$p done other\$" >/dev/null
has "^ignored pid=$p " && fail "the main pid was ignored"
has 'from-other|name=other' && fail "a message from another pid was taken"
cmd flood 4
wait_for "^fdstore-full pid=$p name=flood dropped=3 max=3\$" >/dev/null
wait_for "^fdstore pid=$p name=flood count=3\$" >/dev/null
cmd flood 2
wait_for "^fdstore-full pid=$p name=flood dropped=2 max=3\$" >/dev/null
wait_for "^fdstore pid=$p name=flood count=3\$" >/dev/null
kill -USR1 "$sup"
p2=$(field pid "$(wait_for '^start pid=[0-9]+ fds=3$')")
wait_for "^status pid=$p2 counter=2 fds=3 names=flood,pipe,state\$" >/dev/null
kill -INT "$sup"
wait_exit
[[ $rc == 0 ]] || fail "SIGINT: status $rc, not 0"
all_gone
echo "ok 2 another pid is not heard, more fds than the max"

# --- 3. MAINPID= ---
start mainpid
p=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
wait_for "^ready pid=$p\$" >/dev/null
cmd mainpid
m=$(field new "$(wait_for "^mainpid pid=$p new=[0-9]+\$")")
wait_for "^ignored pid=$p reason=not-main-pid\$" >/dev/null
for ((i = 0; i < 100; i++)); do gone "$p" && break; sleep 0.05; done
gone "$p" || fail "the old main pid $p did not exit"
kill -0 "$m" 2>/dev/null || fail "the new main pid $m is not there"
has "^exit pid=$p " && fail "the old main pid's exit was taken for the service's"
kill -TERM "$sup"
wait_for "^exit pid=$m status=0\$" >/dev/null
wait_exit
[[ $rc == 0 ]] || fail "stop after MAINPID=: status $rc, not 0"
all_gone
echo "ok 3 MAINPID= moves the main pid"

# --- 4. exits ---
start fail
p=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
wait_for "^ready pid=$p\$" >/dev/null
cmd last 3 # stores an fd and exits at once: the store comes first
wait_for "^fdstore pid=$p name=last count=3\$" >/dev/null
wait_for "^exit pid=$p status=3\$" >/dev/null
wait_exit
[[ $rc == 1 ]] || fail "a failed exit without --restart-on-exit: status $rc, not 1"
all_gone

start clean --restart-on-exit
p=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
wait_for "^ready pid=$p\$" >/dev/null
cmd exit 0
wait_for "^exit pid=$p status=0\$" >/dev/null
wait_exit
[[ $rc == 0 ]] || fail "a clean exit: status $rc, not 0"
[[ $(grep -c '^start ' "$events") == 1 ]] || fail "a clean exit was restarted"
all_gone

start giveup --restart-on-exit -- false
wait_exit
[[ $rc == 1 ]] || fail "a command that always fails: status $rc, not 1"
[[ $(grep -c '^start ' "$events") == 11 ]] || fail "not 1 start and 10 restarts"
grep -q 'giving up' "$tmp/giveup.err" || fail "no line about giving up"

start stubborn --stop-timeout 1 -- sh -c "trap '' TERM; sleep 100 & echo \$! >'$tmp/sleep.pid'; wait"
p=$(field pid "$(wait_for '^start pid=[0-9]+ fds=0$')")
for ((i = 0; i < 100; i++)); do [[ -s $tmp/sleep.pid ]] && break; sleep 0.05; done
s=$(cat "$tmp/sleep.pid")
kill -TERM "$sup"
wait_for "^stop-timeout pid=$p\$" >/dev/null
wait_for "^exit pid=$p status=signal=SIGKILL\$" >/dev/null
wait_exit
[[ $rc == 0 ]] || fail "stop of a process that ignores SIGTERM: status $rc, not 0"
gone "$s" || fail "what the service left ($s) survived the stop"
all_gone
echo "ok 4 exits, restart limit, stop timeout"

# --- 5. usage ---
rc=0; "$SUPERVISE" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "no command: status $rc, not 2"
rc=0; "$SUPERVISE" --fdstore-max x -- true >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "--fdstore-max x: status $rc, not 2"
rc=0; "$SUPERVISE" --bogus -- true >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "--bogus: status $rc, not 2"
"$SUPERVISE" --help | grep -q '^Usage: ringdev-supervise' || fail "--help"
start nocmd -- "$tmp/no-such-command"
wait_exit
[[ $rc == 1 ]] || fail "a command that cannot run: status $rc, not 1"
wait_for '^exit pid=[0-9]+ status=127$' >/dev/null
grep -q "no-such-command: No such file or directory" "$tmp/nocmd.err" || fail "no line naming the command"
echo "ok 5 usage"
