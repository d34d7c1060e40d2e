#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-install.sh - `meson install` lays out a system package: installs the
# build into a DESTDIR under a temporary folder and checks
# - every file a package ships is there (programs in sbin and bin, headers,
#   the library with its soname and pkg-config file, man pages in sections
#   1, 3, 4 and 8, units, udev rule, sysusers and modules-load entries, the
#   sample policy), and nothing of the build tree leaks in (no RPATH);
# - the installed programs run and report the project's version;
# - the example broker builds against the installed pkg-config file alone
#   and links the installed library;
# - `systemd-analyze verify` accepts both units (their ExecStart pointed at
#   the DESTDIR copies, since the real prefix holds nothing), their Type
#   matches the build, and the ExecStart paths are the installed ones;
# - `systemd-sysusers --dry-run` accepts the sysusers entry.
# Everything lives under one temporary folder, removed at exit.
set -euo pipefail

fail() { echo "test-install: $*" >&2; exit 1; }
for v in BUILD_ROOT SOURCE_ROOT MESON PREFIX BINDIR SBINDIR LIBDIR INCLUDEDIR MANDIR SYSCONFDIR DATADIR \
	UNITDIR UDEVRULESDIR SYSUSERSDIR MODULESLOADDIR VERSION SERVICE_TYPE HAVE_MAN CC; do
	[[ -n ${!v:-} ]] || fail "$v is not set (run through meson test)"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
"$MESON" install -C "$BUILD_ROOT" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "meson install failed"; }

# Paths meson gives relative to the prefix become absolute.
abs() { [[ $1 == /* ]] && echo "$1" || echo "$PREFIX/$1"; }
bindir=$dest$(abs "$BINDIR")
sbindir=$dest$(abs "$SBINDIR")
libdir=$dest$(abs "$LIBDIR")
incdir=$dest$(abs "$INCLUDEDIR")
mandir=$dest$(abs "$MANDIR")
etcdir=$dest$(abs "$SYSCONFDIR")
datadir=$dest$(abs "$DATADIR")

expect=(
	"$sbindir/ringdevd" "$sbindir/ringdev-broker" "$bindir/ringcat" "$bindir/ringdevctl"
	"$incdir/ringdev/ringdev.h" "$incdir/ringdev/ringdev-broker.h" "$incdir/ringdev/ringdev-broker-ioctl.h"
	"$libdir/libringdev-broker.so" "$libdir/libringdev-broker.so.0" "$libdir/pkgconfig/libringdev-broker.pc"
	"$dest$UNITDIR/ringdevd.service" "$dest$UNITDIR/ringdev-broker.service"
	"$dest$UDEVRULESDIR/60-ringdev.rules" "$dest$SYSUSERSDIR/ringdev.conf" "$dest$MODULESLOADDIR/ringdev.conf"
	"$etcdir/ringdev/broker.policy.example" "$datadir/doc/ringdev/examples/broker.policy"
)
if [[ $HAVE_MAN == true ]]; then
	expect+=("$mandir/man1/ringcat.1" "$mandir/man3/ringdev-broker.3" "$mandir/man4/ringdev.4"
		"$mandir/man8/ringdevd.8" "$mandir/man8/ringdev-broker.8" "$mandir/man8/ringdevctl.8")
fi
for f in "${expect[@]}"; do
	[[ -e $f ]] || fail "not installed: ${f#"$dest"}"
done
for f in ringdevd ringdev-broker; do [[ -x $sbindir/$f ]] || fail "$f is not executable"; done
for f in ringcat ringdevctl; do [[ -x $bindir/$f ]] || fail "$f is not executable"; done
# Others may not read ringdevd: its re-exec at a SIGHUP, as its --user, is
# then not dumpable from the start (see cuse_dev/meson.build).
[[ $(stat -c %a "$sbindir/ringdevd") == 711 ]] || fail "ringdevd is mode $(stat -c %a "$sbindir/ringdevd"), want 711"

# The library: a real soname, the unversioned name a link-time symlink.
soname=$(readelf -d "$libdir/libringdev-broker.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libringdev-broker.so.0 ]] || fail "soname is '$soname', want libringdev-broker.so.0"
[[ -L $libdir/libringdev-broker.so ]] || fail "libringdev-broker.so is not a symlink"
for f in "$sbindir"/* "$bindir"/* "$libdir"/libringdev-broker.so.0; do
	if [[ $(readelf -d "$f") =~ \((RPATH|RUNPATH)\) ]]; then
		fail "${f#"$dest"} keeps an RPATH into the build tree"
	fi
done

# The installed programs run, and say the project's version.
export LD_LIBRARY_PATH=$libdir
for p in "$sbindir/ringdevd" "$sbindir/ringdev-broker" "$bindir/ringcat" "$bindir/ringdevctl"; do
	out=$("$p" --version) || fail "${p#"$dest"} --version failed"
	[[ $out == *"$VERSION"* ]] || fail "${p#"$dest"} --version says '$out', not $VERSION"
done

# The example broker against the installed pkg-config file only.
export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_LIBDIR=$libdir/pkgconfig
[[ $(pkg-config --modversion libringdev-broker) == "$VERSION" ]] || fail "pkg-config version is not $VERSION"
read -ra cflags <<<"$(pkg-config --cflags libringdev-broker)"
read -ra libs <<<"$(pkg-config --libs libringdev-broker)"
$CC -Wall -Werror -o "$tmp/echo-broker" "$SOURCE_ROOT/broker/examples/echo-broker.c" "${cflags[@]}" "${libs[@]}" \
	2>"$tmp/cc.log" || { cat "$tmp/cc.log" >&2; fail "the example broker does not build from the installed files"; }
linked=$(ldd "$tmp/echo-broker")
[[ $linked == *"libringdev-broker.so.0 => $libdir/"* ]] ||
	fail "the example broker does not link the installed library: $linked"

# The units: their programs are the installed ones, and systemd accepts them.
for u in ringdevd ringdev-broker; do
	unit=$dest$UNITDIR/$u.service
	opts=--foreground\ --user\ ringdev
	[ "$u" = ringdevd ] && opts="$opts --fd-store"
	grep -qx "ExecStart=$(abs "$SBINDIR")/$u $opts" "$unit" || fail "$u.service: ExecStart"
	grep -qx "Type=$SERVICE_TYPE" "$unit" || fail "$u.service: not Type=$SERVICE_TYPE"
	sed "s|^ExecStart=$(abs "$SBINDIR")/|ExecStart=$sbindir/|" "$unit" >"$tmp/$u.service"
done
grep -qx 'BindsTo=ringdevd.service' "$dest$UNITDIR/ringdev-broker.service" || fail "the broker is not bound to ringdevd"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$dest$UNITDIR/ringdevd.service" || fail "ringdevd.service: reload is not a restart in place"
grep -qx 'FileDescriptorStoreMax=16' "$dest$UNITDIR/ringdevd.service" || fail "ringdevd.service keeps no fd store"
if ! systemd-analyze verify --man=no "$tmp/ringdevd.service" "$tmp/ringdev-broker.service" >"$tmp/verify.log" 2>&1; then
	cat "$tmp/verify.log" >&2
	fail "systemd-analyze verify rejects the units"
fi

# The service user: systemd-sysusers parses the entry (into an empty root).
mkdir -p "$tmp/root/etc"
systemd-sysusers --dry-run --root="$tmp/root" "$dest$SYSUSERSDIR/ringdev.conf" >"$tmp/sysusers.log" 2>&1 ||
	{ cat "$tmp/sysusers.log" >&2; fail "systemd-sysusers rejects ringdev.conf"; }
grep -q "Creating user 'ringdev'" "$tmp/sysusers.log" || fail "sysusers.d entry creates no user ringdev"
grep -qx cuse "$dest$MODULESLOADDIR/ringdev.conf" || fail "modules-load.d entry does not load cuse"
grep -q 'SUBSYSTEM=="cuse", KERNEL=="ringdev", GROUP="root", MODE="0666"' "$dest$UDEVRULESDIR/60-ringdev.rules" ||
	fail "udev rule for /dev/ringdev"
echo "test-install: ok ($(find "$dest" -type f | wc -l) files)"
