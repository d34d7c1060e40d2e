#!/usr/bin/env bash
# deps.sh - install what ringdev needs on Debian 12, as root.
#   deps.sh build   the toolchain and libraries to build and run ringdevd
#   deps.sh test    also what the tests need (Criterion, pytest, venv, redis-server, the CUSE test
#                   VM, the device exercisers run in it)
#   deps.sh fuzz    the build set plus clang with libFuzzer (scripts/fuzz.sh)
#   deps.sh analyze the build set plus valgrind, clang, clang-tidy (scripts/analyze.sh)
# Installs only what is missing, so a prepared machine pays nothing.
set -euo pipefail

build_pkgs=(gcc meson ninja-build pkg-config libfuse3-dev fuse3 scdoc man-db groff-base libcap-ng-dev libsystemd-dev libhiredis-dev)
# python3-venv and python3-wheel: the README's venv install of python/,
# offline (tests/python/test_venv.sh).
test_pkgs=(libcriterion-dev python3-pytest python3-venv python3-wheel linux-image-amd64 qemu-system-x86 busybox-static kmod systemd stress-ng socat pv fio redis-server)

fuzz_pkgs=(clang libclang-rt-14-dev llvm-14 libcriterion-dev)
analyze_pkgs=(libcriterion-dev valgrind clang clang-tidy-14 python3)

case "${1:-build}" in
build) pkgs=("${build_pkgs[@]}") ;;
test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
fuzz) pkgs=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
analyze) pkgs=("${build_pkgs[@]}" "${analyze_pkgs[@]}") ;;
*) echo "usage: deps.sh build|test|fuzz|analyze" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FUSE mounts need /dev/fuse; containers sometimes lack the node.
if [[ ! -e /dev/fuse ]]; then
	modprobe fuse 2>/dev/null || true
	[[ -e /dev/fuse ]] || mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || true
fi
