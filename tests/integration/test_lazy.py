# SPDX-License-Identifier: MIT
"""Lazy POSIX metadata at the first mount: the mount is live once the
listing is stored; HeadObject of every object follows in the background,
and nothing the kernel sees (lookup, ls -l, readdir types) ever shows a
file before its x-amz-meta-file-* metadata is in. Pending inodes survive
kill -9; vanished objects and failing HEADs are handled.

A proxy between tidefs and moto holds or fails HeadObject requests, so the
order of events is forced rather than timed."""

import errno
import json
import os
import signal
import stat
import threading
import time
import unittest

import test_s3_faults
from tidefs_test import (TidefsTestCase, fusermount_unmount, posix_meta,
                         wait_until)

NS = 10 ** 9
MT = 1500000000 * NS + 123456789
AT = 1600000000 * NS + 987654321


class Lazy(TidefsTestCase):
    TEST_TIMEOUT = 150

    def setUp(self):
        super().setUp()
        self.proxy = test_s3_faults.FaultProxy(self.moto.port)
        self.addCleanup(self.proxy.stop)
        self.release_holds = threading.Event()
        # Held requests must not outlive the test.
        self.addCleanup(self.release_holds.set)

    def mount_via_proxy(self, **kw):
        kw.setdefault("retry_timeout", 30)  # held HEADs must not time out
        m = self.mount(start=False, **kw)
        m.endpoint = self.proxy.url
        m.start()
        return m

    def hold_heads(self, key=None):
        return self.proxy.add("HEAD", ("hold", self.release_holds), key=key)

    def heads(self):
        with self.proxy.lock:
            return [r for r in self.proxy.requests if r[1] == "HEAD"]

    def wait_complete(self, m, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m.stats()["metadata_pending"] == 0:
                return
            time.sleep(0.1)
        self.fail("metadata still pending after %ds: %r"
                  % (timeout, m.stats()))

    def fill_tree(self, n=60):
        """Files with every header, defaults, a symlink, markers."""
        want = {}
        items = []
        for i in range(n):
            mode = 0o100600 | (i % 8) << 3
            items.append(("d/f%03d" % i, b"x" * i,
                          posix_meta(mode, 1000 + i, 2000 + i, AT, MT + i)))
            want["d/f%03d" % i] = (mode, 1000 + i, 2000 + i, MT + i, i)
        items.append(("plain.txt", b"plain", None))
        items.append(("ln", b"d/f001", posix_meta(0o120777, 7, 8, None, MT)))
        items.append(("md/", b"", posix_meta(0o40710, 33, 44, AT, MT)))
        items.append(("md/inner", b"in", posix_meta(0o100444, 5, 6)))
        self.put_many(items)
        return want

    def check_tree(self, m, want):
        names = sorted(os.listdir(m.path("d")))
        self.assertEqual(names, sorted(k.split("/")[1] for k in want))
        for k, (mode, uid, gid, mt, size) in want.items():
            st = os.lstat(m.path(k))
            self.assertEqual((st.st_mode, st.st_uid, st.st_gid,
                              st.st_mtime_ns, st.st_atime_ns, st.st_size),
                             (mode, uid, gid, mt, AT, size), k)
        st = os.lstat(m.path("plain.txt"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid),
                         (0o100755, 0, 0))
        st = os.lstat(m.path("ln"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns),
                         (0o120777, 7, 8, MT))
        self.assertEqual(os.readlink(m.path("ln")), "d/f001")
        st = os.lstat(m.path("md"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns),
                         (0o40710, 33, 44, MT))
        st = os.lstat(m.path("md", "inner"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid),
                         (0o100444, 5, 6))

    def test_live_before_heads_then_exact_metadata(self):
        want = self.fill_tree()
        held = self.hold_heads()
        m = self.mount_via_proxy(foreground=False)
        # Live, the listing in, and not one HeadObject answered yet.
        self.assertTrue(m.is_mounted())
        self.assertTrue(any(r[1] == "GET" and "list-type=2" in r[2]
                            for r in self.proxy.requests))
        st = m.stats()
        # 60 + plain + ln + md/inner files, the md/ marker.
        self.assertEqual(st["metadata_pending"], len(want) + 4, st)
        # The background HEADs start (and are held) once the mount is live.
        self.assertTrue(wait_until(lambda: held.hits > 0, 30))
        # The kernel is asked first, HEADs are let go meanwhile: ls -l
        # right after the mount shows the headers' metadata exactly.
        threading.Timer(0.5, self.release_holds.set).start()
        entries = {e.name: e for e in os.scandir(m.mountpoint)}
        # d_type from readdirplus: the symlink is one before any lstat.
        self.assertTrue(entries["ln"].is_symlink())
        self.assertTrue(entries["md"].is_dir(follow_symlinks=False))
        self.check_tree(m, want)
        self.wait_complete(m)
        # Every object HEADed once (the filler never does one twice).
        keys = [r[2].split("?")[0] for r in self.heads()]
        self.assertEqual(len(keys), len(set(keys)), "HEAD repeated")
        self.assertEqual(len(keys), len(want) + 4)
        self.assertEqual(m.stats()["states"]["released"], len(want) + 1)
        m.unmount()  # a daemon: no exit status to check here

    def test_stat_of_one_file_jumps_the_queue(self):
        want = self.fill_tree(200)
        self.hold_heads(key="/d/f")  # the background is stuck on these
        m = self.mount_via_proxy()
        self.assertEqual(os.readlink(m.path("ln")), "d/f001")
        st = os.lstat(m.path("md", "inner"))
        self.assertEqual((st.st_mode, st.st_uid), (0o100444, 5))
        self.assertGreater(m.stats()["metadata_pending"], 0)
        self.release_holds.set()
        self.check_tree(m, want)
        self.wait_complete(m)

    def test_kill9_mid_fill_then_remount_completes(self):
        want = self.fill_tree()
        # Half of the files' HEADs wait; the rest complete.
        self.hold_heads(key="/d/f00")
        m = self.mount_via_proxy()
        held_keys = [k for k in want if k.startswith("d/f00")]
        deadline = time.monotonic() + 60
        while (m.stats()["metadata_pending"] != len(held_keys)
               and time.monotonic() < deadline):
            time.sleep(0.1)
        self.assertEqual(m.stats()["metadata_pending"], len(held_keys))
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(20)
        fusermount_unmount(m.mountpoint, lazy=True)
        self.assertFalse(m.is_mounted())

        self.proxy.clear()
        self.release_holds.set()
        m2 = self.mount_via_proxy(cache_dir=m.cache_dir)
        self.assertIn("metadata: %d objects to complete" % len(held_keys),
                      m2.log_text())
        self.check_tree(m2, want)
        self.wait_complete(m2)
        self.assertEqual(m2.unmount(), 0)
        # Nothing pending any more: a third mount has nothing to do.
        m3 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(m3.stats()["metadata_pending"], 0)
        self.check_tree(m3, want)

    def test_vanished_objects(self):
        self.put("keep.txt", b"keep", posix_meta(0o100640, 1, 2))
        self.put("gone.txt", b"gone", posix_meta(0o100600, 3, 4))
        self.put("vd/", b"", posix_meta(0o40700, 5, 6))
        self.put("vd/x", b"x")
        self.hold_heads()
        m = self.mount_via_proxy()
        self.assertEqual(m.stats()["states"]["released"], 3)
        # Deleted between the listing and its HEAD.
        self.s3.delete_object(Bucket=self.bucket, Key="gone.txt")
        self.s3.delete_object(Bucket=self.bucket, Key="vd/")
        self.release_holds.set()
        self.assertEqual(sorted(os.listdir(m.mountpoint)),
                         [".tidefs", "keep.txt", "vd"])
        self.assertErrno(errno.ENOENT, os.lstat, m.path("gone.txt"))
        st = os.lstat(m.path("keep.txt"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid),
                         (0o100640, 1, 2))
        # A vanished marker: an implicit directory, as the eager import.
        st = os.lstat(m.path("vd"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid),
                         (0o755, 0, 0))
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(os.listdir(m.path("vd")), ["x"])
        self.wait_complete(m)
        s = m.stats()
        self.assertEqual(s["states"]["released"], 2, s)
        self.assertIn("vanished since the listing", m.log_text())
        self.assertEqual(m.unmount(), 0)

    def test_failing_head_gives_eio_never_a_wrong_mode(self):
        self.put("ok.txt", b"ok", posix_meta(0o100640, 1, 2))
        self.put("denied.txt", b"no", posix_meta(0o100600, 3, 4))
        deny = self.proxy.add("HEAD", ("status", 403, "AccessDenied"),
                              key="denied")
        m = self.mount_via_proxy(retry_timeout=2)
        self.assertErrno(errno.EIO, os.lstat, m.path("denied.txt"))
        self.assertGreater(deny.hits, 0)
        st = os.lstat(m.path("ok.txt"))
        self.assertEqual((st.st_mode, st.st_uid), (0o100640, 1))
        self.assertIn("is not available", m.log_text())
        self.assertEqual(m.stats()["metadata_pending"], 1)
        # Once S3 answers, the next look gets it (no remount needed).
        self.proxy.clear()
        st = os.lstat(m.path("denied.txt"))
        self.assertEqual((st.st_mode, st.st_uid, st.st_gid),
                         (0o100600, 3, 4))
        self.wait_complete(m)
        self.assertEqual(m.unmount(), 0)

    def test_tasks_with_pending_inodes(self):
        """An import task completes pending inodes; an export sends none
        of them (they are archived); a release skips them."""
        want = self.fill_tree(20)
        self.hold_heads(key="/d/f")
        m = self.mount_via_proxy()
        ctl = m.path(".tidefs", "tasks")
        with open(os.path.join(ctl, "exp-1"), "w") as f:
            f.write('{"Type":"EXPORT_TO_REPOSITORY"}')
        with open(os.path.join(ctl, "rel-1"), "w") as f:
            f.write('{"Type":"RELEASE_DATA_FROM_FILESYSTEM",'
                    '"Paths":["/"]}')
        threading.Timer(1.0, self.release_holds.set).start()
        with open(os.path.join(ctl, "imp-1"), "w") as f:
            f.write('{"Type":"IMPORT_METADATA_FROM_REPOSITORY"}')
        deadline = time.monotonic() + 90
        for name in ("exp-1", "rel-1", "imp-1"):
            while time.monotonic() < deadline:
                with open(os.path.join(ctl, name)) as f:
                    t = json.load(f)
                if t["Lifecycle"] in ("SUCCEEDED", "FAILED", "CANCELED"):
                    break
                time.sleep(0.2)
            self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
            if name == "exp-1":
                self.assertEqual(t["Status"]["TotalCount"], 0, t)
        # The import task waited for the filler: nothing pending now.
        self.assertEqual(m.stats()["metadata_pending"], 0)
        puts = [r for r in self.proxy.requests if r[1] == "PUT"]
        self.assertEqual(puts, [])
        self.check_tree(m, want)
        self.assertEqual(m.unmount(), 0)


if __name__ == "__main__":
    unittest.main()
