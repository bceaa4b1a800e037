# SPDX-License-Identifier: MIT
"""The file system holding the cache dir fills up (a 40 MiB tmpfs under a
1 GiB --cache-size): writes, creates and directory changes fail with ENOSPC
(not EIO, not a crash), the log says why, uncached reads fail with EIO
without hanging, everything written before stays intact, and once space is
freed the mount works again and survives a remount."""

import errno
import os
import subprocess
import unittest

from tidefs_test import (SETTLE_TIMEOUT, MiB, TidefsTestCase, child_read,
                         file_md5, md5, random_bytes, read_file,
                         tidefs_under_tsan, wait_until, write_file)


class FullCacheFileSystem(TidefsTestCase):
    TEST_TIMEOUT = 180

    def setUp(self):
        # Registered before the harness's own cleanup, so it runs after it
        # (cleanups are LIFO): tidefs, whose cache dir is on the tmpfs, is
        # unmounted first. Lazy in case something still holds it.
        self.fsdir = None
        self.addCleanup(self._umount_smallfs)
        super().setUp()
        self.fsdir = os.path.join(self.tmp, "smallfs")
        os.mkdir(self.fsdir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs",
                        self.fsdir], check=True)

    def _umount_smallfs(self):
        if self.fsdir and os.path.ismount(self.fsdir):
            subprocess.run(["umount", "-l", self.fsdir], check=True)

    def fill(self, path):
        """Write 1 MiB blocks until the file system is full; the error."""
        block = random_bytes(MiB)
        with self.assertRaises(OSError) as cm:
            with open(path, "wb") as f:
                for _ in range(100):
                    f.write(block)
                    f.flush()
        return cm.exception

    def test_full_then_freed(self):
        a = random_bytes(300 * 1024)
        b = random_bytes(200 * 1024)
        self.put("a.bin", a)
        self.put("b.bin", b)
        cache = os.path.join(self.fsdir, "cache")
        m = self.mount(cache_dir=cache, args=["--cache-size", "1G"])
        # tmpfs: commits store into the map, with room kept allocated
        # (pwrite commits under TSan: 0 kept).
        st = m.stats()
        self.assertGreater(st["metadata_bytes"], 0, st)
        if not tidefs_under_tsan():
            self.assertGreater(st["metadata_allocated_bytes"],
                               st["metadata_bytes"] + MiB, st)
        self.assertEqual(md5(read_file(m.path("b.bin"))), md5(b))
        kept = {}
        for i in range(5):
            data = random_bytes(4096 + i)
            write_file(m.path("keep%d" % i), data, fsync=True)
            kept["keep%d" % i] = md5(data)
        os.mkdir(m.path("dir"))

        err = self.fill(m.path("big"))
        self.assertEqual(err.errno, errno.ENOSPC, err)
        # Changes that need space fail with ENOSPC. (A change of metadata
        # only may still fit in pages the metadata store frees and reuses:
        # then it succeeds; it never fails otherwise.)
        self.assertErrno(errno.ENOSPC, write_file, m.path("new"), b"x" * 100)
        self.assertErrno(errno.ENOSPC, os.symlink, "t", m.path("sl"))
        # Directories need metadata pages only: sooner or later the store
        # must grow (~20,000 here: it keeps a few MiB allocated ahead), and
        # the change fails with ENOSPC (not EIO, not SIGBUS).
        with self.assertRaises(OSError) as cm:
            for i in range(200000):
                os.mkdir(m.path("dir", "d%06d" % i))
        self.assertEqual(cm.exception.errno, errno.ENOSPC, cm.exception)
        self.assertIn("file system of the cache dir is full", m.log_text())

        def append():
            with open(m.path("keep0"), "ab") as f:
                f.write(random_bytes(MiB))
        self.assertErrno(errno.ENOSPC, append)
        # The daemon is alive and nothing written before was damaged.
        for name, digest in kept.items():
            self.assertEqual(file_md5(m.path(name)), digest, name)
        self.assertEqual(md5(read_file(m.path("b.bin"))), md5(b))
        self.assertTrue(os.path.isdir(m.path("dir")))
        # An uncached read cannot be stored: EIO, quickly, no hang.
        res, _, timed_out = child_read(m.path("a.bin"), timeout=60)
        self.assertFalse(timed_out)
        self.assertFalse(res["ok"], res)
        self.assertEqual(res["errno"], errno.EIO, res)
        log = m.log_text()
        self.assertIn("cache dir file system full", log)

        # Free the space: changes that free space commit in the metadata
        # room kept back for them (a truncation, an unlink), and the rest
        # work again once the data file is gone.
        os.truncate(m.path("big"), MiB)
        self.assertEqual(os.stat(m.path("big")).st_size, MiB)
        os.unlink(m.path("big"))

        def can_create():
            try:
                write_file(m.path("after"), b"after", fsync=True)
                return True
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                return False
        self.assertTrue(wait_until(can_create, SETTLE_TIMEOUT),
                        "space freed by the unlink never came back")
        os.mkdir(m.path("dir2"))
        self.assertEqual(md5(read_file(m.path("a.bin"))), md5(a))

        m.unmount()
        m2 = self.mount(cache_dir=cache, args=["--cache-size", "1G"])
        for name, digest in kept.items():
            self.assertEqual(file_md5(m2.path(name)), digest, name)
        self.assertEqual(read_file(m2.path("after")), b"after")
        self.assertTrue(os.path.isdir(m2.path("dir2")))
        self.assertFalse(os.path.exists(m2.path("big")))
        # The create may have fitted; its write did not.
        if os.path.exists(m2.path("new")):
            self.assertEqual(os.stat(m2.path("new")).st_size, 0)
        self.assertEqual(md5(read_file(m2.path("b.bin"))), md5(b))
        self.assertEqual(md5(read_file(m2.path("a.bin"))), md5(a))


if __name__ == "__main__":
    unittest.main()
