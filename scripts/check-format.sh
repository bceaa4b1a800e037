#!/bin/sh
# SPDX-License-Identifier: MIT
# Fail when a C file is off the house format (.clang-format).
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
[ -z "$files" ] && exit 0
out=$(echo "$files" | xargs clang-format --dry-run 2>&1 || true)
if [ -n "$out" ]; then
	echo "$out" | grep 'warning:' | head -20
	echo "check-format: run: clang-format -i \$(git ls-files '*.c' '*.h')" >&2
	exit 1
fi
