# SPDX-License-Identifier: MIT
"""tidectl against a real mount: every command, JSON and --human output,
exit codes (0 ok, 1 operation failed, 2 usage) and one-line errors.

The binary is $TIDEFS_BUILD/cli/tidectl (ctest sets TIDEFS_BUILD), else
../../build/cli/tidectl.
"""

import json
import os
import subprocess
import unittest

from tidefs_test import REPO, STATS_KEYS, TidefsTestCase, child_read


def tidectl_bin():
    build = os.environ.get("TIDEFS_BUILD") or os.path.join(REPO, "build")
    return os.path.abspath(os.path.join(build, "cli", "tidectl"))


FINAL = ("SUCCEEDED", "FAILED", "CANCELED")


class TidectlCase(TidefsTestCase):
    TEST_TIMEOUT = 120

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(tidectl_bin()),
                        "tidectl not built at %s" % tidectl_bin())

    def tidectl(self, *args, timeout=60):
        """Run tidectl; returns CompletedProcess with str stdout/stderr."""
        return subprocess.run([tidectl_bin()] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout,
                              universal_newlines=True)

    def ok(self, *args, **kw):
        r = self.tidectl(*args, **kw)
        self.assertEqual(r.returncode, 0, "tidectl %s: rc %d, stderr %r"
                         % (args, r.returncode, r.stderr))
        return r

    def ok_json(self, *args, **kw):
        return json.loads(self.ok(*args, **kw).stdout)

    def assertFails(self, rc, r, *words):
        """Exit code rc, exactly one stderr line 'tidectl: …' naming one of
        words (case-insensitive)."""
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        self.assertEqual(r.returncode, rc, "rc %d, want %d; stderr %r"
                         % (r.returncode, rc, r.stderr))
        self.assertEqual(len(lines), 1, "want one stderr line: %r" % r.stderr)
        self.assertTrue(lines[0].startswith("tidectl: "), lines[0])
        if words:
            self.assertTrue(any(w.lower() in lines[0].lower() for w in words),
                            "%r names none of %r" % (lines[0], words))
        return lines[0]

    def write(self, m, rel, data):
        with open(m.path(rel), "wb") as f:
            f.write(data)

    def wait_final(self, m, task_id, timeout=60):
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.ok_json("describe", m.mountpoint, task_id)
            t = t["DataRepositoryTasks"][0]
            if t["Lifecycle"] in FINAL:
                return t
            time.sleep(0.2)
        self.fail("task %s did not end in %ds" % (task_id, timeout))


class Usage(TidectlCase):
    """No mount needed beyond a plain directory."""

    def test_help_version(self):
        r = self.ok("--help")
        self.assertIn("create-task", r.stdout)
        self.assertIn("root directory of a tidefs mount", r.stdout)
        self.assertEqual(self.ok("stats", "--help").stdout, r.stdout)
        self.assertRegex(self.ok("--version").stdout, r"^tidectl \d+\.\d+")

    def test_usage_errors_exit_2(self):
        for args, words in (
                ((), ("COMMAND",)),
                (("frobnicate",), ("unknown command",)),
                (("create-task", self.tmp, "--type", "bogus"),
                 ("task type",)),
                (("create-task", self.tmp), ("--type",)),
                (("create-task", self.tmp, "--type", "export", "--token",
                  "a/b"), ("token",)),
                (("create-task", self.tmp, "--type", "auto-release",
                  "--capacity-to-release", "lots"), ("whole number",)),
                (("stats",), ("MOUNT",)),
                (("stats", self.tmp, "--frob"), ("unknown option",)),
                (("cancel", self.tmp), ("MOUNT TASK",)),
                (("state",), ("FILE",))):
            with self.subTest(args=args):
                self.assertFails(2, self.tidectl(*args), *words)

    def test_not_a_tidefs_mount(self):
        for cmd in (("stats", self.tmp), ("describe", self.tmp),
                    ("cancel", self.tmp, "task-0123456789abcdef0"),
                    ("create-task", self.tmp, "--type", "export")):
            with self.subTest(cmd=cmd[0]):
                self.assertFails(1, self.tidectl(*cmd), "not a tidefs mount")
        self.assertFails(1, self.tidectl("stats", self.tmp + "/nope"),
                         "no such file")
        f = os.path.join(self.tmp, "plain")
        open(f, "w").close()
        r = self.tidectl("state", f)
        self.assertFails(1, r, "not in a tidefs mount")
        self.assertEqual(json.loads(r.stdout)[0]["Path"], f)


class Commands(TidectlCase):
    def setUp(self):
        super().setUp()
        self.put("a.txt", b"hello")
        self.put("d/b.bin", b"x" * 5000)
        self.m = self.mount()

    def test_stats(self):
        m = self.m
        s = self.ok_json("stats", m.mountpoint)
        for k in STATS_KEYS:
            self.assertIn(k, s)
        self.assertTrue(s["file_system_id"].startswith("fs-"))
        self.assertIs(s["safe_to_unmount"], True)
        self.assertEqual(s["unexported_files"], 0)
        h = self.ok("stats", m.mountpoint, "--human").stdout
        self.assertIn(s["file_system_id"], h)
        self.assertRegex(h, r"Safe to unmount\s+yes")
        self.write(m, "new.txt", b"fresh data")
        s = self.ok_json("stats", m.mountpoint)
        self.assertIs(s["safe_to_unmount"], False)
        self.assertGreaterEqual(s["unexported_files"], 1)
        h = self.ok("--human", "stats", m.mountpoint).stdout
        self.assertRegex(h, r"Safe to unmount\s+no: \d+ files")

    def test_stats_inside_mount_is_not_root(self):
        self.assertFails(1, self.tidectl("stats", self.m.path("d")),
                         "not its root")

    def test_state(self):
        m = self.m
        st = self.ok_json("state", m.path("a.txt"), m.path("d", "b.bin"))
        self.assertEqual([s["State"] for s in st], ["released", "released"])
        self.assertEqual([s["Pinned"] for s in st], [False, False])
        self.assertEqual(st[0]["Path"], m.path("a.txt"))
        res, _, _ = child_read(m.path("a.txt"))
        self.assertTrue(res["ok"])
        st = self.ok_json("state", m.path("a.txt"))
        self.assertEqual(st[0]["State"], "archived")
        self.write(m, "n.txt", b"n")
        h = self.ok("state", "--human", m.path("n.txt")).stdout
        self.assertRegex(h, r"(?m)^new\s+no\s+%s$" % m.path("n.txt"))
        r = self.tidectl("state", m.path("a.txt"), m.path("missing"))
        self.assertFails(1, r, "no such file")
        st = json.loads(r.stdout)
        self.assertEqual(st[0]["State"], "archived")
        self.assertIn("Error", st[1])

    def test_export_wait(self):
        m = self.m
        self.write(m, "out.txt", b"exported by tidectl")
        r = self.ok("create-task", m.mountpoint, "--type", "export",
                    "--wait")
        t = json.loads(r.stdout)["DataRepositoryTask"]
        self.assertEqual(t["Lifecycle"], "SUCCEEDED")
        self.assertEqual(t["Type"], "EXPORT_TO_REPOSITORY")
        self.assertRegex(t["TaskId"], r"^task-[0-9a-f]{17}$")
        self.assertGreaterEqual(t["Status"]["SucceededCount"], 1)
        self.assertTrue(t["Name"].startswith("tidectl-"))
        body = self.s3.get_object(Bucket=self.bucket, Key="out.txt")
        self.assertEqual(body["Body"].read(), b"exported by tidectl")
        self.assertEqual(m.state("out.txt"), "archived")
        s = self.ok_json("stats", m.mountpoint)
        self.assertIs(s["safe_to_unmount"], True,
                      "after a successful export of everything: "
                      "unexported_files=%s, states=%s, mount root state %s"
                      % (s["unexported_files"], s["states"], m.state()))
        # The control file is what tidectl wrote to.
        self.assertIn(t["Name"], os.listdir(m.path(".tidefs", "tasks")))

    def test_export_paths_human(self):
        m = self.m
        os.mkdir(m.path("sub"))
        self.write(m, "sub/f1", b"1")
        self.write(m, "top", b"2")
        r = self.ok("create-task", m.mountpoint, "--type",
                    "EXPORT_TO_REPOSITORY", "--paths", "sub", "--token",
                    "only-sub", "--wait", "--human")
        self.assertRegex(r.stdout, r"Lifecycle\s+SUCCEEDED")
        self.assertRegex(r.stdout, r"Name\s+only-sub")
        self.assertEqual(m.state("sub", "f1"), "archived")
        self.assertEqual(m.state("top"), "new")

    def test_describe(self):
        m = self.m
        t1 = self.ok_json("create-task", m.mountpoint, "--type", "export",
                          "--token", "t1", "--wait")["DataRepositoryTask"]
        t2 = self.ok_json("create-task", m.mountpoint, "--type", "import",
                          "--token", "t2", "--wait")["DataRepositoryTask"]
        self.assertEqual(t2["Type"], "IMPORT_METADATA_FROM_REPOSITORY")
        all_ = self.ok_json("describe", m.mountpoint)["DataRepositoryTasks"]
        self.assertEqual([t["TaskId"] for t in all_],
                         [t1["TaskId"], t2["TaskId"]])
        self.assertEqual([t["Name"] for t in all_], ["t1", "t2"])
        one = self.ok_json("describe", m.mountpoint, t2["TaskId"])
        self.assertEqual([t["TaskId"] for t in one["DataRepositoryTasks"]],
                         [t2["TaskId"]])
        by_name = self.ok_json("describe", m.mountpoint, "t1")
        self.assertEqual(by_name["DataRepositoryTasks"][0]["TaskId"],
                         t1["TaskId"])
        h = self.ok("describe", m.mountpoint, "--human").stdout.splitlines()
        self.assertTrue(h[0].startswith("NAME"))
        self.assertEqual(len(h), 3)
        self.assertIn(t1["TaskId"], h[1])
        self.assertIn("SUCCEEDED", h[1])
        self.assertIn("import", h[2])
        r = self.tidectl("describe", m.mountpoint, "task-0123456789abcdef0")
        self.assertFails(1, r, "DataRepositoryTaskNotFound")
        self.assertEqual(json.loads(r.stdout)["__type"],
                         "DataRepositoryTaskNotFound")

    def test_same_token_is_idempotent(self):
        m = self.m
        a = self.ok_json("create-task", m.mountpoint, "--type", "export",
                         "--token", "same", "--wait")["DataRepositoryTask"]
        b = self.ok_json("create-task", m.mountpoint, "--type", "export",
                         "--token", "same")["DataRepositoryTask"]
        self.assertEqual(a["TaskId"], b["TaskId"])
        r = self.tidectl("create-task", m.mountpoint, "--type", "import",
                         "--token", "same")
        self.assertFails(1, r, "IncompatibleParameterError")

    def test_bad_request(self):
        m = self.m
        r = self.tidectl("create-task", m.mountpoint, "--type",
                         "auto-release", "--token", "bad1")
        line = self.assertFails(1, r, "BadRequest")
        self.assertIn("CapacityToRelease", line)
        err = json.loads(r.stdout)
        self.assertEqual(err["__type"], "BadRequest")
        self.assertIn("CapacityToRelease", err["Message"])
        r = self.tidectl("create-task", m.mountpoint, "--type", "export",
                         "--release-days", "3")
        self.assertFails(1, r, "BadRequest")
        r = self.tidectl("create-task", m.mountpoint, "--type", "export",
                         "--report-path", "s3://some-other-bucket/r")
        self.assertFails(1, r, "BadRequest")
        self.assertEqual(self.ok_json("describe", m.mountpoint)
                         ["DataRepositoryTasks"], [])

    def test_wait_failed_exits_1(self):
        m = self.m
        with open(m.path("a.txt"), "ab") as f:       # local change
            f.write(b" local")
        self.put("a.txt", b"changed in S3 by someone else")
        r = self.tidectl("create-task", m.mountpoint, "--type", "export",
                         "--wait")
        self.assertFails(1, r, "FAILED")
        t = json.loads(r.stdout)["DataRepositoryTask"]
        self.assertEqual(t["Lifecycle"], "FAILED")
        self.assertGreaterEqual(t["Status"]["FailedCount"], 1)
        self.assertEqual(m.state("a.txt"), "dirty")

    def test_cancel(self):
        m = self.m
        r = self.tidectl("cancel", m.mountpoint, "task-0123456789abcdef0")
        self.assertFails(1, r, "DataRepositoryTaskNotFound")
        done = self.ok_json("create-task", m.mountpoint, "--type", "export",
                            "--wait")["DataRepositoryTask"]
        r = self.tidectl("cancel", m.mountpoint, done["TaskId"])
        self.assertFails(1, r, "DataRepositoryTaskEnded")
        # A task stuck on a frozen endpoint can be canceled.
        for i in range(5):
            self.write(m, "c%d" % i, b"data %d" % i)
        self.moto.freeze()
        try:
            t = self.ok_json("create-task", m.mountpoint, "--type", "export",
                             "--token", "to-cancel")["DataRepositoryTask"]
            c = self.ok_json("cancel", m.mountpoint, "to-cancel")
            self.assertEqual(c["TaskId"], t["TaskId"])
            self.assertIn(c["Lifecycle"], ("CANCELING", "CANCELED"))
        finally:
            self.moto.thaw()
        self.assertEqual(self.wait_final(m, t["TaskId"])["Lifecycle"],
                         "CANCELED")

    def test_release_and_auto_release(self):
        m = self.m
        for rel in ("a.txt", "d/b.bin"):
            res, _, _ = child_read(m.path(rel))
            self.assertTrue(res["ok"])
        self.assertEqual(m.state("a.txt"), "archived")
        self.ok("pin", m.path("a.txt"))
        t = self.ok_json("create-task", m.mountpoint, "--type", "release",
                         "--paths", "/", "--release-days", "0",
                         "--wait")["DataRepositoryTask"]
        self.assertEqual(t["Type"], "RELEASE_DATA_FROM_FILESYSTEM")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED")
        self.assertEqual(m.state("d", "b.bin"), "released")
        self.assertEqual(m.state("a.txt"), "archived")   # pinned
        self.ok("unpin", m.path("a.txt"))
        t = self.ok_json("create-task", m.mountpoint, "--type",
                         "AUTO_RELEASE_DATA", "--capacity-to-release", "1",
                         "--wait")["DataRepositoryTask"]
        self.assertEqual(t["Lifecycle"], "SUCCEEDED")
        self.assertEqual(t["CapacityToRelease"], 1)
        self.assertEqual(m.state("a.txt"), "released")
        h = self.ok("describe", "--human", m.mountpoint).stdout
        self.assertIn("auto-release", h)
        self.assertIn("release", h)

    def test_other_user_may_not_create_or_cancel(self):
        m = self.mount(args=["-o", "allow_other"])
        for d in (self.class_tmp, self.tmp, m.mountpoint):
            os.chmod(d, 0o755)
        t = self.ok_json("create-task", m.mountpoint, "--type", "export",
                         "--wait")["DataRepositoryTask"]

        def as_nobody():
            os.setgid(65534)
            os.setuid(65534)
        for args in (("create-task", m.mountpoint, "--type", "export"),
                     ("cancel", m.mountpoint, t["TaskId"]),
                     ("pin", m.path("a.txt"))):
            with self.subTest(cmd=args[0]):
                r = subprocess.run([tidectl_bin()] + list(args),
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=60,
                                   universal_newlines=True,
                                   preexec_fn=as_nobody)
                self.assertFails(1, r, "permission denied",
                                 "not permitted")
        r = subprocess.run([tidectl_bin(), "describe", m.mountpoint],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, universal_newlines=True,
                           preexec_fn=as_nobody)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_pin_unpin(self):
        m = self.m
        st = self.ok_json("pin", m.path("a.txt"), m.path("d", "b.bin"))
        self.assertEqual([s["Pinned"] for s in st], [True, True])
        self.assertEqual(os.getxattr(m.path("a.txt"),
                                     "user.tidefs.norelease"), b"1")
        h = self.ok("state", "--human", m.path("a.txt")).stdout
        self.assertRegex(h, r"released\s+yes")
        st = self.ok_json("unpin", m.path("a.txt"))
        self.assertEqual(st[0]["Pinned"], False)
        st = self.ok_json("unpin", m.path("a.txt"))   # idempotent
        self.assertEqual(st[0]["Pinned"], False)
        self.assertEqual(self.ok_json("state", m.path("d", "b.bin"))[0]
                         ["Pinned"], True)


if __name__ == "__main__":
    unittest.main()
