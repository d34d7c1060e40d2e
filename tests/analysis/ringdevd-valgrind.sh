#!/bin/sh
# ringdevd-valgrind.sh - run ringdevd under valgrind's memcheck, as a drop-in
# for $RINGDEVD: the integration harness execs this with ringdevd's arguments
# and sees valgrind's exit code, which is ringdevd's unless memcheck found an
# error (then 99, and the test that expects exit 0 fails).
#
#   RINGDEVD_REAL          the ringdevd binary to run (required)
#   RINGDEV_VALGRIND_LOGS  a directory: each process's report goes to
#                          ringdevd.PID.log there (scripts/analyze.sh then
#                          fails on any non-empty one, so an error in a
#                          daemon that a test killed or expected to fail is
#                          not lost); unset: reports go to stderr, i.e.
#                          the daemon's log in the test's temp dir.
#
# Counted as errors: every memcheck error (invalid read/write, use of
# uninitialised values, bad free, overlapping copies, syscall params) and
# definite leaks; possible and reachable leaks are neither errors nor shown
# (libfuse keeps its session objects until exit). -q prints nothing else.
# --vgdb=no: no gdbserver FIFOs in /tmp (a daemon that dropped root with
# --user could not remove them at exit, and said so in its log).
# No ptrace is involved: valgrind runs the daemon on its own CPU, so FUSE,
# signals (SIGTERM, SIGSTOP/SIGCONT) and fuse_daemonize's fork work as usual;
# a forked child stays under valgrind and gets its own log (%p).
# --trace-children=yes: a restart in place (SIGHUP) executes ringdevd again
# in the same process, and the new image must be checked too; fusermount3
# (set-user-ID, which valgrind cannot run) is left to run natively.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${RINGDEVD_REAL:?RINGDEVD_REAL must name the ringdevd binary to run}"
log=
if [ -n "${RINGDEV_VALGRIND_LOGS:-}" ]; then
	log="--log-file=$RINGDEV_VALGRIND_LOGS/ringdevd.%p.log"
fi
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--track-fds=no --num-callers=30 --vgdb=no -q \
	--trace-children=yes --trace-children-skip='*fusermount*' \
	--suppressions="$here/valgrind.supp" $log \
	"$RINGDEVD_REAL" "$@"
