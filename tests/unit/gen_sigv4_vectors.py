#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate SigV4 test vectors with botocore's own S3 signer.

    gen_sigv4_vectors.py                  C table for tests/unit/sigv4_botocore_vectors.h
    gen_sigv4_vectors.py --tsv N SEED     N random S3-like requests, one per line:
        method TAB path TAB query TAB headers TAB payload TAB region TAB
        service TAB access_key TAB secret_key TAB authorization
      where headers is name \\x1e value pairs joined by \\x1f.

test_s3_sigv4.c compares the committed table with a fresh run of this script
and signs the random requests itself when PYTHON3 is set in its environment.
The signer is botocore.auth.S3SigV4Auth (SigV4Auth with S3's rule of not
normalising the path), with the clock pinned and the payload hash given.
"""
import datetime
import random
import sys
from unittest import mock
from urllib.parse import quote

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = ("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"
         "LWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGd"
         "QrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU"
         "9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz"
         "+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED = "UNSIGNED-PAYLOAD"


class Signer(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth, but the payload hash is whatever the vector says."""

    def payload(self, request):
        return request.context["vector_payload"]


def s3path(*parts):
    return "/" + "/".join(quote(p, safe="/~") for p in parts)


def sign(method, host, path, query, headers, body, payload, region,
         service, amz_date, token=None, ak=AK, sk=SK):
    url = "https://" + host + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=body)
    req.headers["Host"] = host
    for name, value in headers:
        req.headers[name] = value
    req.context["vector_payload"] = payload
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    signer = Signer(Credentials(ak, sk, token), service, region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(req)
    auth = req.headers["Authorization"]
    sent = [(k, v) for k, v in req.headers.items() if k != "Authorization"]
    return dict(method=method, path=path, query=query or "", headers=sent,
                payload=payload, region=region, service=service,
                ak=ak, sk=sk, authorization=auth)


def fixed_vectors():
    d1 = "20150830T123600Z"
    d2 = "20240229T235959Z"
    h = "s3.us-east-1.amazonaws.com"
    v = []

    def add(name, *a, **kw):
        v.append((name, sign(*a, **kw)))

    add("get-object-range", "GET", h, s3path("examplebucket", "test.txt"),
        "", [("Range", "bytes=0-9")], b"", EMPTY, "us-east-1", "s3", d1)
    add("get-odd-key", "GET", h,
        s3path("examplebucket", "dir with space/\u00fc+%?#&=.txt"), "",
        [], b"", UNSIGNED, "us-east-1", "s3", d1)
    add("get-if-match-token", "GET", h,
        s3path("examplebucket", "data/part-00001.parquet"), "",
        [("If-Match", '"9b2cf535f27731c974343645a3985328"'),
         ("Range", "bytes=1048576-2097151")], b"", UNSIGNED, "us-east-1",
        "s3", d2, token=TOKEN)
    add("list-v2-token", "GET", h, s3path("examplebucket"),
        "list-type=2&prefix=a%20b%2Bc%2F&continuation-token=1%2Fxyz%3D%3D"
        "&encoding-type=url&max-keys=1000", [], b"", EMPTY, "us-east-1",
        "s3", d2, token=TOKEN)
    add("head-utf8-key", "HEAD", h,
        s3path("examplebucket", "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb"
               ".txt"), "", [], b"", EMPTY, "us-east-1", "s3", d1)
    body = b"hello world\n"
    import hashlib
    add("put-with-meta", "PUT", h, s3path("examplebucket", "hello.txt"), "",
        [("Content-Type", "text/plain"),
         ("x-amz-meta-file-permissions", "0100644"),
         ("x-amz-meta-file-owner", "1000"),
         ("x-amz-meta-file-group", "1000"),
         ("x-amz-meta-file-mtime", "1700000000123456789ns"),
         ("If-None-Match", "*")], body, hashlib.sha256(body).hexdigest(),
        "us-east-1", "s3", d2)
    add("header-whitespace", "GET", h, s3path("examplebucket", "k"), "",
        [("x-amz-meta-note", "  a   b \t c  ")], b"", EMPTY, "us-east-1",
        "s3", d1)
    add("query-no-value", "POST", h, s3path("examplebucket", "big.bin"),
        "uploads", [], b"", EMPTY, "us-east-1", "s3", d1)
    add("path-dots-slashes", "GET", h,
        s3path("examplebucket", "a//b/./c/../d"), "", [], b"", EMPTY,
        "us-east-1", "s3", d1)
    add("virtual-host", "GET", "examplebucket.s3.us-west-2.amazonaws.com",
        s3path("photos/2024 summer/IMG_0001.JPG"), "", [], b"", UNSIGNED,
        "us-west-2", "s3", d2, ak="AKIAIOSFODNN7EXAMPLE",
        sk="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    jb = b'{"Type":"EXPORT_TO_REPOSITORY","FileSystemId":"fs-0123456789abcdef0"}'
    add("fsx-json", "POST", "fsx.us-east-1.amazonaws.com", "/", "",
        [("Content-Type", "application/x-amz-json-1.1"),
         ("X-Amz-Target", "AWSSimbaAPIService_v20180301."
          "CreateDataRepositoryTask")], jb, hashlib.sha256(jb).hexdigest(),
        "us-east-1", "fsx", d2)
    return v


def c_str(s):
    out = []
    for ch in s.encode("utf-8"):
        c = chr(ch)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= ch < 127 and c != "?":
            out.append(c)
        else:
            out.append("\\%03o" % ch)
    return '"' + "".join(out) + '"'


def emit_c():
    print("/* SPDX-License-Identifier: MIT */")
    print("/* Generated by tests/unit/gen_sigv4_vectors.py with botocore")
    print(" * S3SigV4Auth; do not edit. Regenerate:")
    print(" *   cd tests/unit &&")
    print(" *   python3 gen_sigv4_vectors.py > sigv4_botocore_vectors.h")
    print(" */")
    print("// clang-format off")
    print("struct botocore_vector {")
    print("\tconst char *name, *method, *path, *query;")
    print("\tstruct s3_header headers[12];")
    print("\tsize_t nheaders;")
    print("\tconst char *payload, *region, *service, *access_key, "
          "*secret_key;")
    print("\tconst char *authorization;")
    print("};")
    print()
    print("static const struct botocore_vector botocore_vectors[] = {")
    for name, v in fixed_vectors():
        print("\t{")
        print("\t\t.name = %s," % c_str(name))
        print("\t\t.method = %s," % c_str(v["method"]))
        print("\t\t.path = %s," % c_str(v["path"]))
        print("\t\t.query = %s," % c_str(v["query"]))
        print("\t\t.headers = {")
        for k, val in v["headers"]:
            print("\t\t\t{%s, %s}," % (c_str(k), c_str(val)))
        print("\t\t},")
        print("\t\t.nheaders = %d," % len(v["headers"]))
        for f in ("payload", "region", "service"):
            print("\t\t.%s = %s," % (f, c_str(v[f])))
        print("\t\t.access_key = %s," % c_str(v["ak"]))
        print("\t\t.secret_key = %s," % c_str(v["sk"]))
        print("\t\t.authorization = %s," % c_str(v["authorization"]))
        print("\t},")
    print("};")
    print("// clang-format on")


def random_key(rng):
    alphabet = ("abcXYZ019-_.~/ +%?#&=!*'()[]{}:;,@$^|\\\"<>`"
                "\u00e9\u00fc\u00df\u4e2d\u6587\U0001F600\u2603")
    n = rng.randint(1, 40)
    return "".join(rng.choice(alphabet) for _ in range(n))


def emit_tsv(n, seed):
    rng = random.Random(seed)
    for i in range(n):
        key = random_key(rng)
        params = [("list-type", "2"), ("prefix", random_key(rng)),
                  ("continuation-token", random_key(rng)),
                  ("max-keys", str(rng.randint(1, 1000)))]
        rng.shuffle(params)
        params = params[:rng.randint(0, len(params))]
        query = "&".join("%s=%s" % (quote(k, safe="-_.~"),
                                     quote(v, safe="-_.~"))
                         for k, v in params)
        headers = []
        if rng.random() < 0.5:
            headers.append(("If-Match", '"%032x"' % rng.getrandbits(128)))
        if rng.random() < 0.5:
            a = rng.randint(0, 1 << 40)
            headers.append(("Range", "bytes=%d-%d" % (a, a + rng.randint(
                0, 1 << 24))))
        if rng.random() < 0.5:
            headers.append(("x-amz-meta-file-mtime",
                            " %dns  " % rng.getrandbits(60)))
        v = sign(rng.choice(["GET", "HEAD", "PUT", "DELETE"]),
                 "127.0.0.1:%d" % rng.randint(1024, 65535),
                 s3path("bucket-%d" % i, key), query, headers, b"",
                 rng.choice([EMPTY, UNSIGNED]),
                 rng.choice(["us-east-1", "eu-west-3", "ap-south-1"]), "s3",
                 "2025%02d%02dT%02d%02d%02dZ" % (
                     rng.randint(1, 12), rng.randint(1, 28),
                     rng.randint(0, 23), rng.randint(0, 59),
                     rng.randint(0, 59)),
                 token=TOKEN if rng.random() < 0.3 else None)
        hdrs = "\x1f".join("%s\x1e%s" % kv for kv in v["headers"])
        print("\t".join([v["method"], v["path"], v["query"], hdrs,
                         v["payload"], v["region"], v["service"], v["ak"],
                         v["sk"], v["authorization"]]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--tsv":
        emit_tsv(int(sys.argv[2]), int(sys.argv[3]))
    else:
        emit_c()
