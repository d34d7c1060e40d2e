#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-example.sh - an example printed in a page must be the file the
# project ships, byte for byte: ringdev-broker(3) shows the example meson
# builds (broker/examples/echo-broker.c), so the page can only show code that
# compiles; ringdev-broker(8) shows the example policy
# (broker/examples/broker.policy), which the tests parse and hold to its
# promises, so the page can only show a policy that is valid and safe.
#
# Usage: check-example.sh PAGE.scd EXAMPLE
# The example in the page is the fenced block (```) whose first line is the
# first line of EXAMPLE.
set -u

page=$1
example=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT

first=$(head -n 1 "$example")
awk -v first="$first" '
	/^```$/ { if (inside) exit; fence = 1; next }
	fence && $0 == first { inside = 1 }
	{ fence = 0 }
	inside { print }
' "$page" >"$dir/shown.c"

if ! [ -s "$dir/shown.c" ]; then
	echo "$page: no fenced block starting with \"$first\"" >&2
	exit 1
fi
if ! cmp -s "$dir/shown.c" "$example"; then
	echo "$page: the example differs from $example:" >&2
	diff "$example" "$dir/shown.c" >&2
	exit 1
fi
exit 0
