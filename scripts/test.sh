#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what is missing, build, and run the whole test suite: once in a
# normal build and once under ASan+UBSan. This is the README's test command
# and what CI (.ci/run) runs.
# Usage: scripts/test.sh [--no-asan] [--tsan] [ctest args...]
#   --tsan  also build under ThreadSanitizer (build-tsan/) and run the suite
#           there; any report of any process (the daemons too) fails the
#           run. Not part of CI: it adds ~10 minutes on 2 CPUs.
set -eu
cd "$(dirname "$0")/.."

asan=1
tsan=0
while [ $# -gt 0 ]; do
	case "$1" in
	--no-asan) asan=0 ;;
	--tsan) tsan=1 ;;
	*) break ;;
	esac
	shift
done

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
if [ "$tsan" = 1 ]; then
	echo "== build (TSan)"
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug \
		-DTIDEFS_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j"$jobs"
	echo "== tests under TSan"
	reports=$(pwd)/build-tsan/tsan-reports
	rm -rf "$reports"
	mkdir -p "$reports"
	# detect_deadlocks=0: a release batch holds 64 file locks at once,
	# more than TSan's deadlock detector can track (it aborts).
	(cd build-tsan &&
		TSAN_OPTIONS="detect_deadlocks=0:log_path=$reports/report" \
		ctest --output-on-failure --timeout 900 -j"$par" \
		-E 'clang_format|release_1g' "$@")
	if ls "$reports"/report* >/dev/null 2>&1; then
		cat "$reports"/report*
		echo "== ThreadSanitizer reports (above)"
		exit 1
	fi
fi
echo "== all tests passed"
