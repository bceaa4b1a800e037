# SPDX-License-Identifier: MIT
"""The issue's eviction case at full size: a mount with --cache-size 1G (the
default watermarks, 90/75) reads 3 GiB of objects; every read is checked by
md5, cached_bytes and what the cache's data files allocate never pass 1 GiB
plus the data in flight, and a pinned file and dirty data stay cached and
untouched. The scenario is test_release.EvictionCase.read_more_than_fits,
which test_release.Eviction also runs scaled down (256M, 800 MiB).

A suite of its own (the longest one: 1.5-2 minutes on a 2-CPU machine at a
load of 8, 2.5-4 at a load of 13-26, in the normal and the ASan+UBSan build
alike: moto's CPU is the limit) so that ctest -j runs it
beside the others; tests/CMakeLists.txt gives it a high COST so that it
starts first. The objects are 16 MiB: moto copies a whole object for every
ranged GET, and tidefs merges up to 16 chunks of a sequential read into one
GET, so a 16 MiB object takes 4 GETs (1 chunk, then growing read-ahead) of
one 16 MiB copy each; smaller objects cost more requests per MiB, larger
ones more copying.
"""

import os
import unittest

from tidefs_test import MiB
from test_release import EvictionCase

GiB = 1024 * MiB


class Eviction1G(EvictionCase):
    TEST_TIMEOUT = 600

    def test_1g_cache_reads_3gib(self):
        size = 16 * MiB
        names = ["d%d/o%03d.bin" % (i % 4, i) for i in range(3 * GiB // size)]
        m = self.read_more_than_fits("1G", GiB, names, size)
        self.assertEqual(m.unmount(), 0)


if __name__ == "__main__":
    unittest.main()
