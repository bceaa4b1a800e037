# SPDX-License-Identifier: MIT
"""Read path: full-read md5s, random preads across chunk boundaries, state
transitions, stats counters, concurrent readers, and the lazy 1 MiB chunk
fetch on a 200 MiB object."""

import os
import random
import threading
import unittest

from tidefs_test import (MiB, TidefsTestCase, allocated_bytes,
                         drop_page_cache, file_md5, md5, random_bytes)


class FullReads(TidefsTestCase):
    TEST_TIMEOUT = 120

    SIZES = (0, 1, 4095, 4096, MiB - 1, MiB, MiB + 1, 3 * MiB + 17,
             9 * MiB + 5)

    def test_md5_of_full_reads(self):
        bodies = {"f%d" % s: random_bytes(s) for s in self.SIZES}
        bodies["nested/dir/x.bin"] = random_bytes(2 * MiB + 3)
        self.put_many(bodies.items())
        m = self.mount()
        for key, body in bodies.items():
            with self.subTest(key=key, size=len(body)):
                self.assertEqual(os.stat(m.path(key)).st_size, len(body))
                self.assertEqual(file_md5(m.path(key)), md5(body))
                self.assertEqual(m.state(key), "archived")
        st = m.stats()
        total = sum(len(b) for b in bodies.values())
        self.assertEqual(st["states"]["archived"], len(bodies))
        self.assertEqual(st["states"]["released"], 0)
        self.assertGreaterEqual(st["cached_bytes"], total)
        self.assertEqual(st["bytes_fetched"], total,
                         "each byte should be fetched exactly once")
        # Re-reading (page cache dropped, so the daemon serves it) fetches
        # nothing and counts hits.
        drop_page_cache()
        for key, body in bodies.items():
            self.assertEqual(file_md5(m.path(key)), md5(body), key)
        st2 = m.stats()
        self.assertEqual(st2["bytes_fetched"], total)
        self.assertGreater(st2["hits"], st["hits"])
        self.assertEqual(st2["misses"], st["misses"])

    def test_random_preads(self):
        size = 6 * MiB + 333
        body = random_bytes(size)
        self.put("r.bin", body)
        m = self.mount()
        rng = random.Random(4711)
        offsets = [(0, 10), (MiB - 5, 10), (2 * MiB - 1, MiB + 2),
                   (size - 7, 100), (size, 10), (size + MiB, 10),
                   (5 * MiB, 4096), (MiB, MiB)]
        offsets += [(rng.randrange(size), rng.randrange(1, 300000))
                    for _ in range(150)]
        fd = os.open(m.path("r.bin"), os.O_RDONLY)
        try:
            for off, ln in offsets:
                got = os.pread(fd, ln, off)
                self.assertEqual(got, body[off:off + ln],
                                 "pread(%d, %d)" % (ln, off))
        finally:
            os.close(fd)
        self.assertEqual(file_md5(m.path("r.bin")), md5(body))

    def test_concurrent_readers_share_fetches(self):
        size = 8 * MiB + 100
        body = random_bytes(size)
        self.put("c.bin", body)
        m = self.mount()
        results, errors = [], []

        def reader(i):
            try:
                results.append(file_md5(m.path("c.bin"), bufsize=(i + 1)
                                        * 65536))
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(results, [md5(body)] * 8)
        st = m.stats()
        self.assertEqual(st["bytes_fetched"], size,
                         "concurrent readers should share one fetch per "
                         "chunk (fetched %d for a %d-byte file)"
                         % (st["bytes_fetched"], size))
        self.assertEqual(m.state("c.bin"), "archived")

    def test_stats_count_a_single_read(self):
        body = random_bytes(3 * MiB)
        self.put("s.bin", body)
        self.put("untouched", b"u" * 100)
        m = self.mount()
        st0 = m.stats()
        self.assertEqual((st0["hits"], st0["misses"], st0["bytes_fetched"],
                          st0["cached_bytes"]), (0, 0, 0, 0))
        self.assertEqual(file_md5(m.path("s.bin")), md5(body))
        st1 = m.stats()
        self.assertGreaterEqual(st1["misses"], 1)
        self.assertEqual(st1["bytes_fetched"], 3 * MiB)
        self.assertEqual(st1["cached_bytes"], 3 * MiB)
        self.assertEqual(st1["states"]["archived"], 1)
        self.assertEqual(st1["states"]["released"], 1)
        self.assertEqual(m.state("untouched"), "released")


class LargeObject(TidefsTestCase):
    """The one 200 MiB object the issue asks for."""
    TEST_TIMEOUT = 150

    def test_4k_read_in_the_middle_of_200mib(self):
        size = 200 * MiB
        body = random_bytes(size)
        self.put("big.bin", body)
        m = self.mount()
        self.assertEqual(os.stat(m.path("big.bin")).st_size, size)
        du0 = allocated_bytes(m.cache_dir)
        st0 = m.stats()
        off = 100 * MiB + 12345
        fd = os.open(m.path("big.bin"), os.O_RDONLY)
        try:
            got = os.pread(fd, 4096, off)
        finally:
            os.close(fd)
        self.assertEqual(got, body[off:off + 4096])
        st1 = m.stats()
        du1 = allocated_bytes(m.cache_dir)
        grew = st1["cached_bytes"] - st0["cached_bytes"]
        fetched = st1["bytes_fetched"] - st0["bytes_fetched"]
        self.assertGreater(grew, 0, "cached_bytes did not grow at all")
        self.assertLessEqual(grew, 16 * MiB,
                             "a 4 KiB read cached %d bytes" % grew)
        self.assertLessEqual(fetched, 16 * MiB,
                             "a 4 KiB read fetched %d bytes" % fetched)
        self.assertLessEqual(du1 - du0, 32 * MiB,
                             "cache dir grew by %d bytes on disk (du)"
                             % (du1 - du0))
        self.assertNotEqual(m.state("big.bin"), "released")
        # Head and tail of the object, each a separate small fetch.
        fd = os.open(m.path("big.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 4096, 0), body[:4096])
            self.assertEqual(os.pread(fd, 4096, size - 4096),
                             body[size - 4096:])
            self.assertEqual(os.pread(fd, 4096, size - 100), body[-100:])
        finally:
            os.close(fd)
        st2 = m.stats()
        self.assertLessEqual(st2["cached_bytes"], 48 * MiB)
        self.assertLessEqual(allocated_bytes(m.cache_dir) - du0, 64 * MiB)


if __name__ == "__main__":
    unittest.main()
