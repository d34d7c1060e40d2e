#!/usr/bin/env bash
# demo.sh - build ringdev and run it: ringdevd on the frontend the kernel
# allows (CUSE when /dev/cuse opens, else a FUSE mount), then two processes
# talking through the named pipe HELLO, then a clean shutdown.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
if [[ -d build-demo ]]; then
	meson setup --reconfigure build-demo -Dtests=false >/dev/null
else
	meson setup build-demo -Dtests=false >/dev/null
fi
ninja -C build-demo >/dev/null

ringdevd=build-demo/cuse_dev/ringdevd
ringcat=build-demo/tools/ringcat
if [[ -e /dev/cuse ]] && ! [[ -e /dev/ringdev ]]; then
	device=/dev/ringdev
	"$ringdevd" --frontend=cuse --name ringdev -f &
else
	device=$(mktemp -d /run/ringdev-demo.XXXXXX 2>/dev/null || mktemp -d)/mnt
	"$ringdevd" --frontend=fuse --mount "$device" -f &
fi
daemon=$!
cleanup() {
	kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	[[ -d $device ]] && rmdir "$device" "$(dirname "$device")" 2>/dev/null
	true
}
trap cleanup EXIT
for _ in $(seq 50); do
	{ [[ -c $device ]] || mountpoint -q "$device" 2>/dev/null; } && break
	sleep 0.1
done
echo "== ringdevd is serving $device (pid $daemon)"

echo "== a reader process waits on pipe HELLO; a writer process sends three lines"
"$ringcat" -d "$device" -r --create hello > /tmp/ringdev-demo.out &
reader=$!
sleep 0.3
printf 'hello from pid %s\nthe ring buffer holds what is not read yet\nbye\n' $$ |
	"$ringcat" -d "$device" -w --create HELLO
wait $reader
echo "== the reader (pid $reader) got:"
sed 's/^/   /' /tmp/ringdev-demo.out
rm -f /tmp/ringdev-demo.out

echo "== a message pipe keeps each write whole"
"$ringcat" -d "$device" -w --create --kind message events <<< $'started\nstopped'
"$ringcat" -d "$device" -r events | sed 's/^/   /'

kill -TERM "$daemon"
wait "$daemon" && echo "== ringdevd stopped cleanly (exit 0)"
