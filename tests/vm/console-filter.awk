# console-filter.awk: turns the guest's serial console into COMMAND's output.
#
# Used by run-in-vm.sh, which feeds it QEMU's serial output (stdin) and sets:
#   nonce   the random marker suffix of this run
#   dir     a directory where the results are left for the script:
#             dir/started      exists once the guest is about to run COMMAND
#             dir/status       COMMAND's exit status (from the EXIT marker)
#             dir/guest-error  the reason the guest's init gave up
#   debug   1: pass everything through (kernel messages, init trace)
#
# Before the START marker the console carries only boot noise, dropped
# unless debugging; after it, every line is COMMAND's, until the EXIT
# marker. A "\r" at the end of a line (from the tty's ONLCR) is removed.
# Output is flushed line by line so that a long COMMAND can be followed live.

BEGIN {
	exit_marker = "RINGDEV-VM-EXIT-" nonce "="
	error_marker = "RINGDEV-VM-ERROR-" nonce "="
	start_marker = "RINGDEV-VM-START-" nonce
	started = 0
	finished = 0
}

# Keep reading after the end (QEMU must never block on a full pipe), but
# print nothing more.
finished { next }

{
	sub(/\r$/, "")
}

index($0, exit_marker) {
	i = index($0, exit_marker)
	# COMMAND's output need not end with a newline: what precedes the
	# marker on its line is COMMAND's last, unterminated line.
	printf "%s", substr($0, 1, i - 1)
	fflush()
	print substr($0, i + length(exit_marker)) > (dir "/status")
	close(dir "/status")
	finished = 1
	next
}

index($0, error_marker) {
	i = index($0, error_marker)
	print substr($0, i + length(error_marker)) > (dir "/guest-error")
	close(dir "/guest-error")
	finished = 1
	next
}

index($0, start_marker) {
	started = 1
	printf "" > (dir "/started")
	close(dir "/started")
	next
}

started || debug {
	print
	fflush()
}
