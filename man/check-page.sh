#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-page.sh - render one built man page and fail on any warning.
#
# Usage: check-page.sh PAGE COMMAND [ARG...]
# Runs COMMAND ARG... PAGE (man --warnings ... or groff -man -ww -z), throws
# the rendered text away and fails if the formatter printed anything on
# stderr or failed: man(1) reports groff warnings but still exits 0.
set -u

page=$1
shift

# A fixed width and locale, so line-breaking warnings do not depend on the
# terminal or the environment of whoever runs the tests.
err=$(MANWIDTH=80 LC_ALL=C "$@" "$page" 2>&1 >/dev/null)
status=$?
if [ "$status" -ne 0 ] || [ -n "$err" ]; then
	printf '%s: %s (exit %d)\n' "$page" "$err" "$status" >&2
	exit 1
fi
exit 0
