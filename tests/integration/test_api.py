# SPDX-License-Identifier: MIT
"""The FSx-compatible endpoint (--api-listen, --api-credentials) driven by
boto3, the aws CLI and hand-signed raw HTTP requests against a real mount.

  FsxTasks       create/describe/cancel for every task type, DescribeFileSystems,
                 idempotency tokens, pagination and filters, the task queue
                 limit (ServiceLimitExceeded) with the S3 endpoint frozen.
  FsxErrors      every validation rule family as botocore's modeled
                 exceptions (client.exceptions.BadRequest, …), unsupported
                 operations.
  FsxCli         `aws fsx … --endpoint-url` create and describe (JSON output).
  FsxSecurity    bad/missing/expired/replayed signatures, unknown keys,
                 malformed and oversize bodies, oversize headers, many
                 connections: refused, and the daemon keeps serving.
  FsxControl     the same task through MOUNT/.tidefs/tasks/ and the API.
  FsxUnixSocket  --api-listen unix:/path, signed over AF_UNIX.
  FsxStartup     a mount whose API cannot start fails cleanly.
"""

import datetime
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from unittest import mock

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tidefs_test import (MiB, Mount, MountError, TidefsTestCase,
                         UnixHTTPConnection, child_read, free_port,
                         pattern_bytes)

KEY_ID = "AKIDTIDEFSAPITEST01"
SECRET = "tidefs/api+Secret0123456789abcdefghijklmn"
KEY_ID2 = "AKIDTIDEFSAPITEST02"
SECRET2 = "second-secret-0123456789"
TARGET = "AWSSimbaAPIService_v20180301."
CT = "application/x-amz-json-1.1"
FINAL = ("SUCCEEDED", "FAILED", "CANCELED")
OTHER_FS = "fs-0123456789abcdef0"
TASK_ID_RE = re.compile(r"^task-[0-9a-f]{17}$")

EXPORT = "EXPORT_TO_REPOSITORY"
IMPORT = "IMPORT_METADATA_FROM_REPOSITORY"
RELEASE = "RELEASE_DATA_FROM_FILESYSTEM"
AUTO_RELEASE = "AUTO_RELEASE_DATA"
NO_REPORT = {"Enabled": False}


def sign(url, body, op, key=KEY_ID, secret=SECRET, region="us-east-1",
         service="fsx", when=None, extra=None, ctype=CT):
    """Headers of a POST of body to url, SigV4-signed by botocore itself
    (clock pinned to `when`, a naive UTC datetime, when given)."""
    headers = {"X-Amz-Target": TARGET + op}
    if ctype:
        headers["Content-Type"] = ctype
    headers.update(extra or {})
    req = AWSRequest(method="POST", url=url, data=body, headers=headers)
    auth = botocore.auth.SigV4Auth(Credentials(key, secret), service, region)
    if when is None:
        auth.add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime",
                        return_value=when):
            auth.add_auth(req)
    return {k: v.decode() if isinstance(v, bytes) else v
            for k, v in req.headers.items()}


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def parse_body(data):
    try:
        return json.loads(data.decode()) if data else None
    except ValueError:
        return {"__raw": data.decode(errors="replace")}


class ApiCase(TidefsTestCase):
    """A mount with the API on a free loopback port and a credentials file
    with two key pairs; fsx clients for it."""

    TEST_TIMEOUT = 120

    def setUp(self):
        super().setUp()
        self.creds = os.path.join(self.tmp, "api-credentials")
        with open(self.creds, "w") as f:
            f.write("# tidefs API keys\n[default]\naws_access_key_id = %s\n"
                    "aws_secret_access_key = %s\n\n[ci]\n"
                    "aws_access_key_id=%s\naws_secret_access_key=%s\n"
                    % (KEY_ID, SECRET, KEY_ID2, SECRET2))
        os.chmod(self.creds, 0o600)

    def api_mount(self, listen=None, **kw):
        port = None
        if listen is None:
            port = free_port()
            listen = "127.0.0.1:%d" % port
        args = list(kw.pop("args", ())) + ["--api-listen", listen,
                                            "--api-credentials", self.creds]
        m = self.mount(args=args, **kw)
        m.api_port = port
        m.api_url = "http://127.0.0.1:%d" % port if port else None
        return m

    def fsx(self, m, key=KEY_ID, secret=SECRET, region="us-east-1",
            validate=True):
        return boto3.client(
            "fsx", endpoint_url=m.api_url, region_name=region,
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"total_max_attempts": 1},
                          parameter_validation=validate,
                          connect_timeout=5, read_timeout=20))

    def fsid(self, m):
        return m.stats()["file_system_id"]

    def create(self, c, m, type_, **kw):
        kw.setdefault("FileSystemId", self.fsid(m))
        kw.setdefault("Report", NO_REPORT)
        t = c.create_data_repository_task(Type=type_, **kw)
        return t["DataRepositoryTask"]

    def describe_one(self, c, task_id):
        r = c.describe_data_repository_tasks(TaskIds=[task_id])
        self.assertEqual(len(r["DataRepositoryTasks"]), 1, r)
        return r["DataRepositoryTasks"][0]

    def wait(self, c, task_id, timeout=60, want=FINAL):
        deadline = time.monotonic() + timeout
        while True:
            t = self.describe_one(c, task_id)
            if t["Lifecycle"] in want:
                return t
            if time.monotonic() > deadline:
                self.fail("task %s still %s after %ds" % (
                    task_id, t["Lifecycle"], timeout))
            time.sleep(0.05)

    def run_ok(self, c, m, type_, **kw):
        t = self.create(c, m, type_, **kw)
        done = self.wait(c, t["TaskId"])
        self.assertEqual(done["Lifecycle"], "SUCCEEDED", done)
        return done

    def write(self, m, rel, data):
        p = m.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    def read_ctl(self, m, name):
        with open(m.path(".tidefs", "tasks", name), "rb") as f:
            d = json.loads(f.read().decode())
        return d.get("DataRepositoryTask", d)

    # raw HTTP
    def raw(self, m, body, headers, method="POST", path="/", conn=None):
        """One request; (status, parsed JSON body)."""
        conn = conn or http.client.HTTPConnection("127.0.0.1", m.api_port,
                                                  timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, parse_body(r.read())
        finally:
            conn.close()

    def signed(self, m, op, body, **kw):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.raw(m, body, sign(m.api_url + "/", body, op, **kw))

    def assertServing(self, m):
        """The daemon is alive and still answers signed requests."""
        self.assertIsNone(m.proc.poll(), "tidefs exited:\n" + m.log_tail())
        r = self.fsx(m).describe_file_systems()
        self.assertEqual(r["FileSystems"][0]["FileSystemId"], self.fsid(m))

    def assertApiError(self, name, status, result, *words):
        st, body = result
        self.assertEqual(st, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("__type"), name, body)
        self.assertIsInstance(body.get("Message"), str, body)
        for w in words:
            self.assertIn(w.lower(), body["Message"].lower(), body)
        return body


# --------------------------------------------------------------- tasks ----

class FsxTasks(ApiCase):

    def test_describe_file_systems(self):
        self.put("pre/x.txt", b"x")
        m = self.api_mount(prefix="pre")
        c = self.fsx(m)
        r = c.describe_file_systems()
        self.assertEqual(len(r["FileSystems"]), 1, r)
        fs = r["FileSystems"][0]
        self.assertEqual(fs["FileSystemId"], self.fsid(m))
        self.assertRegex(fs["FileSystemId"], r"^fs-[0-9a-f]{8,}$")
        self.assertEqual(fs["FileSystemType"], "LUSTRE")
        self.assertEqual(fs["Lifecycle"], "AVAILABLE")
        self.assertTrue(fs["ResourceARN"].startswith("arn:aws:fsx:us-east-1:"))
        self.assertTrue(fs["ResourceARN"].endswith(
            ":file-system/" + fs["FileSystemId"]))
        dr = fs["LustreConfiguration"]["DataRepositoryConfiguration"]
        self.assertEqual(dr["ImportPath"], "s3://%s/pre/" % self.bucket)
        self.assertEqual(dr["ExportPath"], "s3://%s/pre/" % self.bucket)
        # botocore's own paginator on top of it
        pages = list(c.get_paginator("describe_file_systems").paginate())
        self.assertEqual([f["FileSystemId"] for p in pages
                          for f in p["FileSystems"]], [fs["FileSystemId"]])

    def test_export(self):
        m = self.api_mount()
        c = self.fsx(m)
        small = b"hello export\n"
        big = pattern_bytes(2 * MiB + 5, "export")
        self.write(m, "out/a.txt", small)
        self.write(m, "out/sub/b.bin", big)
        os.chmod(m.path("out/a.txt"), 0o640)
        self.write(m, "elsewhere.txt", b"not exported")
        self.assertEqual(m.state("out/a.txt"), "new")
        t = self.create(c, m, EXPORT, Paths=["out"],
                        ClientRequestToken="export-1",
                        Report={"Enabled": True,
                                "Path": "s3://%s/reports" % self.bucket,
                                "Format": "REPORT_CSV_20191124",
                                "Scope": "FAILED_FILES_ONLY"},
                        Tags=[{"Key": "team", "Value": "data eng"}])
        self.assertRegex(t["TaskId"], TASK_ID_RE)
        self.assertIn(t["Lifecycle"], ("PENDING", "EXECUTING", "SUCCEEDED"))
        self.assertEqual(t["Type"], EXPORT)
        self.assertEqual(t["FileSystemId"], self.fsid(m))
        self.assertEqual(t["Paths"], ["out"])
        self.assertIsInstance(t["CreationTime"], datetime.datetime)
        self.assertLess(abs(t["CreationTime"].timestamp() - time.time()), 60)
        self.assertEqual(t["ResourceARN"],
                         "arn:aws:fsx:us-east-1:000000000000:task/"
                         + t["TaskId"])
        self.assertEqual(t["Tags"], [{"Key": "team", "Value": "data eng"}])
        done = self.wait(c, t["TaskId"])
        self.assertEqual(done["Lifecycle"], "SUCCEEDED", done)
        st = done["Status"]
        self.assertEqual(st["FailedCount"], 0, done)
        self.assertEqual(st["TotalCount"], st["SucceededCount"])
        self.assertGreaterEqual(st["SucceededCount"], 2, done)
        self.assertIsInstance(done["StartTime"], datetime.datetime)
        self.assertGreaterEqual(done["EndTime"], done["StartTime"])
        self.assertNotIn("FailureDetails", done)

        o = self.s3.get_object(Bucket=self.bucket, Key="out/a.txt")
        self.assertEqual(o["Body"].read(), small)
        self.assertEqual(o["Metadata"]["file-permissions"], "0100640")
        o = self.s3.get_object(Bucket=self.bucket, Key="out/sub/b.bin")
        self.assertEqual(o["Body"].read(), big)
        keys = [x["Key"] for x in self.s3.list_objects_v2(
            Bucket=self.bucket).get("Contents", [])]
        self.assertNotIn("elsewhere.txt", keys)
        self.assertIn("reports/%s/failures.csv" % t["TaskId"], keys)
        self.assertEqual(m.state("out/a.txt"), "archived")
        self.assertEqual(m.state("elsewhere.txt"), "new")

    def test_import(self):
        self.put("in/old.txt", b"old")
        m = self.api_mount()
        c = self.fsx(m)
        self.put("in/new.txt", b"new object")
        self.put("in/deep/er.txt", b"deeper")
        self.put("other/skip.txt", b"outside the import paths")
        done = self.run_ok(c, m, IMPORT,
                           Paths=["s3://%s/in/" % self.bucket])
        self.assertEqual(done["Type"], IMPORT)
        self.assertEqual(done["Paths"], ["s3://%s/in/" % self.bucket])
        self.assertGreaterEqual(done["Status"]["SucceededCount"], 2, done)
        r, _, _ = child_read(m.path("in/new.txt"))
        self.assertEqual(r, {"ok": True, "md5": __import__("hashlib").md5(
            b"new object").hexdigest(), "len": 10})
        self.assertTrue(os.path.exists(m.path("in/deep/er.txt")))
        self.assertFalse(os.path.exists(m.path("other")))

    def test_release(self):
        body = pattern_bytes(3 * MiB, "rel")
        self.put("r/f.bin", body)
        self.put("r/g.bin", b"g" * 1000)
        m = self.api_mount()
        c = self.fsx(m)
        for rel in ("r/f.bin", "r/g.bin"):
            r, _, _ = child_read(m.path(rel))
            self.assertTrue(r["ok"], r)
        self.assertEqual(m.state("r/f.bin"), "archived")
        # recently accessed: not older than one day, nothing released
        done = self.run_ok(c, m, RELEASE, Paths=["r"], ReleaseConfiguration={
            "DurationSinceLastAccess": {"Unit": "DAYS", "Value": 1}})
        self.assertEqual(done["Status"]["TotalCount"], 0, done)
        self.assertEqual(m.state("r/f.bin"), "archived")
        done = self.run_ok(c, m, RELEASE, Paths=["r/f.bin"],
                           ReleaseConfiguration={"DurationSinceLastAccess": {
                               "Unit": "DAYS", "Value": 0}})
        self.assertEqual(done["Type"], RELEASE)
        self.assertEqual(done["ReleaseConfiguration"],
                         {"DurationSinceLastAccess": {"Unit": "DAYS",
                                                      "Value": 0}})
        self.assertEqual(done["Status"]["SucceededCount"], 1, done)
        self.assertEqual(m.state("r/f.bin"), "released")
        self.assertEqual(m.state("r/g.bin"), "archived")
        r, _, _ = child_read(m.path("r/f.bin"))
        self.assertEqual(r["len"], len(body))

    def test_auto_release(self):
        self.put("a/one.bin", pattern_bytes(2 * MiB, 1))
        self.put("a/two.bin", pattern_bytes(MiB, 2))
        m = self.api_mount()
        c = self.fsx(m)
        for rel in ("a/one.bin", "a/two.bin"):
            r, _, _ = child_read(m.path(rel))
            self.assertTrue(r["ok"], r)
        done = self.run_ok(c, m, AUTO_RELEASE, CapacityToRelease=1,
                           ClientRequestToken="auto-1")
        self.assertEqual(done["Type"], AUTO_RELEASE)
        self.assertEqual(done["CapacityToRelease"], 1)
        self.assertIn("ReleasedCapacity", done["Status"])
        self.assertEqual(m.state("a/one.bin"), "released")
        self.assertEqual(m.state("a/two.bin"), "released")
        # ReleasedBytes is a tidefs extra botocore drops: the control file
        ctl = self.read_ctl(m, "auto-1")
        self.assertEqual(ctl["Status"]["ReleasedCapacity"], 0)  # GiB
        self.assertGreaterEqual(ctl["Status"]["ReleasedBytes"], 3 * MiB, ctl)

    def test_client_request_token(self):
        m = self.api_mount()
        c = self.fsx(m)
        kw = dict(Paths=["x"], ClientRequestToken="idem-1",
                  Tags=[{"Key": "k", "Value": "v"}])
        t1 = self.create(c, m, RELEASE, **kw)
        t2 = self.create(c, m, RELEASE, **kw)
        self.assertEqual(t1["TaskId"], t2["TaskId"])
        for change in ({"Paths": ["y"]}, {"Tags": [{"Key": "k",
                                                    "Value": "w"}]}):
            bad = dict(kw, **change)
            with self.assertRaises(c.exceptions.IncompatibleParameterError):
                self.create(c, m, RELEASE, **bad)
        with self.assertRaises(c.exceptions.IncompatibleParameterError):
            self.create(c, m, EXPORT, **kw)
        # boto3 fills a fresh token per call: two identical calls, two tasks
        a = self.create(c, m, RELEASE, Paths=["x"])
        b = self.create(c, m, RELEASE, Paths=["x"])
        self.assertNotEqual(a["TaskId"], b["TaskId"])

    def test_pagination_and_filters(self):
        m = self.api_mount()
        c = self.fsx(m)
        fsid = self.fsid(m)
        ids = [self.create(c, m, RELEASE if i % 2 else EXPORT)["TaskId"]
               for i in range(6)]
        for i in ids:
            self.assertEqual(self.wait(c, i)["Lifecycle"], "SUCCEEDED")

        def pages(**kw):
            out, tokens, n = [], [], 0
            while True:
                r = c.describe_data_repository_tasks(MaxResults=2, **kw)
                self.assertLessEqual(len(r["DataRepositoryTasks"]), 2)
                out += [t["TaskId"] for t in r["DataRepositoryTasks"]]
                n += 1
                self.assertLess(n, 20, "pagination does not end")
                if "NextToken" not in r:
                    return out, n
                tokens.append(r["NextToken"])
                kw["NextToken"] = r["NextToken"]

        got, n = pages()
        self.assertEqual(sorted(got), sorted(ids))
        self.assertEqual(len(got), len(set(got)), got)
        self.assertGreaterEqual(n, 3)
        for filt in ([{"Name": "file-system-id", "Values": [fsid]}],
                     [{"Name": "task-lifecycle", "Values": ["SUCCEEDED"]}],
                     [{"Name": "task-lifecycle",
                       "Values": ["PENDING", "SUCCEEDED"]},
                      {"Name": "file-system-id",
                       "Values": [OTHER_FS, fsid]}]):
            got, _ = pages(Filters=filt)
            self.assertEqual(sorted(got), sorted(ids), filt)
        for filt in ([{"Name": "file-system-id", "Values": [OTHER_FS]}],
                     [{"Name": "task-lifecycle",
                       "Values": ["PENDING", "EXECUTING", "FAILED"]}],
                     [{"Name": "task-lifecycle", "Values": ["SUCCEEDED"]},
                      {"Name": "file-system-id", "Values": [OTHER_FS]}]):
            r = c.describe_data_repository_tasks(Filters=filt)
            self.assertEqual(r["DataRepositoryTasks"], [], filt)
            self.assertNotIn("NextToken", r)
        # TaskIds with paging
        got, _ = pages(TaskIds=ids[1:4])
        self.assertEqual(sorted(got), sorted(ids[1:4]))
        # a token from another query still lands inside the list
        r = c.describe_data_repository_tasks(MaxResults=5)
        self.assertEqual(len(r["DataRepositoryTasks"]), 5)
        r = c.describe_data_repository_tasks(NextToken=r["NextToken"])
        self.assertEqual(len(r["DataRepositoryTasks"]), 1)
        with self.assertRaises(c.exceptions.BadRequest):
            c.describe_data_repository_tasks(NextToken="bm90LWEtdG9rZW4=")

    def test_cancel_and_queue_limit(self):
        """S3 frozen: an export hangs EXECUTING, 99 more wait PENDING, the
        101st is ServiceLimitExceeded; cancel them all."""
        m = self.api_mount(retry_timeout=60)
        c = self.fsx(m)
        fsid = self.fsid(m)
        self.write(m, "big.bin", b"z" * MiB)
        self.moto.freeze()
        try:
            first = self.create(c, m, EXPORT, Paths=["big.bin"])
            self.wait(c, first["TaskId"], want=("EXECUTING",), timeout=20)
            pending = []
            for i in range(99):
                kw = {} if i % 2 else {"Paths": ["p%d" % i]}
                t = self.create(c, m, IMPORT if i % 2 else EXPORT, **kw)
                pending.append(t["TaskId"])
            with self.assertRaises(c.exceptions.ServiceLimitExceeded) as cm:
                self.create(c, m, EXPORT)
            self.assertIn("queue", str(cm.exception).lower())
            self.assertTrue(cm.exception.response.get("Limit"),
                            cm.exception.response)
            r = c.describe_data_repository_tasks(Filters=[
                {"Name": "task-lifecycle", "Values": ["PENDING"]}])
            self.assertEqual(len(r["DataRepositoryTasks"]), 99)
            self.assertEqual(sorted(t["TaskId"]
                                    for t in r["DataRepositoryTasks"]),
                             sorted(pending))
            for tid in pending:
                r = c.cancel_data_repository_task(TaskId=tid)
                self.assertEqual((r["TaskId"], r["Lifecycle"]),
                                 (tid, "CANCELED"))
            # room again
            extra = self.create(c, m, IMPORT)
            r = c.cancel_data_repository_task(TaskId=extra["TaskId"])
            self.assertEqual(r["Lifecycle"], "CANCELED")
            r = c.cancel_data_repository_task(TaskId=first["TaskId"])
            self.assertEqual(r["Lifecycle"], "CANCELING")
            self.assertEqual(self.describe_one(c, first["TaskId"])
                             ["Lifecycle"], "CANCELING")
        finally:
            self.moto.thaw()
        done = self.wait(c, first["TaskId"], timeout=60)
        self.assertEqual(done["Lifecycle"], "CANCELED", done)
        with self.assertRaises(c.exceptions.DataRepositoryTaskEnded):
            c.cancel_data_repository_task(TaskId=first["TaskId"])
        with self.assertRaises(c.exceptions.DataRepositoryTaskEnded):
            c.cancel_data_repository_task(TaskId=pending[0])
        filt = [{"Name": "task-lifecycle", "Values": ["CANCELED"]},
                {"Name": "file-system-id", "Values": [fsid]}]
        r = c.describe_data_repository_tasks(Filters=filt)
        self.assertEqual(len(r["DataRepositoryTasks"]), 100)  # a full page
        r2 = c.describe_data_repository_tasks(Filters=filt,
                                              NextToken=r["NextToken"])
        self.assertEqual(len(r2["DataRepositoryTasks"]), 1)
        self.assertNotIn("NextToken", r2)


# -------------------------------------------------------------- errors ----

class FsxErrors(ApiCase):

    def test_create_validation(self):
        """Each CreateDataRepositoryTask rule family → BadRequest naming the
        field (parameter validation off: the server must enforce it all)."""
        m = self.api_mount()
        c = self.fsx(m, validate=False)
        fsid = self.fsid(m)
        base = {"Type": EXPORT, "FileSystemId": fsid, "Report": NO_REPORT}
        rep = {"Enabled": True, "Path": "s3://%s/rep" % self.bucket,
               "Format": "REPORT_CSV_20191124", "Scope": "FAILED_FILES_ONLY"}
        drop = object()
        cases = [
            ("Type", {"Type": "BOGUS"}),
            ("Type", {"Type": drop}),
            ("Type", {"Type": "export_to_repository"}),
            ("Paths", {"Paths": ["p%d" % i for i in range(101)]}),
            ("Paths", {"Paths": ["a" * 4097]}),
            ("Paths", {"Paths": ["bad\nline"]}),
            ("Paths", {"Paths": ["bad\rline"]}),
            ("Paths", {"Paths": ["nul\x00byte"]}),
            ("Paths", {"Paths": ["sep\u2028arator"]}),
            ("Paths", {"Paths": ["nel\u0085"]}),
            ("FileSystemId", {"FileSystemId": drop}),
            ("FileSystemId", {"FileSystemId": "fs-1234567"}),
            ("FileSystemId", {"FileSystemId": "fs-0123456789ABCDEF"}),
            ("FileSystemId", {"FileSystemId": "fs-0123456789abcdef0123"}),
            ("FileSystemId", {"FileSystemId": "xx-0123456789abcdef"}),
            ("Report", {"Report": drop}),
            ("Enabled", {"Report": {}}),
            ("Path", {"Report": {"Enabled": True}}),
            ("Path", {"Report": dict(rep, Path="s3")}),
            ("Path", {"Report": dict(rep, Path="s3://other-bucket/r")}),
            ("Format", {"Report": dict(rep, Format="CSV")}),
            ("Format", {"Report": {k: v for k, v in rep.items()
                                   if k != "Format"}}),
            ("Scope", {"Report": dict(rep, Scope="ALL_FILES")}),
            ("ClientRequestToken", {"ClientRequestToken": ""}),
            ("ClientRequestToken", {"ClientRequestToken": "t" * 64}),
            ("ClientRequestToken", {"ClientRequestToken": "bad token!"}),
            ("ClientRequestToken", {"ClientRequestToken": "a/b"}),
            ("Tags", {"Tags": []}),
            ("Tags", {"Tags": [{"Key": "k%d" % i, "Value": ""}
                               for i in range(51)]}),
            ("Key", {"Tags": [{"Key": "", "Value": "v"}]}),
            ("Key", {"Tags": [{"Key": "k" * 129, "Value": "v"}]}),
            ("Key", {"Tags": [{"Value": "v"}]}),
            ("Value", {"Tags": [{"Key": "k", "Value": "v" * 257}]}),
            ("Value", {"Tags": [{"Key": "k", "Value": "semi;colon"}]}),
            ("Tags", {"Tags": [{"Key": "k", "Value": "1"},
                               {"Key": "k", "Value": "2"}]}),
            ("CapacityToRelease", {"CapacityToRelease": 5}),
            ("CapacityToRelease", {"Type": AUTO_RELEASE}),
            ("CapacityToRelease", {"Type": AUTO_RELEASE,
                                   "CapacityToRelease": 0}),
            ("CapacityToRelease", {"Type": AUTO_RELEASE,
                                   "CapacityToRelease": 2147483648}),
            ("CapacityToRelease", {"Type": AUTO_RELEASE,
                                   "CapacityToRelease": -1}),
            ("CapacityToRelease", {"Type": AUTO_RELEASE,
                                   "CapacityToRelease": "many"}),
            ("ReleaseConfiguration", {"ReleaseConfiguration": {
                "DurationSinceLastAccess": {"Unit": "DAYS", "Value": 1}}}),
            ("Unit", {"Type": RELEASE, "ReleaseConfiguration": {
                "DurationSinceLastAccess": {"Unit": "HOURS", "Value": 1}}}),
            ("Value", {"Type": RELEASE, "ReleaseConfiguration": {
                "DurationSinceLastAccess": {"Unit": "DAYS", "Value": -1}}}),
        ]
        for field, change in cases:
            req = dict(base)
            for k, v in change.items():
                if v is drop:
                    req.pop(k, None)
                else:
                    req[k] = v
            with self.subTest(field=field, change=repr(change)[:80]):
                with self.assertRaises(c.exceptions.BadRequest) as cm:
                    c.create_data_repository_task(**req)
                msg = cm.exception.response["Error"]["Message"]
                self.assertIn(field.lower(), msg.lower(), msg)
                self.assertEqual(cm.exception.response["ResponseMetadata"]
                                 ["HTTPStatusCode"], 400)
        # nothing above made a task
        self.assertEqual(c.describe_data_repository_tasks()
                         ["DataRepositoryTasks"], [])
        with self.assertRaises(c.exceptions.FileSystemNotFound):
            c.create_data_repository_task(**dict(base, FileSystemId=OTHER_FS))
        # unknown members and wrong JSON shapes cannot come from botocore:
        # signed raw bodies
        for body in (dict(base, Bogus=1), [base], "just a string", 42,
                     dict(base, Report=[1]), dict(base, Paths="p"),
                     dict(base, Paths=[1]), dict(base, Type=None)):
            with self.subTest(raw=repr(body)[:60]):
                self.assertApiError("BadRequest", 400, self.signed(
                    m, "CreateDataRepositoryTask", json.dumps(body).encode()))
        self.assertServing(m)

    def test_describe_and_cancel_validation(self):
        m = self.api_mount()
        c = self.fsx(m, validate=False)
        ids = ["task-%017x" % i for i in range(51)]
        cases = [
            ("TaskIds", {"TaskIds": ids}),
            ("TaskIds", {"TaskIds": ["task-1"]}),
            ("Filters", {"Filters": [{"Name": "task-lifecycle",
                                      "Values": ["PENDING"]}] * 4}),
            ("Name", {"Filters": [{"Name": "bogus", "Values": ["x"]}]}),
            ("Values", {"Filters": [{"Name": "file-system-id",
                                     "Values": ["fs-%016x" % i
                                                for i in range(21)]}]}),
            ("Values", {"Filters": [{"Name": "task-lifecycle",
                                             "Values": ["SLEEPING"]}]}),
            ("MaxResults", {"MaxResults": 0}),
            ("MaxResults", {"MaxResults": -3}),
            ("NextToken", {"NextToken": ""}),
            ("NextToken", {"NextToken": "x" * 256}),
            ("NextToken", {"NextToken": "!!not base64!!"}),
        ]
        for field, req in cases:
            with self.subTest(field=field, req=repr(req)[:80]):
                with self.assertRaises(c.exceptions.BadRequest) as cm:
                    c.describe_data_repository_tasks(**req)
                msg = cm.exception.response["Error"]["Message"]
                self.assertIn(field.lower(), msg.lower(), msg)
        # filters that match nothing here are not errors
        for name in ("data-repository-association-id", "file-cache-id"):
            r = c.describe_data_repository_tasks(
                Filters=[{"Name": name, "Values": ["dra-0123456789abcdef0"]}])
            self.assertEqual(r["DataRepositoryTasks"], [])
        with self.assertRaises(c.exceptions.DataRepositoryTaskNotFound):
            c.describe_data_repository_tasks(TaskIds=["task-0123456789abcdef0"])
        for bad in ("nope", "task-XYZ", "", "task-" + "0" * 300):
            with self.subTest(cancel=bad[:20]):
                with self.assertRaises(c.exceptions.BadRequest):
                    c.cancel_data_repository_task(TaskId=bad)
        with self.assertRaises(c.exceptions.BadRequest):
            c.cancel_data_repository_task()
        with self.assertRaises(c.exceptions.DataRepositoryTaskNotFound):
            c.cancel_data_repository_task(TaskId="task-0123456789abcdef0")
        t = self.run_ok(self.fsx(m), m, RELEASE)
        with self.assertRaises(c.exceptions.DataRepositoryTaskEnded) as cm:
            c.cancel_data_repository_task(TaskId=t["TaskId"])
        self.assertIn(t["TaskId"], str(cm.exception))
        self.assertServing(m)

    def test_unsupported_operations(self):
        m = self.api_mount()
        c = self.fsx(m)
        calls = [
            lambda: c.describe_backups(),
            lambda: c.create_backup(FileSystemId=self.fsid(m)),
            lambda: c.delete_file_system(FileSystemId=self.fsid(m)),
            lambda: c.list_tags_for_resource(ResourceARN="arn:aws:fsx:x"),
        ]
        for call in calls:
            with self.assertRaises(ClientError) as cm:
                call()
            err = cm.exception.response["Error"]
            self.assertIn(err["Code"], ("InvalidAction",
                                        "UnsupportedOperation",
                                        "UnknownOperationException"))
            self.assertEqual(cm.exception.response["ResponseMetadata"]
                             ["HTTPStatusCode"], 400)
        # no target, a foreign service's target, wrong content type
        self.assertApiError("UnknownOperationException", 400, self.raw(
            m, b"{}", sign(m.api_url + "/", b"{}", "ListTables",
                           extra={"X-Amz-Target":
                                  "DynamoDB_20120810.ListTables"})))
        self.assertApiError("SerializationException", 400, self.raw(
            m, b"{}", sign(m.api_url + "/", b"{}", "DescribeFileSystems",
                           ctype="text/plain")))
        st, body = self.raw(m, None, {}, method="GET")
        self.assertIn(st, (403, 404, 405), body)
        self.assertServing(m)


# ----------------------------------------------------------------- CLI ----

class FsxCli(ApiCase):

    def aws(self, m, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID,
                   AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
                   AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.tmp, "none"),
                   AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
        return subprocess.run(["aws", "fsx"] + list(args) + [
            "--endpoint-url", m.api_url, "--output", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            universal_newlines=True, timeout=60)

    def aws_json(self, m, *args):
        r = self.aws(m, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_cli_create_describe(self):
        m = self.api_mount()
        fsid = self.fsid(m)
        self.write(m, "cli/data.txt", b"from the cli")
        t = self.aws_json(m, "create-data-repository-task",
                          "--file-system-id", fsid,
                          "--type", EXPORT, "--paths", "cli",
                          "--report", "Enabled=false",
                          "--client-request-token", "cli-export-1")
        t = t["DataRepositoryTask"]
        self.assertRegex(t["TaskId"], TASK_ID_RE)
        self.assertEqual(t["Type"], EXPORT)
        self.wait(self.fsx(m), t["TaskId"])
        d = self.aws_json(m, "describe-data-repository-tasks",
                          "--task-ids", t["TaskId"])
        self.assertEqual(len(d["DataRepositoryTasks"]), 1)
        self.assertEqual(d["DataRepositoryTasks"][0]["Lifecycle"],
                         "SUCCEEDED")
        o = self.s3.get_object(Bucket=self.bucket, Key="cli/data.txt")
        self.assertEqual(o["Body"].read(), b"from the cli")
        # paging by hand: --max-results / --next-token
        for _ in range(3):
            self.create(self.fsx(m), m, RELEASE)
        d = self.aws_json(m, "describe-data-repository-tasks",
                          "--max-results", "3")
        self.assertEqual(len(d["DataRepositoryTasks"]), 3)
        d2 = self.aws_json(m, "describe-data-repository-tasks",
                           "--next-token", d["NextToken"])
        self.assertEqual(len(d2["DataRepositoryTasks"]), 1)
        self.assertNotIn("NextToken", d2)
        self.assertNotIn(d2["DataRepositoryTasks"][0]["TaskId"],
                         [t["TaskId"] for t in d["DataRepositoryTasks"]])
        d = self.aws_json(m, "describe-file-systems")
        self.assertEqual(d["FileSystems"][0]["FileSystemId"], fsid)
        r = self.aws(m, "create-data-repository-task", "--file-system-id",
                     fsid, "--type", AUTO_RELEASE, "--report",
                     "Enabled=false")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("BadRequest", r.stderr)
        self.assertIn("CapacityToRelease", r.stderr)
        r = self.aws(m, "cancel-data-repository-task", "--task-id",
                     "task-0123456789abcdef0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("DataRepositoryTaskNotFound", r.stderr)


# ------------------------------------------------------------ security ----

class FsxSecurity(ApiCase):

    def test_bad_credentials_refused(self):
        m = self.api_mount()
        cases = [
            (dict(secret="wrong-secret"), "InvalidSignatureException"),
            (dict(key="AKIDUNKNOWN0000", secret=SECRET),
             "UnrecognizedClientException"),
            (dict(region="eu-west-1"), "InvalidSignatureException"),
            (dict(key=KEY_ID2, secret=SECRET), "InvalidSignatureException"),
        ]
        for kw, code in cases:
            c = self.fsx(m, **kw)
            for call in (c.describe_file_systems,
                         lambda: c.create_data_repository_task(
                             Type=RELEASE, FileSystemId=self.fsid(m),
                             Report=NO_REPORT)):
                with self.subTest(kw=kw):
                    with self.assertRaises(ClientError) as cm:
                        call()
                    self.assertEqual(cm.exception.response["Error"]["Code"],
                                     code, cm.exception.response)
        # the second key pair of the credentials file works
        c2 = self.fsx(m, key=KEY_ID2, secret=SECRET2)
        self.assertEqual(c2.describe_file_systems()["FileSystems"][0]
                         ["FileSystemId"], self.fsid(m))
        self.assertEqual(self.fsx(m).describe_data_repository_tasks()
                         ["DataRepositoryTasks"], [])
        self.assertServing(m)

    def test_signature_checks(self):
        m = self.api_mount()
        url = m.api_url + "/"
        body = json.dumps({"Type": RELEASE, "FileSystemId": self.fsid(m),
                           "Report": NO_REPORT}).encode()
        op = "CreateDataRepositoryTask"
        # no Authorization at all
        self.assertApiError("MissingAuthenticationTokenException", 403,
                            self.raw(m, body, {"Content-Type": CT,
                                               "X-Amz-Target": TARGET + op}))
        # garbage Authorization
        h = sign(url, body, op)
        h["Authorization"] = "AWS4-HMAC-SHA256 nonsense"
        self.assertApiError("IncompleteSignatureException", 400,
                            self.raw(m, body, h))
        h = sign(url, body, op)
        h["Authorization"] = "Basic dXNlcjpwYXNz"
        self.assertApiError("IncompleteSignatureException", 400,
                            self.raw(m, body, h))
        # 10 minutes old, 10 minutes ahead
        for delta in (-600, 600):
            with self.subTest(skew=delta):
                h = sign(url, body, op, when=utcnow()
                         + datetime.timedelta(seconds=delta))
                self.assertApiError("InvalidSignatureException", 400,
                                    self.raw(m, body, h), "expired")
        # a minute off is within the allowed skew
        h = sign(url, body, op, when=utcnow()
                 - datetime.timedelta(seconds=60))
        st, r = self.raw(m, body, h)
        self.assertEqual(st, 200, r)
        # service s3 instead of fsx
        self.assertApiError("InvalidSignatureException", 400, self.raw(
            m, body, sign(url, body, op, service="s3")))
        # tampered body, tampered signed header, dropped signed header
        h = sign(url, body, op)
        self.assertApiError("InvalidSignatureException", 400, self.raw(
            m, body.replace(RELEASE.encode(), EXPORT.encode()), h))
        h = sign(url, body, op)
        h["X-Amz-Target"] = TARGET + "CancelDataRepositoryTask"
        self.assertApiError("InvalidSignatureException", 400,
                            self.raw(m, body, h))
        h = sign(url, body, op)
        h["X-Amz-Date"] = (utcnow() + datetime.timedelta(seconds=2)
                           ).strftime("%Y%m%dT%H%M%SZ")
        self.assertApiError("InvalidSignatureException", 400,
                            self.raw(m, body, h))
        h = sign(url, body, op, extra={"X-Tidefs-Extra": "signed"})
        h.pop("X-Tidefs-Extra")
        st, r = self.raw(m, body, h)
        self.assertIn(r["__type"], ("IncompleteSignatureException",
                                    "InvalidSignatureException"), r)
        # signed for another Host
        h = sign("http://127.0.0.1:%d/" % (m.api_port + 1), body, op)
        self.assertApiError("InvalidSignatureException", 400,
                            self.raw(m, body, h))
        # none of the refused creates made a task; only the skew-ok one did
        tasks = self.fsx(m).describe_data_repository_tasks()[
            "DataRepositoryTasks"]
        self.assertEqual(len(tasks), 1, tasks)
        self.assertServing(m)

    def test_replay(self):
        m = self.api_mount()
        url = m.api_url + "/"
        body = json.dumps({"Type": RELEASE, "FileSystemId": self.fsid(m),
                           "Report": NO_REPORT}).encode()
        h = sign(url, body, "CreateDataRepositoryTask")
        st, first = self.raw(m, body, h)
        self.assertEqual(st, 200, first)
        self.assertApiError("InvalidSignatureException", 400,
                            self.raw(m, body, h), "replay")
        # also a while later, on a new connection
        time.sleep(1.2)
        self.assertApiError("InvalidSignatureException", 400,
                            self.raw(m, body, h))
        tasks = self.fsx(m).describe_data_repository_tasks()[
            "DataRepositoryTasks"]
        self.assertEqual([t["TaskId"] for t in tasks],
                         [first["DataRepositoryTask"]["TaskId"]])
        self.assertIn("replay", m.log_text())
        # a create with a ClientRequestToken is idempotent: its replay
        # returns the same task (what a botocore retry within a second is)
        tb = json.dumps({"Type": RELEASE, "FileSystemId": self.fsid(m),
                         "Report": NO_REPORT,
                         "ClientRequestToken": "replay-tok"}).encode()
        h = sign(url, tb, "CreateDataRepositoryTask")
        st, a = self.raw(m, tb, h)
        self.assertEqual(st, 200, a)
        st, b = self.raw(m, tb, h)
        self.assertEqual(st, 200, b)
        self.assertEqual(a["DataRepositoryTask"]["TaskId"],
                         b["DataRepositoryTask"]["TaskId"])
        # a cancel is idempotent: the replay gets the real answer
        cb = json.dumps({"TaskId": a["DataRepositoryTask"]["TaskId"]}
                        ).encode()
        h = sign(url, cb, "CancelDataRepositoryTask")
        for _ in range(2):
            st, r = self.raw(m, cb, h)
            self.assertIn(r.get("__type"), (None, "DataRepositoryTaskEnded"),
                          r)
        # read-only calls are not replay-checked: boto3 signs no nonce, so
        # identical Describe calls within one second carry one signature
        c = self.fsx(m)
        for _ in range(5):
            c.describe_data_repository_tasks()
            c.describe_file_systems()
        h = sign(url, b"{}", "DescribeFileSystems")
        for _ in range(2):
            st, r = self.raw(m, b"{}", h)
            self.assertEqual(st, 200, r)
        self.assertServing(m)

    def test_malformed_and_oversize_bodies(self):
        m = self.api_mount()
        url = m.api_url + "/"
        for op in ("CreateDataRepositoryTask", "DescribeDataRepositoryTasks",
                   "CancelDataRepositoryTask"):
            for body in (b"{not json", b"", b"\xff\xfe{}", b"{}" * 3,
                         b'{"Type": "EXPORT_TO_REPOSITORY"', b"[" * 5000,
                         b'{"a": "\\ud800"}', b"null"):
                with self.subTest(op=op, body=body[:20]):
                    if op == "DescribeDataRepositoryTasks" and body == b"":
                        continue  # an empty body is {} for a describe
                    self.assertApiError("BadRequest", 400, self.raw(
                        m, body, sign(url, body, op)))
        # 2 MiB, declared with Content-Length: refused without a crash
        big = b'{"Paths": ["' + b"a" * (2 * MiB) + b'"]}'
        h = sign(url, big, "CreateDataRepositoryTask")
        st, body = self.raw_socket(m, big, h)
        self.assertEqual(st, 413, body)
        # 2 MiB chunked (no Content-Length)
        h = sign(url, big, "CreateDataRepositoryTask")
        conn = http.client.HTTPConnection("127.0.0.1", m.api_port, timeout=20)
        try:
            conn.request("POST", "/", body=iter(
                [big[i:i + 65536] for i in range(0, len(big), 65536)]),
                headers=h, encode_chunked=True)
            r = conn.getresponse()
            self.assertEqual(r.status, 413, r.read())
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us: refused too
        finally:
            conn.close()
        # a body just under the limit is read and judged
        ok = json.dumps({"Type": EXPORT, "FileSystemId": self.fsid(m),
                         "Report": NO_REPORT,
                         "Paths": ["p" * 4000] * 100}).encode()
        self.assertLess(len(ok), MiB)
        st, r = self.raw(m, ok, sign(url, ok, "CreateDataRepositoryTask"))
        self.assertEqual(st, 200, r)
        self.assertServing(m)

    def raw_socket(self, m, body, headers):
        """POST over a plain socket, tolerating the server closing early;
        returns (status, parsed body) or (None, error)."""
        s = socket.create_connection(("127.0.0.1", m.api_port), timeout=20)
        head = "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % m.api_port
        head += "".join("%s: %s\r\n" % kv for kv in headers.items())
        head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        data = b""
        try:
            s.sendall(head.encode())
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break
                data += b
        finally:
            s.close()
        if not data:
            return None, "connection closed without a response"
        status = int(data.split(b" ", 2)[1])
        return status, parse_body(data.split(b"\r\n\r\n", 1)[1])

    def test_limits_headers_connections(self):
        m = self.api_mount()
        url = m.api_url + "/"
        # a 200 KiB header: refused by the HTTP layer, no crash
        h = sign(url, b"{}", "DescribeFileSystems",
                 extra={"X-Junk": "j" * (200 * 1024)})
        try:
            st, _ = self.raw(m, b"{}", h)
            self.assertGreaterEqual(st, 400)
        except (ConnectionError, http.client.HTTPException):
            pass
        # many idle connections, then closed: still serving
        socks = []
        try:
            for _ in range(100):
                try:
                    socks.append(socket.create_connection(
                        ("127.0.0.1", m.api_port), timeout=5))
                except OSError:
                    break
        finally:
            for s in socks:
                s.close()
        time.sleep(0.2)
        # several requests on one keep-alive connection
        conn = http.client.HTTPConnection("127.0.0.1", m.api_port, timeout=10)
        try:
            for i in range(3):
                b = json.dumps({"MaxResults": i + 1}).encode()
                conn.request("POST", "/", body=b, headers=sign(
                    url, b, "DescribeDataRepositoryTasks"))
                r = conn.getresponse()
                self.assertEqual(r.status, 200, r.read())
                r.read()
        finally:
            conn.close()
        self.assertServing(m)


# ------------------------------------------------------- control files ----

class FsxControl(ApiCase):

    def test_api_task_visible_as_control_file(self):
        m = self.api_mount()
        c = self.fsx(m)
        self.write(m, "d/f.txt", b"ctl")
        t = self.create(c, m, EXPORT, Paths=["d"],
                        ClientRequestToken="api-made-1")
        self.assertIn("api-made-1", os.listdir(m.path(".tidefs", "tasks")))
        ctl = self.read_ctl(m, "api-made-1")
        self.assertEqual(ctl["TaskId"], t["TaskId"])
        done = self.wait(c, t["TaskId"])
        ctl = self.read_ctl(m, "api-made-1")
        self.assertEqual(ctl["Lifecycle"], done["Lifecycle"])
        self.assertEqual(ctl["Status"]["SucceededCount"],
                         done["Status"]["SucceededCount"])
        # a task without an explicit token: boto3's generated one names it
        t2 = self.create(c, m, RELEASE)
        names = os.listdir(m.path(".tidefs", "tasks"))
        found = [n for n in names if n != "api-made-1"
                 and self.read_ctl(m, n)["TaskId"] == t2["TaskId"]]
        self.assertEqual(len(found), 1, names)

    def test_control_file_task_visible_in_describe(self):
        m = self.api_mount()
        c = self.fsx(m)
        self.write(m, "e/f.txt", b"by control file")
        with open(m.path(".tidefs", "tasks", "ctl-made-1"), "w") as f:
            f.write(json.dumps({"Type": EXPORT, "Paths": ["e"]}))
        ctl = self.read_ctl(m, "ctl-made-1")
        self.assertRegex(ctl["TaskId"], TASK_ID_RE)
        d = self.describe_one(c, ctl["TaskId"])
        self.assertEqual(d["Type"], EXPORT)
        self.assertEqual(d["FileSystemId"], self.fsid(m))
        self.assertEqual(d["Paths"], ["e"])
        done = self.wait(c, ctl["TaskId"])
        self.assertEqual(done["Lifecycle"], "SUCCEEDED", done)
        all_ids = [t["TaskId"] for t in c.describe_data_repository_tasks()
                   ["DataRepositoryTasks"]]
        self.assertIn(ctl["TaskId"], all_ids)
        # the API with the control file's name as token and the same
        # request returns that task; different parameters do not
        same = self.create(c, m, EXPORT, Paths=["e"],
                           ClientRequestToken="ctl-made-1")
        self.assertEqual(same["TaskId"], ctl["TaskId"])
        with self.assertRaises(c.exceptions.IncompatibleParameterError):
            self.create(c, m, EXPORT, Paths=["other"],
                        ClientRequestToken="ctl-made-1")
        # cancel through the control tree ends a task the API sees
        with self.assertRaises(c.exceptions.DataRepositoryTaskEnded):
            c.cancel_data_repository_task(TaskId=ctl["TaskId"])


# --------------------------------------------------------- unix socket ----

class FsxUnixSocket(ApiCase):

    def setUp(self):
        super().setUp()
        d = tempfile.mkdtemp(prefix="tidefs-api-", dir="/tmp")
        self.addCleanup(lambda: os.rmdir(d) if os.path.isdir(d) and
                        not os.listdir(d) else None)
        self.sock_path = os.path.join(d, "api.sock")

    def unix(self, op, body, conn_timeout=10):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        h = sign("http://localhost/", body, op)
        conn = UnixHTTPConnection(self.sock_path, timeout=conn_timeout)
        try:
            conn.request("POST", "/", body=body, headers=h)
            r = conn.getresponse()
            return r.status, parse_body(r.read())
        finally:
            conn.close()

    def test_unix_socket_listener(self):
        m = self.api_mount(listen="unix:" + self.sock_path)
        st = os.stat(self.sock_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        fsid = self.fsid(m)
        status, r = self.unix("DescribeFileSystems", {})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["FileSystems"][0]["FileSystemId"], fsid)
        status, r = self.unix("CreateDataRepositoryTask", {
            "Type": RELEASE, "FileSystemId": fsid, "Report": NO_REPORT,
            "ClientRequestToken": "over-unix"})
        self.assertEqual(status, 200, r)
        tid = r["DataRepositoryTask"]["TaskId"]
        self.assertEqual(self.read_ctl(m, "over-unix")["TaskId"], tid)
        status, r = self.unix("DescribeDataRepositoryTasks",
                              {"TaskIds": [tid]})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["DataRepositoryTasks"][0]["TaskId"], tid)
        status, r = self.unix("CreateDataRepositoryTask", {"Type": "X"})
        self.assertEqual((status, r["__type"]), (400, "BadRequest"))
        # unsigned over the socket is refused too
        conn = UnixHTTPConnection(self.sock_path)
        conn.request("POST", "/", body=b"{}", headers={
            "Content-Type": CT, "X-Amz-Target": TARGET + "DescribeFileSystems"})
        r = conn.getresponse()
        self.assertEqual(r.status, 403)
        conn.close()
        self.assertEqual(m.unmount(), 0)
        self.assertFalse(os.path.exists(self.sock_path))

    def test_unix_path_is_not_clobbered(self):
        with open(self.sock_path, "w") as f:
            f.write("precious")
        m = self.api_mount(listen="unix:" + self.sock_path, start=False)
        with self.assertRaises(MountError):
            m.start(timeout=30)
        with open(self.sock_path) as f:
            self.assertEqual(f.read(), "precious")
        self.assertFalse(m.is_mounted())
        os.unlink(self.sock_path)
        # a stale socket (no listener) is replaced
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.sock_path)
        s.close()
        m = self.api_mount(listen="unix:" + self.sock_path)
        status, r = self.unix("DescribeFileSystems", {})
        self.assertEqual(status, 200, r)
        # a second mount may not steal the live socket
        m2 = self.api_mount(listen="unix:" + self.sock_path, start=False,
                            bucket=self.bucket)
        with self.assertRaises(MountError):
            m2.start(timeout=30)
        status, r = self.unix("DescribeFileSystems", {})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["FileSystems"][0]["FileSystemId"], self.fsid(m))


# ------------------------------------------------------------- startup ----

class FsxStartup(ApiCase):

    def expect_fail(self, args, *words):
        m = self.mount(args=args, start=False)
        with self.assertRaises(MountError) as cm:
            m.start(timeout=30)
        self.assertFalse(m.is_mounted())
        text = str(cm.exception) + m.log_text()
        self.assertTrue(any(w.lower() in text.lower() for w in words),
                        text[-2000:])

    def test_api_start_failures(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            self.expect_fail(["--api-listen", "127.0.0.1:%d" % port,
                              "--api-credentials", self.creds],
                             "address already in use", "cannot serve")
        finally:
            busy.close()
        self.expect_fail(["--api-listen", "127.0.0.1:%d" % free_port(),
                          "--api-credentials",
                          os.path.join(self.tmp, "missing")],
                         "credentials")
        empty = os.path.join(self.tmp, "empty-creds")
        with open(empty, "w") as f:
            f.write("[default]\nregion = us-east-1\n")
        self.expect_fail(["--api-listen", "127.0.0.1:%d" % free_port(),
                          "--api-credentials", empty], "key pair")
        self.expect_fail(["--api-listen", "nowhere",
                          "--api-credentials", self.creds], "api-listen")
        self.expect_fail(["--api-listen", "127.0.0.1:%d" % free_port()],
                         "api-credentials")

    def test_ipv6_loopback(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            port = s.getsockname()[1]
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        m = self.api_mount(listen="[::1]:%d" % port)
        m.api_url = "http://[::1]:%d" % port
        r = self.fsx(m).describe_file_systems()
        self.assertEqual(r["FileSystems"][0]["FileSystemId"], self.fsid(m))


if __name__ == "__main__":
    unittest.main()
