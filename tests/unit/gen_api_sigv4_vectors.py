#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SigV4 vectors for the FSx endpoint's verifier (api_verify_sigv4), signed
by botocore's own SigV4Auth (service "fsx"), the signer boto3 and the aws
CLI use against --api-listen.

    gen_api_sigv4_vectors.py              C table: tests/unit/api_sigv4_vectors.h
    gen_api_sigv4_vectors.py --random N SEED
        N random FSx-like requests, all valid, one per line: space-separated
        hex fields  method path nheaders name value … body  ("-" for an
        empty one; nheaders in decimal; the headers include Host,
        X-Amz-Date and Authorization).

Each table entry carries what the server is configured with (its secret for
key 1, its region, its clock) and the expected api_auth_err; the bad cases
are made by changing one thing after (or while) botocore signs.
test_api_sigv4.c compares the committed table with a fresh run of this
script and verifies the random requests when PYTHON3 is set.
"""
import datetime
import json
import random
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AK1, SK1 = "AKIDTIDEFSAPI1", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AK2, SK2 = "AKIDTIDEFSAPI2", "second/secret+key=="
WHEN = datetime.datetime(2024, 5, 17, 12, 0, 0)
NOW = 1715947200  # WHEN as epoch seconds
TARGET = "AWSSimbaAPIService_v20180301."
CT = "application/x-amz-json-1.1"
HOST = "127.0.0.1:8089"
CREATE = json.dumps({"Type": "EXPORT_TO_REPOSITORY",
                     "FileSystemId": "fs-0123456789abcdef0",
                     "Paths": ["results"], "Report": {"Enabled": False},
                     "ClientRequestToken": "vec-1"}).encode()


class NoHostSigner(botocore.auth.SigV4Auth):
    """A signer that leaves Host out of SignedHeaders."""

    def headers_to_sign(self, request):
        h = super().headers_to_sign(request)
        del h["host"]
        return h


def sign(body, op="CreateDataRepositoryTask", host=HOST, key=AK1,
         secret=SK1, region="us-east-1", service="fsx", extra=None,
         signer=botocore.auth.SigV4Auth, when=WHEN):
    headers = [("Content-Type", CT), ("X-Amz-Target", TARGET + op)]
    headers += list((extra or {}).items())
    req = AWSRequest(method="POST", url="http://%s/" % host, data=body,
                     headers=dict(headers))
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer(Credentials(key, secret), service, region).add_auth(req)
    out = [("Host", host)]
    for k, v in req.headers.items():
        out.append((k, v.decode() if isinstance(v, bytes) else v))
    return out


def replace(headers, name, value):
    out = []
    for k, v in headers:
        if k.lower() == name.lower():
            if value is not None:
                out.append((k, value))
        else:
            out.append((k, v))
    return out


def vectors():
    v = []

    def add(name, headers, body=CREATE, now=NOW, secret1=SK1,
            region="us-east-1", expect="API_AUTH_OK"):
        v.append(dict(name=name, headers=headers, body=body, now=now,
                      secret1=secret1, region=region, expect=expect))

    add("good-create", sign(CREATE))
    add("good-describe-empty-object", sign(b"{}", "DescribeFileSystems"),
        body=b"{}")
    add("good-empty-body", sign(b"", "DescribeDataRepositoryTasks"),
        body=b"")
    utf8 = '{"Paths": ["d\u00e9j\u00e0/\u6587"]}'.encode()
    add("good-utf8-body", sign(utf8), body=utf8)
    add("good-unix-socket-host", sign(CREATE, host="localhost"))
    add("good-second-key", sign(CREATE, key=AK2, secret=SK2))
    add("good-extra-header-spaces",
        sign(CREATE, extra={"X-Tidefs-Note": "  a   b\tc  "}))
    add("good-skew-edge-old", sign(CREATE), now=NOW + 300)
    add("good-skew-edge-new", sign(CREATE), now=NOW - 300)
    add("good-header-names-lowercase",
        [(k.lower(), val) for k, val in sign(CREATE)])
    add("wrong-secret", sign(CREATE), secret1="not-the-secret",
        expect="API_AUTH_BAD_SIGNATURE")
    add("wrong-service", sign(CREATE, service="s3"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("wrong-region", sign(CREATE, region="eu-west-1"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("server-other-region", sign(CREATE), region="ap-south-1",
        expect="API_AUTH_BAD_SIGNATURE")
    add("skewed-date-old", sign(CREATE), now=NOW + 301,
        expect="API_AUTH_EXPIRED")
    add("skewed-date-10min-old", sign(CREATE), now=NOW + 600,
        expect="API_AUTH_EXPIRED")
    add("skewed-date-new", sign(CREATE), now=NOW - 301,
        expect="API_AUTH_EXPIRED")
    add("missing-signed-host", sign(CREATE, signer=NoHostSigner),
        expect="API_AUTH_MALFORMED")
    add("tampered-body", sign(CREATE),
        body=CREATE.replace(b"results", b"resulta"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("truncated-body", sign(CREATE), body=CREATE[:-1],
        expect="API_AUTH_BAD_SIGNATURE")
    add("tampered-target-header",
        replace(sign(CREATE), "X-Amz-Target",
                TARGET + "CancelDataRepositoryTask"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("tampered-content-type",
        replace(sign(CREATE), "Content-Type", "application/json"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("tampered-host", replace(sign(CREATE), "Host", "127.0.0.1:8090"),
        expect="API_AUTH_BAD_SIGNATURE")
    add("tampered-date-same-day",
        replace(sign(CREATE), "X-Amz-Date", "20240517T120001Z"),
        now=NOW, expect="API_AUTH_BAD_SIGNATURE")
    add("date-not-in-scope",
        replace(sign(CREATE), "X-Amz-Date", "20240518T000000Z"),
        now=NOW + 43200, expect="API_AUTH_MALFORMED")
    add("missing-date", replace(sign(CREATE), "X-Amz-Date", None),
        expect="API_AUTH_MALFORMED")
    add("signed-header-absent",
        replace(sign(CREATE), "X-Amz-Target", None),
        expect="API_AUTH_MALFORMED")
    sig = dict(sign(CREATE))["Authorization"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    add("tampered-signature",
        replace(sign(CREATE), "Authorization", flipped),
        expect="API_AUTH_BAD_SIGNATURE")
    add("unknown-key", sign(CREATE, key="AKIDNOBODY", secret=SK1),
        expect="API_AUTH_UNKNOWN_KEY")
    add("no-authorization", replace(sign(CREATE), "Authorization", None),
        expect="API_AUTH_MISSING")
    add("malformed-authorization",
        replace(sign(CREATE), "Authorization",
                "AWS4-HMAC-SHA256 Credential=%s" % AK1),
        expect="API_AUTH_MALFORMED")
    add("other-scheme", replace(sign(CREATE), "Authorization",
                                "Basic dXNlcjpwYXNz"),
        expect="API_AUTH_MALFORMED")
    add("short-signature",
        replace(sign(CREATE), "Authorization", sig[:-2]),
        expect="API_AUTH_MALFORMED")
    return v


def c_str(b):
    if isinstance(b, str):
        b = b.encode()
    out = '"'
    for ch in b:
        c = chr(ch)
        if ch < 128 and (c.isalnum() or c in " _-./:;=+,*()[]{}<>!#$%&'@^|~`"):
            out += c
        else:
            out += "\\%03o" % ch
    return out + '"'


def table():
    print("/* SPDX-License-Identifier: MIT */")
    print("/* Generated by tests/unit/gen_api_sigv4_vectors.py with botocore")
    print(" * SigV4Auth (service fsx); do not edit. Regenerate:")
    print(" *   cd tests/unit &&")
    print(" *   python3 gen_api_sigv4_vectors.py > api_sigv4_vectors.h")
    print(" */")
    print("// clang-format off")
    print("#define VEC_AK1 %s" % c_str(AK1))
    print("#define VEC_AK2 %s" % c_str(AK2))
    print("#define VEC_SK2 %s" % c_str(SK2))
    print("struct api_vector {")
    print("\tconst char *name;")
    print("\tconst char *headers[10][2];")
    print("\tsize_t nheaders;")
    print("\tconst char *body;")
    print("\tsize_t body_len;")
    print("\tint64_t now;")
    print("\tconst char *secret1, *region;")
    print("\tint expect;")
    print("};")
    print()
    print("static const struct api_vector api_vectors[] = {")
    for v in vectors():
        print("\t{")
        print("\t\t.name = %s," % c_str(v["name"]))
        print("\t\t.headers = {")
        for k, val in v["headers"]:
            print("\t\t\t{%s, %s}," % (c_str(k), c_str(val)))
        print("\t\t},")
        print("\t\t.nheaders = %d," % len(v["headers"]))
        print("\t\t.body = %s," % c_str(v["body"]))
        print("\t\t.body_len = %d," % len(v["body"]))
        print("\t\t.now = %d," % v["now"])
        print("\t\t.secret1 = %s," % c_str(v["secret1"]))
        print("\t\t.region = %s," % c_str(v["region"]))
        print("\t\t.expect = %s," % v["expect"])
        print("\t},")
    print("};")
    print("// clang-format on")


def rand_text(rng, n, alphabet):
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_lines(n, seed):
    rng = random.Random(seed)
    ops = ("CreateDataRepositoryTask", "DescribeDataRepositoryTasks",
           "CancelDataRepositoryTask", "DescribeFileSystems")
    printable = "abcXYZ019 -_.:/=+@\t,;\"'"
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            body = bytes(rng.randrange(256)
                         for _ in range(rng.randrange(0, 300)))
        elif kind == 1:
            body = json.dumps({"Paths": [rand_text(rng, rng.randrange(20),
                                                   "ab/\u00e9\u6587 ")]},
                              ensure_ascii=rng.random() < 0.5).encode()
        else:
            body = json.dumps({"MaxResults": rng.randrange(1, 100)}).encode()
        extra = {}
        for i in range(rng.randrange(0, 4)):
            name = "X-Amz-Meta-" + rand_text(rng, 5, "abcXYZ") + str(i)
            extra[name] = rand_text(rng, rng.randrange(0, 20), printable)
        host = rng.choice(("127.0.0.1:8089", "localhost", "[::1]:9000",
                           "fsx.internal:443"))
        key, secret = rng.choice(((AK1, SK1), (AK2, SK2)))
        when = WHEN + datetime.timedelta(seconds=rng.randrange(-299, 300))
        hs = sign(body, rng.choice(ops), host=host, key=key, secret=secret,
                  extra=extra, when=when)
        fields = ["POST".encode().hex(), "/".encode().hex(), "%d" % len(hs)]
        for k, val in hs:
            fields += [k.encode().hex(), val.encode().hex() or "-"]
        fields.append(body.hex() or "-")
        print(" ".join(fields))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--random":
        random_lines(int(sys.argv[2]), int(sys.argv[3]))
    else:
        table()
