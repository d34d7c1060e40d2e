#!/usr/bin/env bash
# demo.sh - build ringdev and run it: ringdevd on the frontend the kernel
# allows (CUSE when /dev/cuse opens, else a FUSE mount) with ringdev-broker
# deciding opens by a small policy, then two processes talking through the
# named pipe HELLO, a message pipe, a brokered rendezvous pipe, and a
# restart in place that a waiting reader does not notice, then a clean
# shutdown.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
if [[ -d build-demo ]]; then
	meson setup --reconfigure build-demo -Dtests=disabled >/dev/null
else
	meson setup build-demo -Dtests=disabled >/dev/null
fi
ninja -C build-demo >/dev/null

ringdevd=build-demo/cuse_dev/ringdevd
ringcat=build-demo/tools/ringcat
ringdevctl=build-demo/tools/ringdevctl
broker=build-demo/broker/ringdev-broker
policy=$(mktemp /tmp/ringdev-demo-policy.XXXXXX)
cat >"$policy" <<'POLICY'
# Everyone may use every pipe; rv.* pipes are brokered: a write completes
# only when a reader takes its bytes (rendezvous through the broker).
allow all *
pipe rv.* brokered mode=0666
POLICY
if [[ -e /dev/cuse ]] && ! [[ -e /dev/ringdev ]]; then
	device=/dev/ringdev
	"$ringdevd" --frontend=cuse --name ringdev -f &
else
	device=$(mktemp -d /run/ringdev-demo.XXXXXX 2>/dev/null || mktemp -d)/mnt
	"$ringdevd" --frontend=fuse --mount "$device" -f &
fi
daemon=$!
brokerpid=
cleanup() {
	[[ -n $brokerpid ]] && kill -TERM "$brokerpid" 2>/dev/null && wait "$brokerpid" 2>/dev/null
	kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	[[ -d $device ]] && rmdir "$device" "$(dirname "$device")" 2>/dev/null
	rm -f "$policy"
	true
}
trap cleanup EXIT
for _ in $(seq 50); do
	{ [[ -c $device ]] || mountpoint -q "$device" 2>/dev/null; } && break
	sleep 0.1
done
echo "== ringdevd is serving $device (pid $daemon)"
"$broker" -d "$device" --policy "$policy" -f 2>&1 | sed -u 's/^/   [broker] /' &
for _ in $(seq 50); do
	pgrep -f "ringdev-broker -d $device" >/dev/null && break
	sleep 0.1
done
brokerpid=$(pgrep -f "ringdev-broker -d $device" | head -1)
sleep 0.3
echo "== ringdev-broker (pid $brokerpid) decides every open; its decisions are the [broker] lines"

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

echo "== a brokered pipe: the writer returns only once a reader took its bytes"
(sleep 1; echo "== reader starts now"; "$ringcat" -d "$device" -r rv.demo | sed 's/^/   got: /') &
start=${EPOCHREALTIME/./}
echo "handed over in person" | "$ringcat" -d "$device" -w --create rv.demo
tenths=$(((${EPOCHREALTIME/./} - start) / 100000))
echo "   the writer waited $((tenths / 10)).$((tenths % 10)) s for its reader"
wait $!

echo "== restart in place: a reader waits on pipe NEWS while ringdevd is re-executed (SIGHUP)"
"$ringcat" -d "$device" -r --create news > /tmp/ringdev-demo.out &
reader=$!
sleep 0.3
kill -HUP "$daemon"
for _ in $(seq 100); do
	"$ringdevctl" -d "$device" stats 2>/dev/null | grep -q '^restarts    1 ' && break
	sleep 0.05
done
"$ringdevctl" -d "$device" stats | grep '^restarts' | sed 's/^/   /'
echo "written after the restart, read by a read begun before it" | "$ringcat" -d "$device" -w news
wait $reader
echo "== the reader (pid $reader) kept its handle and its waiting read; ringdevd is still pid $daemon:"
sed 's/^/   /' /tmp/ringdev-demo.out
rm -f /tmp/ringdev-demo.out

kill -TERM "$brokerpid"
wait "$brokerpid" 2>/dev/null || true
brokerpid=
kill -TERM "$daemon"
wait "$daemon" && echo "== ringdevd stopped cleanly (exit 0)"
