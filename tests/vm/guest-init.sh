#!/bin/busybox sh
# guest-init.sh: /init of the throwaway initramfs that run-in-vm.sh builds.
#
# Runs as PID 1 under the static busybox shell inside the QEMU guest. It
#   1. loads the virtio/9p modules shipped in /ringdev/modules (file names are
#      numbered in dependency order by the host script),
#   2. mounts the host's / read-only over virtio-9p (mount tag "root") on
#      /newroot, with fresh proc, sysfs, devtmpfs, devpts and tmpfs mounts on
#      top of it (/tmp, /run, /var/tmp, /dev/shm are writable and empty),
#   3. loads cuse (and fuse) with the host's own modprobe inside that tree and
#      waits for /dev/cuse,
#   4. runs /ringdev/job.sh (written by the host: cd, environment, exec
#      COMMAND) chrooted into /newroot with stdin from /dev/null,
#   5. prints "RINGDEV-VM-EXIT-<nonce>=<status>" and powers the VM off.
#
# Any failure of steps 1-4 prints "RINGDEV-VM-ERROR-<nonce>=<reason>" instead,
# which the host turns into its one-line error. Every marker carries a random
# nonce chosen by the host so that COMMAND's own output can never fake one.
#
# Nothing here may exit: if PID 1 ends, the kernel panics (the host still
# notices, because the marker is missing, but the reason is lost).

PATH=/bin
export PATH

# devtmpfs first: the initramfs has no /dev/console node, so the kernel
# started us without stdin/stdout/stderr. Reattach them to the console.
/bin/busybox mkdir -p /dev
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin

nonce=$(cat /ringdev/nonce)
debug=$(cat /ringdev/debug)
[ "$debug" = 1 ] && set -x

# Wait until everything written to the console has left the serial port
# (busybox stty applies settings with TCSADRAIN); -onlcr also stops the tty
# from turning "\n" into "\r\n".
drain() {
	stty -onlcr 2>/dev/null
}

halt_vm() {
	drain
	poweroff -f
	# poweroff -f does not return; if it somehow did, do not let PID 1 exit.
	while :; do sleep 60; done
}

# Print a marker line for the host. Built by printf so that even the --debug
# trace of this line does not contain the marker itself.
marker() {
	printf 'RINGDEV-VM-%s-%s%s\n' "$1" "$nonce" "$2"
}

fail() {
	drain
	marker ERROR "=$*"
	halt_vm
}

drain
mkdir -p /proc /sys /newroot
mount -t proc proc /proc || fail "cannot mount /proc in the initramfs"

# 1. Modules needed to reach the host's file system, in dependency order.
for mod in /ringdev/modules/*.ko; do
	[ -e "$mod" ] || continue
	insmod "$mod" || fail "insmod ${mod##*/} failed"
done

# 2. The host root. The virtio device may be probed a moment after
#    virtio_pci is loaded, so retry for a few seconds.
tries=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose \
	root /newroot 2>/dev/null; do
	tries=$((tries + 1))
	[ "$tries" -lt 100 ] || fail "cannot mount the host root over virtio-9p (mount tag 'root')"
	usleep 50000
done

mount -t proc proc /newroot/proc || fail "cannot mount proc"
mount -t sysfs sysfs /newroot/sys || fail "cannot mount sysfs"
mount -t devtmpfs devtmpfs /newroot/dev || fail "cannot mount devtmpfs"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts ||
	fail "cannot mount devpts"
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm || fail "cannot mount /dev/shm"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o mode=755 tmpfs /newroot/run || fail "cannot mount /run"
if [ -d /newroot/var/tmp ]; then
	mount -t tmpfs -o mode=1777 tmpfs /newroot/var/tmp || fail "cannot mount /var/tmp"
fi

# Directories the host shared with --share, at their own paths.
while read -r tag path; do
	[ -n "$tag" ] || continue
	mkdir -p "/newroot$path" || fail "cannot create $path for --share"
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose \
		"$tag" "/newroot$path" || fail "cannot mount the shared $path"
done </ringdev/shares

mkdir -p /newroot/run/ringdev-vm
cp /ringdev/job.sh /newroot/run/ringdev-vm/job.sh || fail "cannot copy the job script"

# Commands run in the host's tree get a clean, predictable environment.
in_root() {
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		chroot /newroot "$@"
}

# 3. CUSE. modprobe comes from the host (kmod) and reads the host's
#    /lib/modules/<version>, which matches the kernel we booted.
in_root modprobe cuse || fail "modprobe cuse failed"
in_root modprobe fuse || fail "modprobe fuse failed"
tries=0
until [ -c /newroot/dev/cuse ]; do
	tries=$((tries + 1))
	[ "$tries" -lt 100 ] || fail "/dev/cuse did not appear after modprobe cuse"
	usleep 50000
done

# 4. The job. Its stdout and stderr are the serial console.
drain
marker START ""
in_root /bin/sh /run/ringdev-vm/job.sh </dev/null
status=$?

if [ -e /newroot/run/ringdev-vm/setup-error ]; then
	fail "$(cat /newroot/run/ringdev-vm/setup-error)"
fi

# 5. Report and power off. drain() makes sure COMMAND's last bytes are out
#    before the marker, and the marker is out before the power goes.
drain
marker EXIT "=$status"
halt_vm
