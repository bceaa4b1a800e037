# SPDX-License-Identifier: MIT
"""Remount reuses the cache (no re-import); cached data reads with the
endpoint gone; uncached reads fail with EIO within the retry bound instead
of hanging, whether the endpoint refuses connections or stops answering."""

import errno
import os
import time
import unittest

from tidefs_test import (MiB, MotoServer, TidefsTestCase, child_read,
                         file_md5, md5, random_bytes)

EIO_BOUND = 15  # seconds, with --retry-timeout 2


class Remount(TidefsTestCase):
    OWN_MOTO_PER_TEST = True
    TEST_TIMEOUT = 120

    def test_remount_reuses_cache_without_reimport(self):
        a = random_bytes(3 * MiB + 7)
        b = random_bytes(MiB + 1)
        self.put("a.bin", a)
        self.put("dir/b.bin", b)
        m1 = self.mount(retry_timeout=2)
        self.assertEqual(file_md5(m1.path("a.bin")), md5(a))
        fsid = m1.stats()["file_system_id"]
        self.assertEqual(m1.unmount(), 0)

        # Added after the first mount: must not show up (no re-import).
        self.put("late.txt", b"late")
        self.put("dir/late2.txt", b"late")
        m2 = self.mount(cache_dir=m1.cache_dir, retry_timeout=2)
        self.assertEqual(sorted(n for n in os.listdir(m2.mountpoint)
                                if n != ".tidefs"), ["a.bin", "dir"])
        self.assertEqual(os.listdir(m2.path("dir")), ["b.bin"])
        self.assertErrno(errno.ENOENT, os.stat, m2.path("late.txt"))
        self.assertEqual(m2.stats()["file_system_id"], fsid)
        self.assertEqual(m2.state("a.bin"), "archived")
        self.assertEqual(m2.state("dir", "b.bin"), "released")
        st0 = m2.stats()
        self.assertGreaterEqual(st0["cached_bytes"], len(a))

        # Cached data reads with the endpoint gone, and fetches nothing.
        self.moto.stop()
        r, el, to = child_read(m2.path("a.bin"), timeout=30)
        self.assertFalse(to, "cached read hung with the endpoint stopped")
        self.assertTrue(r["ok"], "cached read failed offline: %r" % r)
        self.assertEqual(r["md5"], md5(a))
        self.assertEqual(m2.stats()["bytes_fetched"], st0["bytes_fetched"])
        # The uncached file fails with EIO, in bounded time.
        r, el, to = child_read(m2.path("dir", "b.bin"), timeout=40)
        self.assertFalse(to, "uncached read hung > 40s (endpoint stopped)")
        self.assertEqual(r.get("errno"), errno.EIO, r)
        self.assertLess(el, EIO_BOUND)
        self.assertEqual(m2.unmount(), 0)

    def test_remount_with_endpoint_down(self):
        """README: a remount of an existing cache whose endpoint is
        unreachable still mounts (with a warning); cached data reads."""
        a = random_bytes(MiB + 3)
        b = random_bytes(MiB + 5)
        self.put("a.bin", a)
        self.put("b.bin", b)
        m1 = self.mount(retry_timeout=2)
        self.assertEqual(file_md5(m1.path("a.bin")), md5(a))
        self.assertEqual(m1.unmount(), 0)
        self.moto.stop()
        t0 = time.monotonic()
        m2 = self.mount(cache_dir=m1.cache_dir, retry_timeout=2)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(sorted(n for n in os.listdir(m2.mountpoint)
                                if n != ".tidefs"), ["a.bin", "b.bin"])
        r, el, to = child_read(m2.path("a.bin"), timeout=30)
        self.assertFalse(to)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["md5"], md5(a))
        r, el, to = child_read(m2.path("b.bin"), timeout=40)
        self.assertFalse(to, "uncached read hung (endpoint down at mount)")
        self.assertEqual(r.get("errno"), errno.EIO, r)
        self.assertLess(el, EIO_BOUND)
        self.assertEqual(m2.state("b.bin"), "released")
        self.assertEqual(m2.unmount(), 0)


class UncleanStop(TidefsTestCase):
    TEST_TIMEOUT = 90

    def test_kill9_keeps_cached_chunks_valid(self):
        """Chunks marked present after kill -9 hold their bytes; the rest
        is fetched again; the file reads whole and right."""
        body = random_bytes(6 * MiB + 99)
        self.put("k.bin", body)
        m1 = self.mount()
        fd = os.open(m1.path("k.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 3 * MiB, 0), body[:3 * MiB])
        finally:
            os.close(fd)
        m1.kill()
        m1.proc.wait(10)
        m1.cleanup()
        m2 = self.mount(cache_dir=m1.cache_dir)
        self.assertEqual(file_md5(m2.path("k.bin")), md5(body))
        self.assertEqual(m2.state("k.bin"), "archived")
        self.assertLessEqual(m2.stats()["bytes_fetched"], len(body))
        self.assertEqual(m2.unmount(), 0)
        m3 = self.mount(cache_dir=m1.cache_dir)
        self.assertEqual(file_md5(m3.path("k.bin")), md5(body))
        self.assertEqual(m3.stats()["bytes_fetched"], 0)


class EndpointDown(TidefsTestCase):
    OWN_MOTO_PER_TEST = True
    TEST_TIMEOUT = 120

    def setUp(self):
        super().setUp()
        self.a = random_bytes(2 * MiB + 11)
        self.b = random_bytes(2 * MiB + 13)
        self.put("a.bin", self.a)
        self.put("d/b.bin", self.b)
        self.m = self.mount(retry_timeout=2)
        self.assertEqual(file_md5(self.m.path("a.bin")), md5(self.a))
        # Its metadata is in (the lookup HEADs it) before the endpoint
        # goes away; only its data is not.
        self.assertEqual(os.stat(self.m.path("d", "b.bin")).st_size,
                         len(self.b))

    def check_offline(self, m):
        r, el, to = child_read(m.path("a.bin"), timeout=30)
        self.assertFalse(to, "cached read hung with the endpoint down")
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["md5"], md5(self.a))
        self.assertLess(el, 10, "cached read took %.1fs offline" % el)
        for attempt in range(2):
            r, el, to = child_read(m.path("d", "b.bin"), timeout=30)
            self.assertFalse(to, "uncached read hung > 30s (attempt %d)"
                             % attempt)
            self.assertFalse(r["ok"], "uncached read succeeded offline?")
            self.assertEqual(r["errno"], errno.EIO,
                             "expected EIO, got %r" % r)
            self.assertLess(el, EIO_BOUND,
                            "EIO took %.1fs with --retry-timeout 2" % el)
        # Metadata stays local: stat, listing and xattr still work, and an
        # unreachable endpoint does not make the file "lost".
        self.assertEqual(os.stat(m.path("d", "b.bin")).st_size, len(self.b))
        self.assertEqual(os.listdir(m.path("d")), ["b.bin"])
        self.assertEqual(m.state("d", "b.bin"), "released")
        self.assertEqual(m.state("a.bin"), "archived")

    def test_endpoint_killed(self):
        port = self.moto.port
        self.moto.stop()
        self.check_offline(self.m)
        # The endpoint comes back (same port, same content => same ETag):
        # the file reads again, nothing is stuck in a failed state.
        moto2 = MotoServer(self.tmp, port=port).start()
        self.extra_motos.append(moto2)
        s3 = moto2.client()
        s3.create_bucket(Bucket=self.bucket)
        s3.put_object(Bucket=self.bucket, Key="d/b.bin", Body=self.b)
        r, el, to = child_read(self.m.path("d", "b.bin"), timeout=30)
        self.assertFalse(to)
        self.assertTrue(r["ok"], "read after the endpoint returned: %r" % r)
        self.assertEqual(r["md5"], md5(self.b))
        self.assertEqual(self.m.state("d", "b.bin"), "archived")

    def test_endpoint_frozen(self):
        """SIGSTOPped endpoint: connects, never answers."""
        self.moto.freeze()
        try:
            self.check_offline(self.m)
        finally:
            self.moto.thaw()
        t0 = time.monotonic()
        r, el, to = child_read(self.m.path("d", "b.bin"), timeout=30)
        self.assertFalse(to)
        self.assertTrue(r["ok"], "read after the endpoint thawed: %r" % r)
        self.assertEqual(r["md5"], md5(self.b))
        self.assertLess(time.monotonic() - t0, 30)


if __name__ == "__main__":
    unittest.main()
