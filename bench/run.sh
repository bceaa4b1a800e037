#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the tidefs benchmark: native disk, s3fs-fuse, rclone mount and tidefs
# against one local s3rver endpoint.  Writes bench/RESULTS.md and
# bench/results.json (with --quick: bench/work/quick/).  Run as root.
#
#   bench/run.sh [--quick] [--systems native,s3fs,rclone,tidefs] [--reps N]
#                [--tidefs PATH] [--build] [--nice N]
#
# --build first builds tidefs (Release) into build-bench/.  --nice N runs the
# whole benchmark (endpoint, daemons, clients) at CPU nice N (e.g. -10) and
# best-effort I/O priority 0, to cut the noise from other jobs on a shared
# machine.  Other options go to bench/bench.py (see bench/README.md).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
WORK="$HERE/work"

# Unmount everything under bench/work and stop the processes bench.py
# recorded (by pid, and only if the pid still runs one of our programs);
# the bench disk last, once no daemon keeps its cache there.
cleanup() {
	[ -d "$WORK" ] || return 0
	awk -v w="$WORK/" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
		done
	for pf in "$WORK"/*/pids; do
		[ -f "$pf" ] || continue
		while read -r pid name; do
			case "$pid" in '' | *[!0-9]*) continue ;; esac
			if [ -r "/proc/$pid/cmdline" ] &&
				tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 's3rver|s3fs|rclone|tidefs'; then
				kill "$pid" 2>/dev/null || true
				sleep 1
				kill -9 "$pid" 2>/dev/null || true
			fi
		done <"$pf"
		rm -f "$pf"
	done
	# what is left is the loop-mounted bench disk (bench.py --disk image)
	awk -v w="$WORK/" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
}

BUILD=0
NICE=""
ARGS=""
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=1 ;;
	--nice)
		NICE="$2"
		shift
		;;
	--nice=*) NICE="${1#--nice=}" ;;
	*) ARGS="$ARGS $1" ;;
	esac
	shift
done

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (drop_caches and FUSE mounts need it)" >&2
	exit 1
fi
for t in s3fs rclone fio node curl fusermount3 python3; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "bench: $t missing; run scripts/install-deps.sh --bench" >&2
		exit 1
	}
done
python3 -c 'import boto3' 2>/dev/null || {
	echo "bench: python3 lacks boto3 (pip install boto3)" >&2
	exit 1
}
if [ ! -f "$HERE/node_modules/s3rver/package.json" ]; then
	npm ci --prefix "$HERE" --no-audit --no-fund >/dev/null
fi
if [ "$BUILD" = 1 ]; then
	cmake -S "$REPO" -B "$REPO/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
	make -C "$REPO/build-bench" -j"$(nproc)" tidefs >/dev/null
fi

cleanup
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# shellcheck disable=SC2086
if [ -n "$NICE" ]; then
	BENCH_NICE="$NICE" nice -n "$NICE" ionice -c2 -n0 python3 "$HERE/bench.py" $ARGS
else
	python3 "$HERE/bench.py" $ARGS
fi
