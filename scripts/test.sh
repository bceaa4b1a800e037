#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what is missing, build, and run the whole test suite: once in a
# normal build and once under ASan+UBSan. This is the README's test command
# and what CI (.ci/run) runs.
# Usage: scripts/test.sh [--no-asan] [ctest args...]
set -eu
cd "$(dirname "$0")/.."

asan=1
if [ "${1:-}" = "--no-asan" ]; then
	asan=0
	shift
fi

scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
(cd build && ctest --output-on-failure --timeout 900 "$@")

if [ "$asan" = 1 ]; then
	echo "== build (ASan+UBSan)"
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
		-DTIDEFS_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j"$jobs"
	echo "== tests under ASan+UBSan"
	(cd build-asan &&
		ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:halt_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 900 -E clang_format "$@")
fi
echo "== all tests passed"
