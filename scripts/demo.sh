#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Try tidefs locally: install the dependencies, build, start a local S3
# endpoint (moto_server on 127.0.0.1) holding a small sample bucket, and mount
# it in the foreground at MOUNTPOINT (default ./mnt).
#
# Stop with Ctrl-C, or from another terminal with `fusermount3 -u MOUNTPOINT`;
# either way the mount is taken down cleanly and moto_server is stopped.
# Re-runnable: each run starts from a fresh bucket and a fresh cache dir, and
# cleans up what an interrupted earlier run left behind.
#
# Usage: scripts/demo.sh [MOUNTPOINT]
# Environment: TIDEFS_DEMO_PORT (default: a free port), TIDEFS_DEMO_SKIP_DEPS=1
# (skip scripts/install-deps.sh), TIDEFS_DEMO_LOG_LEVEL (default info).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build"
WORK="$BUILD/demo"
CACHE="$WORK/cache"
BUCKET=tidefs-demo
LOG_LEVEL=${TIDEFS_DEMO_LOG_LEVEL:-info}
MNT_ARG=${1:-./mnt}
mkdir -p "$MNT_ARG"
MNT=$(cd "$MNT_ARG" && pwd -P)

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

is_mounted() { # never stats the mount itself (a dead daemon would hang it)
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

unmount() {
	if is_mounted "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
	fi
}

stop_pidfile() { # stop a process we started earlier, by its recorded id
	local f=$1 name=$2 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q "$name"; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

TIDEFS_PID=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if is_mounted "$MNT"; then
		say "unmounting $MNT"
		unmount
	fi
	if [ -n "$TIDEFS_PID" ]; then
		for _ in $(seq 100); do kill -0 "$TIDEFS_PID" 2>/dev/null || break; sleep 0.1; done
		kill "$TIDEFS_PID" 2>/dev/null || true
		wait "$TIDEFS_PID" 2>/dev/null || true
	fi
	rm -f "$WORK/tidefs.pid"
	say "stopping moto_server"
	stop_pidfile "$WORK/moto.pid" moto
	say "done"
	exit "$rc"
}

# 1. Dependencies and build.
if [ "${TIDEFS_DEMO_SKIP_DEPS:-0}" != 1 ]; then
	say "checking dependencies (scripts/install-deps.sh)"
	"$ROOT/scripts/install-deps.sh"
fi
say "building into $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target tidefs -j"$(nproc)" >/dev/null ||
	die "build failed; run: cmake --build $BUILD --target tidefs"
TIDEFS="$BUILD/fs/tidefs"
[ -x "$TIDEFS" ] || die "no binary at $TIDEFS"

# 2. Leftovers of an interrupted earlier run.
mkdir -p "$WORK"
stop_pidfile "$WORK/tidefs.pid" tidefs
unmount
stop_pidfile "$WORK/moto.pid" moto
if [ -n "$(ls -A "$MNT" 2>/dev/null)" ]; then
	die "$MNT is not empty; pass an empty directory as the mount point"
fi
rm -rf "$CACHE"
mkdir -p "$CACHE"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# 3. Local S3 endpoint with a sample bucket.
PORT=${TIDEFS_DEMO_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
ENDPOINT="http://127.0.0.1:$PORT"
if command -v moto_server >/dev/null; then
	MOTO=(moto_server -H 127.0.0.1 -p "$PORT")
else
	MOTO=(python3 -m moto.server -H 127.0.0.1 -p "$PORT")
fi
say "starting ${MOTO[*]} (log: $WORK/moto.log)"
setsid "${MOTO[@]}" >"$WORK/moto.log" 2>&1 </dev/null &
echo $! >"$WORK/moto.pid"
for _ in $(seq 150); do
	curl -fsS -o /dev/null "$ENDPOINT/" 2>/dev/null && break
	kill -0 "$(cat "$WORK/moto.pid")" 2>/dev/null || die "moto_server exited; see $WORK/moto.log"
	sleep 0.2
done
curl -fsS -o /dev/null "$ENDPOINT/" || die "moto_server does not answer on $ENDPOINT"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
say "filling s3://$BUCKET"
ENDPOINT="$ENDPOINT" BUCKET="$BUCKET" python3 - <<'EOF'
import os, time
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
b = os.environ["BUCKET"]
s3.create_bucket(Bucket=b)
ns = lambda t: "%dns" % int(t * 1e9)
day = 86400
now = time.time()
def meta(mode, uid=1000, gid=1000, age_days=0):
    t = now - age_days * day
    return {"file-permissions": mode, "file-owner": str(uid),
            "file-group": str(gid), "file-mtime": ns(t), "file-atime": ns(t)}
def put(key, body, m=None):
    kw = {"Bucket": b, "Key": key, "Body": body}
    if m:
        kw["Metadata"] = m
    s3.put_object(**kw)
put("README.txt", b"Welcome to the tidefs demo bucket.\n"
    b"This object has no POSIX metadata: it shows up as 0755 root:root,\n"
    b"dated by its S3 LastModified.\n")
put("docs/guide.md", b"# Guide\n\nImported with mode 0644, owner 1000:1000, two days old.\n",
    meta("0100644", age_days=2))
put("docs/notes/2024/january.txt", b"nested three levels deep\n", meta("0100644", age_days=400))
put("scripts/hello.sh", b"#!/bin/sh\necho hello from tidefs\n", meta("0100755"))
put("private/secret.txt", b"mode 0600, owner 1000\n", meta("0100600"))
put("empty-dir/", b"", meta("040755"))
put("shared/", b"", meta("040775", 1000, 100))
put("shared/data.csv", b"id,value\n1,alpha\n2,beta\n3,gamma\n", meta("0100664", 1000, 100))
put("latest-guide", b"docs/guide.md", meta("0120777"))
put("data/random-20MiB.bin", os.urandom(20 * 1024 * 1024), meta("0100644", age_days=1))
print("  %d objects" % s3.list_objects_v2(Bucket=b)["KeyCount"])
EOF

# 4. Mount in the foreground.
say "mounting s3://$BUCKET at $MNT (cache: $CACHE)"
"$TIDEFS" --cache-dir "$CACHE" --cache-size 1G --endpoint-url "$ENDPOINT" \
	--region us-east-1 --log-level "$LOG_LEVEL" -f "s3://$BUCKET" "$MNT" &
TIDEFS_PID=$!
echo "$TIDEFS_PID" >"$WORK/tidefs.pid"
for _ in $(seq 300); do
	is_mounted "$MNT" && break
	kill -0 "$TIDEFS_PID" 2>/dev/null || { wait "$TIDEFS_PID" || true; TIDEFS_PID=""; die "tidefs exited before mounting"; }
	sleep 0.1
done
is_mounted "$MNT" || die "mount did not come up within 30s"

cat >&2 <<EOF

  tidefs is mounted at $MNT  (S3 endpoint $ENDPOINT, bucket $BUCKET)

  Try, in another terminal:
    ls -laR $MNT
    stat $MNT/docs/guide.md                 # mode/owner/mtime from x-amz-meta-file-*
    readlink $MNT/latest-guide
    cat $MNT/latest-guide
    getfattr -n user.tidefs.state $MNT/data/random-20MiB.bin    # released
    dd if=$MNT/data/random-20MiB.bin of=/dev/null bs=4k count=1 skip=2560
    cat $MNT/.tidefs/stats                  # only the chunk you read was fetched
    md5sum $MNT/data/random-20MiB.bin
    getfattr -n user.tidefs.state $MNT/data/random-20MiB.bin    # archived
    echo hello > $MNT/notes.txt; getfattr -n user.tidefs.state $MNT/notes.txt
                                            # new: only in the cache, not in S3 yet

  Stop: Ctrl-C here, or  fusermount3 -u $MNT

EOF

set +e
wait "$TIDEFS_PID"
rc=$?
set -e
TIDEFS_PID=""
if [ "$rc" -ne 0 ]; then
	say "tidefs exited with status $rc"
fi
exit 0
