# SPDX-License-Identifier: MIT
"""Fill a bucket on an S3 endpoint (moto_server) for test_tasks_import.

usage: import_fixture.py ENDPOINT SCENARIO BUCKET [NOBJECTS]

Waits up to 30 s for the endpoint to answer, creates BUCKET and puts the
objects of SCENARIO ("tree": the import rules, plus NOBJECTS files under
many/; "pfx": a prefix with a root marker). Prints "ok" when done.
"""

import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

NS = 1000000000
AT = 1600000000 * NS + 123456789
MT = 1500000000 * NS + 987654321
T = 1650000000 * NS + 5


def meta(mode=None, uid=None, gid=None, atime=None, mtime=None):
    m = {}
    if mode is not None:
        m["file-permissions"] = "%07o" % mode if mode >= 0o100000 \
            else "%06o" % mode
    if uid is not None:
        m["file-owner"] = str(uid)
    if gid is not None:
        m["file-group"] = str(gid)
    if atime is not None:
        m["file-atime"] = "%dns" % atime
    if mtime is not None:
        m["file-mtime"] = "%dns" % mtime
    return m


def tree(n):
    objs = [
        ("a/b/c/deep.txt", b"deep", {}),
        ("a/top.txt", b"top", meta(0o100640, 1234, 5678, AT, MT)),
        ("empty/", b"", meta(0o40750, 1001, 1002, T, T)),
        ("zero", b"", {}),
        ("link", b"a/top.txt", meta(0o120777, 10, 20, None,
                                    1400000000000000001)),
        ("bad//key", b"x", {}),
        ("./x", b"x", {}),
        ("x" * 256, b"x", {}),
        ("dir/../z", b"x", {}),
        ("d", b"file-d", {}),
        ("d/f", b"file-d-f", {}),
        ("odd/", b"", meta(0o100644, 5, 6)),
    ]
    objs += [("many/f%05d" % i, b"%d" % i, {}) for i in range(n)]
    return objs


def pfx(_n):
    return [
        ("sub/", b"", meta(0o40700, 7, 8, T, T)),
        ("sub/x", b"x", {}),
        ("sub/d/y", b"yy", {}),
        ("subway/z", b"z", {}),
        ("suba", b"a", {}),
    ]


def wait(url):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except Exception:
            time.sleep(0.1)
    sys.exit("endpoint %s does not answer" % url)


def main():
    url, scenario, bucket = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    wait(url)
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="test",
                      aws_secret_access_key="test",
                      config=Config(max_pool_connections=32))
    s3.create_bucket(Bucket=bucket)
    objs = {"tree": tree, "pfx": pfx}[scenario](n)

    def put(o):
        key, body, md = o
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=md)

    with ThreadPoolExecutor(32) as ex:
        list(ex.map(put, objs))
    print("ok")


if __name__ == "__main__":
    main()
