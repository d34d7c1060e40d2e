#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-options.sh - the options a program's --help lists and the options its
# man page documents must be the same set.
#
# Usage: check-options.sh PROGRAM PAGE.scd
# From --help: the first column of every line that starts with two spaces and
# a dash ("  -f, --foreground   ..."). From the page: the terms of the
# definition lists under "# OPTIONS" (a line starting with "*-" followed by a
# tab-indented line).
set -u

program=$1
page=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
tmp=$dir/options

# A program that is given a C locale prints its help the same way everywhere.
if ! LC_ALL=C "$program" --help >"$tmp.out" 2>&1; then
	echo "$program --help failed:" >&2
	cat "$tmp.out" >&2
	exit 1
fi
sed -n 's/^  \(-.*\)/\1/p' "$tmp.out" | sed 's/  .*//' |
	grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u >"$tmp.help"

awk '
	/^# / { in_options = ($0 == "# OPTIONS"); next }
	in_options && prev ~ /^\*-/ && /^\t/ { print prev }
	{ prev = $0 }
' "$page" | grep -oE -- '\*--?[A-Za-z][A-Za-z0-9-]*\*' | tr -d '*' | sort -u >"$tmp.page"

if ! [ -s "$tmp.help" ] || ! [ -s "$tmp.page" ]; then
	echo "no options found in $program --help or in $page" >&2
	exit 1
fi
if ! cmp -s "$tmp.help" "$tmp.page"; then
	echo "options differ between $program --help (<) and $page (>):" >&2
	diff "$tmp.help" "$tmp.page" | grep '^[<>]' >&2
	exit 1
fi
exit 0
