#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_venv.sh - the README's way to install the Python package alone works
# on Debian 12's own Python. That Python refuses a plain `pip install`
# (PEP 668: "externally-managed-environment"), so the README installs into
# a virtual environment; this does exactly that, offline, with what Debian
# ships: python3-venv (the venv, pip and setuptools from its bundled
# wheels) and python3-wheel (bdist_wheel, which setuptools 66 lacks),
# reached through --system-site-packages; --no-build-isolation because
# build isolation would fetch setuptools from PyPI. Then the package must
# import from the venv (not from the source tree) at the project's version.
# Needs PYTHON (the suite's Python) and RINGDEV_SOURCE_ROOT, RINGDEV_VERSION.
set -euo pipefail

fail() { echo "test_venv: $*" >&2; exit 1; }
for v in PYTHON RINGDEV_SOURCE_ROOT RINGDEV_VERSION; do
	[[ -n ${!v:-} ]] || fail "$v is not set (run through meson test)"
done

tmp=$(mktemp -d /tmp/ringdev-venv.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# pip builds in the project folder (build/, *.egg-info): build a copy, so
# the source tree stays clean and a stale build there cannot leak in.
cp -r "$RINGDEV_SOURCE_ROOT/python" "$tmp/src"

# The caller's pip settings (an index, find-links, a config file) are not
# the README's reader's; neither is PYTHONPATH, which the other Python
# tests point at the source tree.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PIP_' || true)
unset PYTHONPATH
export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

"$PYTHON" -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1 ||
	fail "$PYTHON -m venv failed (Debian: apt-get install python3-venv): $(tail -n 3 "$tmp/venv.log")"
"$tmp/venv/bin/pip" install --no-index --no-build-isolation "$tmp/src" >"$tmp/pip.log" 2>&1 ||
	fail "pip install into the venv failed: $(grep -iE 'error|invalid' "$tmp/pip.log" | tail -n 5)"

cd "$tmp"
"$tmp/venv/bin/python" - "$RINGDEV_VERSION" <<'EOF' || fail "the installed package is not the one expected"
import importlib.metadata, os, sys
import ringdev, ringdev._abi
where = os.path.realpath(ringdev.__file__)
venv_site = os.path.realpath(os.path.join(sys.prefix, "lib"))
assert where.startswith(venv_site + os.sep), f"ringdev imported from {where}, not from the venv {sys.prefix}"
got = importlib.metadata.version("ringdev")
assert got == sys.argv[1], f"installed version {got}, the project is {sys.argv[1]}"
assert callable(ringdev.open_pipe), "ringdev.open_pipe is missing"
print(f"test_venv: ringdev {got} from {where}")
EOF
echo "test_venv: ok"
