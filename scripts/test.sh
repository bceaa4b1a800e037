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

# Integration suites mostly wait on moto and FUSE: run three at a time.
par=${TIDEFS_TEST_JOBS:-3}

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

if [ "$asan" = 1 ]; then
	# Build the sanitizer tree while the first test run goes on.
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
		-DTIDEFS_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j1 >build-asan.log 2>&1 &
	asan_pid=$!
fi

echo "== tests"
(cd build && ctest --output-on-failure --timeout 900 -j"$par" "$@")

if [ "$asan" = 1 ]; then
	echo "== build (ASan+UBSan)"
	if ! wait "$asan_pid"; then
		cat build-asan.log
		exit 1
	fi
	echo "== tests under ASan+UBSan"
	(cd build-asan &&
		ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:halt_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 900 -j"$par" -E clang_format "$@")
fi
echo "== all tests passed"
