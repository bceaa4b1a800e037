#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages tidefs needs to build, test and benchmark.
# Idempotent: a no-op when everything is already present.
# Usage: scripts/install-deps.sh [--bench]
set -eu

PKGS="build-essential cmake pkg-config clang-format libfuse3-dev fuse3
libcurl4-openssl-dev liblmdb-dev lmdb-utils libssl-dev libjansson-dev
libexpat1-dev libcmocka-dev libmicrohttpd-dev attr curl ca-certificates
faketime psmisc"
if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS s3fs rclone fio hyperfine"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	echo "install-deps: installing:$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Python side of the tests: boto3 and moto's moto_server.
if ! python3 -c 'import boto3, moto' 2>/dev/null; then
	echo "install-deps: python3 lacks boto3/moto; trying pip" >&2
	python3 -m pip install -q 'moto[server]' boto3 awscli ||
		{ echo "install-deps: cannot install moto/boto3" >&2; exit 1; }
fi
exit 0
