# SPDX-License-Identifier: MIT
"""An object that changes (ETag) or vanishes under a file that is not fully
cached: reads fail with EIO, the file turns "lost", and no read ever returns
bytes of the new object."""

import errno
import os
import unittest

from tidefs_test import (MiB, TidefsTestCase, child_read, file_md5, md5,
                         random_bytes)


class Lost(TidefsTestCase):
    TEST_TIMEOUT = 120

    def assertLostRead(self, m, name, new_body=None):
        for attempt in range(2):
            r, el, to = child_read(m.path(name), timeout=45)
            self.assertFalse(to, "read of a changed object hung")
            if r["ok"] and new_body is not None:
                self.assertNotEqual(r["md5"], md5(new_body),
                                    "returned the NEW object's bytes")
            self.assertFalse(r["ok"], "read succeeded (attempt %d): %r"
                             % (attempt, r))
            self.assertEqual(r["errno"], errno.EIO, r)
        self.assertEqual(m.state(name), "lost")

    def test_overwritten_before_read_same_size(self):
        old, new = random_bytes(3 * MiB), random_bytes(3 * MiB)
        self.put("f.bin", old)
        self.put("ok.bin", b"fine" * 1000)
        m = self.mount(retry_timeout=2)
        self.assertEqual(m.state("f.bin"), "released")
        self.put("f.bin", new)
        self.assertLostRead(m, "f.bin", new)
        st = m.stats()
        self.assertEqual(st["states"]["lost"], 1)
        # Siblings are unaffected; metadata of the lost file still stats.
        with open(m.path("ok.bin"), "rb") as f:
            self.assertEqual(f.read(), b"fine" * 1000)
        self.assertEqual(os.stat(m.path("f.bin")).st_size, len(old))

    def test_overwritten_before_read_other_size(self):
        self.put("g.bin", random_bytes(MiB + 5))
        m = self.mount(retry_timeout=2)
        new = random_bytes(5 * MiB)
        self.put("g.bin", new)
        self.assertLostRead(m, "g.bin", new)

    def test_deleted_before_read(self):
        self.put("gone.bin", random_bytes(100000))
        m = self.mount(retry_timeout=2)
        self.s3.delete_object(Bucket=self.bucket, Key="gone.bin")
        self.assertLostRead(m, "gone.bin")
        self.assertEqual(m.stats()["states"]["lost"], 1)

    def test_overwritten_after_partial_read_never_mixes(self):
        size = 12 * MiB
        old, new = random_bytes(size), random_bytes(size)
        self.put("p.bin", old)
        m = self.mount(retry_timeout=2)
        fd = os.open(m.path("p.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 4096, 0), old[:4096])
        finally:
            os.close(fd)
        self.put("p.bin", new)
        failed = 0
        for i in range(size // MiB):
            off = i * MiB
            r, el, to = child_read(m.path("p.bin"), off, MiB, timeout=45)
            self.assertFalse(to, "chunk %d read hung" % i)
            if r["ok"]:
                # A short read (bytes before the failing range) is fine;
                # the bytes returned must be the old object's.
                n = r["len"]
                self.assertEqual(r["md5"], md5(old[off:off + n]),
                                 "chunk %d: %d bytes that are not the old "
                                 "object's (new object's: %s)" % (
                                     i, n, r["md5"] == md5(new[off:off + n])))
                if n < MiB:
                    failed += 1
            else:
                self.assertEqual(r["errno"], errno.EIO, r)
                failed += 1
        self.assertGreater(failed, 0, "every chunk read succeeded: was "
                           "the whole 12 MiB cached after a 4 KiB read?")
        self.assertEqual(m.state("p.bin"), "lost")
        # The whole-file read fails too; it never returns new bytes.
        r, el, to = child_read(m.path("p.bin"), timeout=45)
        self.assertFalse(to)
        self.assertFalse(r["ok"] and r["md5"] == md5(new))
        self.assertEqual(r.get("errno"), errno.EIO, r)

    def test_fully_cached_file_keeps_its_bytes(self):
        old, new = random_bytes(2 * MiB + 1), random_bytes(2 * MiB + 1)
        self.put("c.bin", old)
        m = self.mount(retry_timeout=2)
        self.assertEqual(file_md5(m.path("c.bin")), md5(old))
        self.assertEqual(m.state("c.bin"), "archived")
        self.put("c.bin", new)
        r, el, to = child_read(m.path("c.bin"), timeout=30)
        self.assertFalse(to)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["md5"], md5(old))


if __name__ == "__main__":
    unittest.main()
