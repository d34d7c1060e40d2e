#!/usr/bin/env bash
# run-in-vm.sh: run one command inside a throwaway QEMU VM that has CUSE.
#
# Why: the kernel of the machines ringdev is built on has FUSE but no CUSE
# (see /work/shared/facts.md), so everything that needs /dev/cuse runs in a
# VM booted with Debian's stock kernel, which has CONFIG_CUSE=m.
#
# Design choices:
# - No disk image and no network. The guest boots /boot/vmlinuz-<ver> from
#   the linux-image-amd64 package with a tiny initramfs built here, at run
#   time, in a mktemp directory: static busybox, the virtio/9p modules (found
#   with `modprobe -S <ver> --show-depends`, loaded in that order) and
#   tests/vm/guest-init.sh as /init. The guest mounts the host's / read-only
#   over virtio-9p and chroots into it, so COMMAND, its libraries and the
#   host's modprobe are simply there. Fresh tmpfs mounts cover /tmp, /run,
#   /var/tmp and /dev/shm: the host's /tmp is NOT visible in the guest, so
#   COMMAND must live elsewhere (e.g. under /work/main/build*/).
# - Software emulation only (-accel tcg, multithreaded). KVM starts but hangs
#   on the project machines, and -cpu host/max abort there.
# - Debian's bzImage is xz-compressed, and decompressing itself under TCG
#   takes about 3 s. When xz is available the kernel is decompressed on the
#   host instead (about 1 s) and booted through its PVH ELF entry point;
#   otherwise the bzImage is booted as is.
# - COMMAND, its arguments, the working directory and the --env variables are
#   passed in a generated shell script inside the initramfs, each word in
#   single quotes, so any argument (spaces, quotes, newlines) survives. The
#   kernel command line carries nothing of the caller's.
# - Output comes back over the serial console: QEMU's stdout, through a FIFO,
#   into tests/vm/console-filter.awk, which streams it line by line. The
#   guest ends with a marker line "RINGDEV-VM-EXIT-<nonce>=<code>"; the nonce
#   is random per run, so COMMAND's output cannot fake it. The marker is
#   stripped, "\r" before line ends removed, and this script exits with
#   COMMAND's status. Kernel messages are muted (quiet loglevel=0). The
#   emulated UART carries roughly 300 KB/s: fine for test logs, slow for
#   bulk data.
# - Failure of the harness itself (missing packages, boot failure, no marker,
#   QEMU dying, timeout) is one line on stderr, "run-in-vm: <what>: <reason>",
#   and exit status 1: never a silent pass. QEMU is killed by pid and the
#   temporary directory removed on every exit path (EXIT trap).
# - Missing packages are installed with apt-get (root only), after
#   apt-get update, only when something is missing.

set -euo pipefail

script_start_us=${EPOCHREALTIME/./}
readonly PROG=run-in-vm
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly GUEST_INIT=$HERE/guest-init.sh
readonly CONSOLE_FILTER=$HERE/console-filter.awk

# The caller's PATH is what COMMAND gets in the guest (same root file system).
readonly CALLER_PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
# modprobe lives in /sbin, which a non-login root shell may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

usage() {
	cat <<EOF
Usage: ${0##*/} [OPTIONS] [--] COMMAND [ARGS...]

Run COMMAND with ARGS inside a throwaway QEMU VM (TCG) booted with Debian's
stock kernel, which has CUSE: /dev/cuse and /dev/fuse exist in the guest.
The guest sees the host's / read-only, with empty tmpfs on /tmp, /run,
/var/tmp and /dev/shm (the host's /tmp is hidden: keep COMMAND outside it).
COMMAND runs as root in the caller's current directory, stdin /dev/null; its
stdout and stderr come back on this script's stdout. The exit status is
COMMAND's, or 1 if the VM itself failed (one "run-in-vm: ..." line on stderr).
Installs linux-image-amd64, qemu-system-x86, busybox-static and kmod with
apt-get if any is missing (needs root).

Options:
  --timeout SECONDS  kill the VM and fail if COMMAND has not ended this long
                     after the VM was started (default 1800)
  --mem MiB          guest memory (default 2048)
  --smp N            guest CPUs, emulated by TCG threads (default 2)
  --env NAME=VALUE   set NAME in COMMAND's environment (repeatable); COMMAND
                     otherwise gets only PATH (the caller's) and HOME=/root
  --share DIR        also show the host's DIR read-only at the same path in the
                     guest, over the tmpfs mounts (repeatable): for a checkout
                     or build under /tmp
  --debug            show the guest kernel's messages and trace its init
  -h, --help         print this help and exit
EOF
}

# The one-line failure report of the harness.
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage_error() {
	printf '%s: usage: %s (try --help)\n' "$PROG" "$*" >&2
	exit 2
}

# ---------------------------------------------------------------- arguments

timeout=1800
mem=2048
smp=2
debug=0
envs=()
shares=()

# Options come first; the first word that is not an option starts COMMAND.
while (($#)); do
	opt=$1
	# Accept both "--opt value" and "--opt=value".
	case $opt in
	--timeout=* | --mem=* | --smp=* | --env=* | --share=*)
		set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
		opt=$1
		;;
	esac
	case $opt in
	-h | --help)
		usage
		exit 0
		;;
	--timeout | --mem | --smp | --env | --share)
		(($# >= 2)) || usage_error "$opt needs a value"
		case $opt in
		--timeout) timeout=$2 ;;
		--mem) mem=$2 ;;
		--smp) smp=$2 ;;
		--env) envs+=("$2") ;;
		--share)
			[[ -d $2 ]] || usage_error "--share: '$2' is not a directory"
			shares+=("$(cd -- "$2" && pwd -P)")
			;;
		esac
		shift 2
		;;
	--debug)
		debug=1
		shift
		;;
	--)
		shift
		break
		;;
	-*) usage_error "unknown option '$opt'" ;;
	*) break ;;
	esac
done

(($#)) || usage_error "no COMMAND given"
[[ $timeout =~ ^[1-9][0-9]{0,6}$ ]] || usage_error "--timeout wants a positive number of seconds, not '$timeout'"
if ! [[ $mem =~ ^[1-9][0-9]{0,6}$ ]] || ((mem < 128)); then
	usage_error "--mem wants a size in MiB of at least 128, not '$mem'"
fi
[[ $smp =~ ^[1-9][0-9]{0,2}$ ]] || usage_error "--smp wants a positive number of CPUs, not '$smp'"
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env wants NAME=VALUE, not '$e'"
done
[[ -r $GUEST_INIT ]] || die "setup: $GUEST_INIT is missing"
[[ -r $CONSOLE_FILTER ]] || die "setup: $CONSOLE_FILTER is missing"

# ---------------------------------------------------------------- cleanup

tmp=
qemu_pid=
filter_pid=

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
	local _
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill -TERM "$qemu_pid" 2>/dev/null || true
		for _ in {1..50}; do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [[ -n $filter_pid ]]; then
		kill -TERM "$filter_pid" 2>/dev/null || true
		wait "$filter_pid" 2>/dev/null || true
	fi
	[[ -z $tmp ]] || rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-in-vm.XXXXXXXX")

# ------------------------------------------------------------ prerequisites

# Print the newest kernel version that has both /boot/vmlinuz-<ver> and a
# cuse module under /lib/modules/<ver>; fail if there is none.
find_kernel() {
	local f ver found=()
	for f in /boot/vmlinuz-*; do
		[[ -e $f ]] || continue
		ver=${f#/boot/vmlinuz-}
		compgen -G "/lib/modules/$ver/kernel/fs/fuse/cuse.ko*" >/dev/null || continue
		found+=("$ver")
	done
	((${#found[@]})) || return 1
	printf '%s\n' "${found[@]}" | sort -V | tail -n 1
}

have_static_busybox() {
	[[ -x /bin/busybox ]] &&
		[[ $(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null) == installed ]]
}

missing_packages() {
	missing=()
	find_kernel >/dev/null || missing+=(linux-image-amd64)
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	have_static_busybox || missing+=(busybox-static)
	command -v modprobe >/dev/null || missing+=(kmod)
	((${#missing[@]}))
}

# apt-get, waiting for a concurrent apt or dpkg run to let go of its locks:
# DPkg::Lock::Timeout covers dpkg's lock, and a failure that names a lock
# (apt-get update's lists lock has no timeout) is retried every 10 s, up to
# 60 times.
# Its output goes to stderr: stdout belongs to COMMAND.
apt_get() {
	local try log=$tmp/apt.log
	for try in {1..60}; do
		if DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 "$@" \
			>"$log" 2>&1; then
			cat "$log" >&2
			return 0
		fi
		cat "$log" >&2
		grep -qiE 'could not get lock|unable to (lock|acquire)' "$log" || return 1
		((try < 60)) || return 1
		printf '%s: apt is busy, retrying in 10 s\n' "$PROG" >&2
		sleep 10
	done
}

if missing_packages; then
	((EUID == 0)) || die "setup: missing ${missing[*]} and not root: install them with apt-get"
	printf '%s: installing %s\n' "$PROG" "${missing[*]}" >&2
	apt_get update || die "setup: apt-get update failed"
	apt_get install -y --no-install-recommends "${missing[@]}" ||
		die "setup: apt-get install ${missing[*]} failed"
	! missing_packages || die "setup: still missing after apt-get install: ${missing[*]}"
fi

kver=$(find_kernel)
kernel=/boot/vmlinuz-$kver
[[ -r $kernel ]] || die "setup: cannot read $kernel (it is mode 0600 on Debian: run as root)"

# ------------------------------------------------------------------ kernel

# Read an unsigned little-endian integer of $3 bytes at offset $2 of file $1.
read_le() {
	local v
	v=$(od -An -tu"$3" -j "$2" -N "$3" -- "$1") || return 1
	v=${v//[[:space:]]/}
	[[ -n $v ]] || return 1
	printf '%s\n' "$v"
}

# Debian's bzImage is xz-compressed and decompresses itself in the guest,
# which costs about 3 s under TCG. Decompressing it on the host (about 1 s)
# and letting QEMU load the resulting ELF through its PVH entry point is
# faster. Writes the ELF to $2; fails (and the caller keeps the bzImage)
# whenever anything about that is not as expected.
extract_vmlinux() {
	local img=$1 out=$2 setup_sects version offset length magic
	command -v xz >/dev/null || return 1
	grep -qx 'CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null || return 1
	# x86 boot protocol header: "HdrS" at 0x202, version at 0x206; the
	# payload_offset/payload_length fields exist from version 2.08 on.
	[[ $(dd if="$img" bs=1 skip=$((0x202)) count=4 status=none) == HdrS ]] || return 1
	version=$(read_le "$img" $((0x206)) 2) && ((version >= 0x208)) || return 1
	setup_sects=$(read_le "$img" $((0x1f1)) 1) || return 1
	((setup_sects > 0)) || setup_sects=4
	offset=$(read_le "$img" $((0x248)) 4) || return 1
	length=$(read_le "$img" $((0x24c)) 4) || return 1
	offset=$(((setup_sects + 1) * 512 + offset))
	# Only xz (Debian's choice) is handled. The payload ends with the
	# 4-byte uncompressed size, which is not part of the xz stream.
	magic=$(od -An -tx1 -j "$offset" -N 6 -- "$img" | tr -d ' \n')
	[[ $magic == fd377a585a00 ]] || return 1
	dd if="$img" bs=64K iflag=skip_bytes,count_bytes skip="$offset" count=$((length - 4)) \
		status=none | xz -dc >"$out" 2>/dev/null || return 1
	[[ $(od -An -tx1 -N 4 -- "$out" | tr -d ' \n') == 7f454c46 ]] # ELF magic
}

boot_kind=bzImage
if extract_vmlinux "$kernel" "$tmp/vmlinux"; then
	kernel=$tmp/vmlinux
	boot_kind=PVH
else
	rm -f -- "$tmp/vmlinux"
fi

# ---------------------------------------------------------------- initramfs

initramfs=$tmp/initramfs
mkdir -p "$initramfs"/{bin,dev,proc,sys,newroot,ringdev/modules}
cp /bin/busybox "$initramfs/bin/busybox"
cp "$GUEST_INIT" "$initramfs/init"
chmod 755 "$initramfs/init"

# Modules that give the guest virtio-pci, the 9p transport and the 9p file
# system, deduplicated, in the order modprobe would insert them. Numbered
# file names keep that order for the guest's glob.
deps=$(modprobe -a -S "$kver" --show-depends virtio_pci 9pnet_virtio 9p 2>&1) ||
	die "setup: modprobe --show-depends for kernel $kver failed: ${deps##*$'\n'}"
n=0
while read -r kind path _; do
	[[ $kind == insmod ]] || continue # "builtin ..." needs nothing
	n=$((n + 1))
	name=${path##*/}
	dest=$(printf '%s/ringdev/modules/%02d-%s.ko' "$initramfs" "$n" "${name%%.ko*}")
	# busybox insmod wants plain .ko files; newer kernels compress them.
	case $path in
	*.ko) cp "$path" "$dest" ;;
	*.ko.xz) xz -dc "$path" >"$dest" ;;
	*.ko.zst) zstd -qdc "$path" >"$dest" ;;
	*.ko.gz) gzip -dc "$path" >"$dest" ;;
	*) die "setup: unknown module format: $path" ;;
	esac
done < <(awk '!seen[$2]++' <<<"$deps")
((n > 0)) || die "setup: no virtio/9p modules found for kernel $kver"

# Quote one word for a POSIX shell: wrap in '...', each ' becomes '\''.
shq() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$nonce" >"$initramfs/ringdev/nonce"
printf '%s\n' "$debug" >"$initramfs/ringdev/debug"

# The job: run by the guest's init with the host's /bin/sh, chrooted into the
# host's root, with an empty environment. A failed cd is a harness failure,
# reported through the setup-error file rather than as COMMAND's status.
cwd=$PWD
cd_hint=
[[ $cwd != /tmp && $cwd != /tmp/* ]] || cd_hint=" (the guest's /tmp is an empty tmpfs)"
{
	printf '# Generated by run-in-vm.sh.\n'
	printf 'cd -- %s 2>/dev/null || {\n' "$(shq "$cwd")"
	printf '\techo %s >/run/ringdev-vm/setup-error\n' "$(shq "cannot cd to $cwd$cd_hint")"
	printf '\texit 1\n}\n'
	printf 'export PATH=%s\n' "$(shq "$CALLER_PATH")"
	printf 'export HOME=/root\n'
	printf 'unset OLDPWD\n'
	for e in "${envs[@]}"; do
		printf 'export %s=%s\n' "${e%%=*}" "$(shq "${e#*=}")"
	done
	printf 'exec'
	for a in "$@"; do
		printf ' %s' "$(shq "$a")"
	done
	printf '\n'
} >"$initramfs/ringdev/job.sh"

# The --share list for guest-init.sh: "tag path" lines, mounted after the
# guest's tmpfs mounts so that they show through them.
: >"$initramfs/ringdev/shares"
for i in "${!shares[@]}"; do
	printf 'share%s %s\n' "$i" "${shares[$i]}" >>"$initramfs/ringdev/shares"
done

# An uncompressed newc cpio is all the kernel needs; busybox makes it.
(cd "$initramfs" && find . | /bin/busybox cpio -o -H newc -R 0:0 >"$tmp/initramfs.cpio" 2>/dev/null) ||
	die "setup: cannot build the initramfs"

# ---------------------------------------------------------------- the VM

if ((debug)); then
	cmdline="console=ttyS0 loglevel=7 panic=-1"
else
	cmdline="console=ttyS0 quiet loglevel=0 panic=-1"
fi

# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
qemu=(
	qemu-system-x86_64
	-accel tcg,thread=multi
	-m "$mem" -smp "$smp"
	-nodefaults -no-user-config -display none
	-serial stdio
	-no-reboot # a guest panic (panic=-1) makes QEMU exit
	-kernel "$kernel" -initrd "$tmp/initramfs.cpio" -append "$cmdline"
	-fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=r,mount_tag=root
)

# Extra read-only exports (--share), mounted by the guest at their host paths.
for i in "${!shares[@]}"; do
	qemu+=(-fsdev "local,id=s$i,path=${shares[$i]},security_model=none,readonly=on,multidevs=remap"
		-device "virtio-9p-pci,fsdev=s$i,mount_tag=share$i")
done

# The console filter: mawk must be told to read line by line (-W
# interactive), other awks stream by themselves.
awk_cmd=(awk)
if awk -W version 2>/dev/null | grep -q mawk; then
	awk_cmd+=(-W interactive)
fi

start_us=${EPOCHREALTIME/./}
deadline_us=$((start_us + timeout * 1000000))

# QEMU writes the console into a FIFO read by the filter, which prints
# COMMAND's output on our stdout and leaves the markers' news in $tmp. QEMU's
# stdin is /dev/null, so it never touches a terminal.
mkfifo "$tmp/console"
"${awk_cmd[@]}" -v nonce="$nonce" -v dir="$tmp" -v debug="$debug" \
	-f "$CONSOLE_FILTER" <"$tmp/console" &
filter_pid=$!
"${qemu[@]}" </dev/null >"$tmp/console" 2>"$tmp/qemu.log" &
qemu_pid=$!

# Wait for QEMU to end (the guest powers off after its marker), or for time
# to run out. After the marker, give QEMU 10 s to go before stopping it.
timed_out=0
grace_end_us=
while kill -0 "$qemu_pid" 2>/dev/null; do
	now_us=${EPOCHREALTIME/./}
	if [[ -z $grace_end_us && (-e $tmp/status || -e $tmp/guest-error) ]]; then
		grace_end_us=$((now_us + 10000000))
	fi
	if [[ -n $grace_end_us ]]; then
		((now_us < grace_end_us)) || break
	elif ((now_us >= deadline_us)); then
		timed_out=1
		break
	fi
	sleep 0.1
done
kill -TERM "$qemu_pid" 2>/dev/null || true
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=
# With QEMU gone the FIFO is at EOF: the filter prints its last lines and ends.
wait "$filter_pid" || die "console: the output filter failed"
filter_pid=
end_us=${EPOCHREALTIME/./}

started=0
[[ ! -e $tmp/started ]] || started=1
status=
[[ ! -e $tmp/status ]] || status=$(<"$tmp/status")
guest_error=
[[ ! -e $tmp/guest-error ]] || guest_error=$(<"$tmp/guest-error")

if [[ -n $guest_error ]]; then
	die "guest: $guest_error"
elif [[ -z $status ]] && ((timed_out)); then
	if ((started)); then
		die "timeout: COMMAND still running after ${timeout} s; VM killed"
	else
		die "timeout: VM did not finish booting within ${timeout} s; VM killed"
	fi
elif [[ -z $status ]]; then
	qemu_msg=$(grep -v '^[[:space:]]*$' "$tmp/qemu.log" | tail -n 1 || true)
	if ((qemu_status != 0)); then
		die "qemu: exited with status $qemu_status before the guest reported${qemu_msg:+: $qemu_msg}"
	elif ((started)); then
		die "guest: stopped without reporting COMMAND's exit status (kernel panic? rerun with --debug)"
	else
		die "boot: the VM stopped before running COMMAND (kernel panic? rerun with --debug)"
	fi
elif ! [[ $status =~ ^[0-9]+$ ]]; then
	die "guest: garbled exit status '$status'"
fi

# Report the timing, then hand on COMMAND's status.
ms() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }
printf '%s: VM run took %s s (setup %s s; kernel %s, %s boot; exit status %d)\n' "$PROG" \
	"$(ms $(((end_us - start_us) / 1000)))" "$(ms $(((start_us - script_start_us) / 1000)))" \
	"$kver" "$boot_kind" "$status" >&2
exit "$status"
