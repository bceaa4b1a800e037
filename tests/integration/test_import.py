# SPDX-License-Identifier: MIT
"""First-mount import: listing, directories, POSIX metadata, symlinks,
prefixes, the read-only surface, state xattrs and the stats file."""

import errno
import json
import os
import re
import stat
import unittest

from tidefs_test import (STATE_XATTR, STATES, STATS_KEYS, TidefsTestCase,
                         posix_meta)

NS = 1000000000


def names(path):
    return sorted(n for n in os.listdir(path) if n != ".tidefs")


class Listing(TidefsTestCase):
    TEST_TIMEOUT = 120

    def test_more_than_1000_keys(self):
        n = 1020  # > 1000: ListObjectsV2 needs a second page
        items = [("many/f%05d" % i, b"%d" % i) for i in range(n)]
        items += [("top%d" % i, b"t" * (i + 1)) for i in range(5)]
        self.put_many(items, threads=16)
        m = self.mount()
        got = names(m.path("many"))
        self.assertEqual(len(got), n)
        self.assertEqual(got, sorted("f%05d" % i for i in range(n)))
        self.assertEqual(names(m.mountpoint),
                         ["many"] + ["top%d" % i for i in range(5)])
        # readdirplus-style walk: every entry stats with the right size.
        sizes = {}
        with os.scandir(m.path("many")) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                self.assertTrue(stat.S_ISREG(st.st_mode), e.name)
                sizes[e.name] = st.st_size
        self.assertEqual(sizes, {"f%05d" % i: len(b"%d" % i)
                                 for i in range(n)})
        # A second listing (served from the local store) is identical.
        self.assertEqual(names(m.path("many")), got)
        with open(m.path("many", "f01019"), "rb") as f:
            self.assertEqual(f.read(), b"1019")
        st = m.stats()
        self.assertEqual(st["states"]["released"], n + 5 - 1,
                         "states after reading 1 of %d files: %r"
                         % (n + 5, st["states"]))
        self.assertEqual(m.state("many", "f01019"), "archived")
        self.assertGreaterEqual(st["states"]["archived"], 1)

    def test_nested_and_marker_directories(self):
        t = 1650000000 * NS + 123456789
        self.put("a/b/c/deep.txt", b"deep")
        self.put("a/top.txt", b"top")
        self.put("empty/", b"", posix_meta(0o40750, 1001, 1002, t, t))
        self.put("withkids/", b"", posix_meta(0o40700, 7, 8, t, t))
        self.put("withkids/k", b"kid")
        self.put("plainmarker/", b"")
        self.put("zero", b"")
        m = self.mount()
        self.assertEqual(names(m.mountpoint),
                         ["a", "empty", "plainmarker", "withkids", "zero"])
        self.assertEqual(names(m.path("a")), ["b", "top.txt"])
        self.assertEqual(names(m.path("a", "b")), ["c"])
        self.assertEqual(names(m.path("a", "b", "c")), ["deep.txt"])
        with open(m.path("a", "b", "c", "deep.txt"), "rb") as f:
            self.assertEqual(f.read(), b"deep")
        for d in ("a", "a/b", "a/b/c"):
            st = os.lstat(m.path(d))
            self.assertTrue(stat.S_ISDIR(st.st_mode), d)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o755,
                             "implicit directory %s mode %o" % (d,
                                                               st.st_mode))
        st = os.lstat(m.path("empty"))
        self.assertEqual(st.st_mode, stat.S_IFDIR | 0o750)
        self.assertEqual((st.st_uid, st.st_gid), (1001, 1002))
        self.assertEqual(st.st_mtime_ns, t)
        self.assertEqual(names(m.path("empty")), [])
        st = os.lstat(m.path("withkids"))
        self.assertEqual(st.st_mode, stat.S_IFDIR | 0o700)
        self.assertEqual((st.st_uid, st.st_gid), (7, 8))
        self.assertEqual(names(m.path("withkids")), ["k"])
        st = os.lstat(m.path("plainmarker"))
        self.assertEqual(st.st_mode, stat.S_IFDIR | 0o755)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        st = os.lstat(m.path("zero"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_size, 0)
        with open(m.path("zero"), "rb") as f:
            self.assertEqual(f.read(), b"")
        self.assertEqual(m.state("zero"), "archived",
                         "an empty file is fully cached once read")
        self.assertErrno(errno.ENOENT, os.lstat, m.path("a", "nope"))
        self.assertErrno(errno.ENOTDIR, os.listdir, m.path("a", "top.txt"))

    def test_trailing_slash_decides_directory(self):
        self.put("odd/", b"", posix_meta(0o100644, 5, 6))
        m = self.mount()
        st = os.lstat(m.path("odd"))
        self.assertTrue(stat.S_ISDIR(st.st_mode),
                        "a key ending in / must be a directory, got %o"
                        % st.st_mode)


class Metadata(TidefsTestCase):

    def test_posix_metadata_from_headers(self):
        at = 1600000000 * NS + 123456789
        mt = 1500000000 * NS + 987654321
        cases = {
            "f640": (0o100640, 1234, 5678),
            "f755": (0o100755, 1, 2),
            "f600": (0o100600, 65534, 65534),
            "f444": (0o100444, 4000000000, 3000000000),
        }
        for key, (mode, uid, gid) in cases.items():
            self.put("meta/" + key, key.encode() * 3,
                     posix_meta(mode, uid, gid, at, mt))
        m = self.mount()
        for key, (mode, uid, gid) in cases.items():
            with self.subTest(key=key):
                st = os.lstat(m.path("meta", key))
                self.assertEqual(st.st_mode, mode,
                                 "%o != %o" % (st.st_mode, mode))
                self.assertEqual(st.st_uid, uid)
                self.assertEqual(st.st_gid, gid)
                self.assertEqual(st.st_mtime_ns, mt)
                self.assertEqual(st.st_atime_ns, at)
                self.assertEqual(st.st_size, len(key) * 3)
                self.assertEqual(st.st_nlink, 1)
        with open(m.path("meta", "f640"), "rb") as f:
            self.assertEqual(f.read(), b"f640" * 3)

    def test_mtime_without_ns_suffix_is_milliseconds(self):
        self.put("ms", b"x", {"file-permissions": "0100644",
                              "file-mtime": "1500000000123"})
        m = self.mount()
        self.assertEqual(os.lstat(m.path("ms")).st_mtime_ns,
                         1500000000123 * 1000000)

    def test_malformed_values_ignored_field_by_field(self):
        lm_keys = ("badperm", "badowner")
        self.put("badperm", b"1", {"file-permissions": "rw-r--r--",
                                   "file-owner": "42", "file-group": "43"})
        self.put("badowner", b"2", {"file-permissions": "0100600",
                                    "file-owner": "12ab", "file-group": "-1",
                                    "file-mtime": "soon"})
        m = self.mount()
        heads = {k: self.s3.head_object(Bucket=self.bucket, Key=k)
                 for k in lm_keys}
        st = os.lstat(m.path("badperm"))
        self.assertEqual(st.st_mode, stat.S_IFREG | 0o755)
        self.assertEqual((st.st_uid, st.st_gid), (42, 43))
        st = os.lstat(m.path("badowner"))
        self.assertEqual(st.st_mode, stat.S_IFREG | 0o600)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        lm = int(heads["badowner"]["LastModified"].timestamp()) * NS
        self.assertEqual(st.st_mtime_ns, lm)
        with open(m.path("badowner"), "rb") as f:
            self.assertEqual(f.read(), b"2")

    def test_defaults_without_metadata(self):
        self.put("plain/file.bin", b"abc" * 1000)
        lm = self.s3.head_object(Bucket=self.bucket,
                                 Key="plain/file.bin")["LastModified"]
        lm_ns = int(lm.timestamp()) * NS
        m = self.mount()
        st = os.lstat(m.path("plain", "file.bin"))
        self.assertEqual(st.st_mode, stat.S_IFREG | 0o755)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        self.assertEqual(st.st_size, 3000)
        self.assertEqual(st.st_mtime_ns, lm_ns)
        self.assertEqual(st.st_atime_ns, lm_ns)
        self.assertEqual(st.st_ctime_ns, lm_ns)

    def test_symlinks(self):
        self.put("data/target.txt", b"pointed-at")
        sl = {"file-permissions": "0120777", "file-owner": "10",
              "file-group": "20", "file-mtime": "1400000000000000001ns"}
        self.put("rel", b"data/target.txt", sl)
        self.put("data/up", b"../data/target.txt", sl)
        self.put("abs", b"/nonexistent/abs/path", sl)
        self.put("dangling", b"no-such-file", sl)
        m = self.mount()
        for name, target in (("rel", "data/target.txt"),
                             ("data/up", "../data/target.txt"),
                             ("abs", "/nonexistent/abs/path"),
                             ("dangling", "no-such-file")):
            with self.subTest(link=name):
                st = os.lstat(m.path(name))
                self.assertTrue(stat.S_ISLNK(st.st_mode),
                                "%s mode %o" % (name, st.st_mode))
                self.assertEqual(st.st_size, len(target))
                self.assertEqual((st.st_uid, st.st_gid), (10, 20))
                self.assertEqual(st.st_mtime_ns, 1400000000000000001)
                self.assertEqual(os.readlink(m.path(name)), target)
        with open(m.path("rel"), "rb") as f:
            self.assertEqual(f.read(), b"pointed-at")
        with open(m.path("data", "up"), "rb") as f:
            self.assertEqual(f.read(), b"pointed-at")
        self.assertErrno(errno.ENOENT, os.stat, m.path("dangling"))
        self.assertErrno(errno.EINVAL, os.readlink, m.path("data",
                                                          "target.txt"))


class Prefix(TidefsTestCase):

    def test_prefix_mount_shows_only_the_prefix(self):
        self.put("sub/x", b"x")
        self.put("sub/d/y", b"y")
        self.put("subway/z", b"z")
        self.put("suba", b"a")
        self.put("other/w", b"w")
        for prefix in ("sub", "sub/"):
            with self.subTest(prefix=prefix):
                m = self.mount(prefix=prefix)
                self.assertEqual(names(m.mountpoint), ["d", "x"])
                self.assertEqual(names(m.path("d")), ["y"])
                with open(m.path("d", "y"), "rb") as f:
                    self.assertEqual(f.read(), b"y")
                repo = m.stats()["repository"]
                self.assertTrue(repo.rstrip("/") ==
                                "s3://%s/sub" % self.bucket,
                                "repository %r" % repo)
                self.assertEqual(m.unmount(), 0)

    def test_nested_prefix(self):
        self.put("p/q/r/file", b"deep")
        self.put("p/q/other", b"o")
        self.put("p/z", b"z")
        m = self.mount(prefix="p/q")
        self.assertEqual(names(m.mountpoint), ["other", "r"])
        with open(m.path("r", "file"), "rb") as f:
            self.assertEqual(f.read(), b"deep")


class ReadOnlySurface(TidefsTestCase):

    def test_mutations_return_erofs_with_o_ro(self):
        """A mount with -o ro refuses every mutation with EROFS. (Issue 2
        shipped read-only; since the write path landed, -o ro is how a
        user gets that.)"""
        self.put("f", b"content")
        self.put("d/g", b"g")
        m = self.mount(args=["-o", "ro"])
        f, d = m.path("f"), m.path("d")
        ops = [
            ("open O_WRONLY", lambda: os.open(f, os.O_WRONLY)),
            ("open O_RDWR", lambda: os.open(f, os.O_RDWR)),
            ("open O_TRUNC", lambda: os.open(f, os.O_WRONLY | os.O_TRUNC)),
            ("create", lambda: os.open(m.path("new"),
                                       os.O_WRONLY | os.O_CREAT, 0o644)),
            ("mkdir", lambda: os.mkdir(m.path("nd"))),
            ("unlink", lambda: os.unlink(f)),
            ("rmdir", lambda: os.rmdir(d)),
            ("rename", lambda: os.rename(f, m.path("f2"))),
            ("symlink", lambda: os.symlink("f", m.path("sl"))),
            ("link", lambda: os.link(f, m.path("hl"))),
            ("mknod fifo", lambda: os.mkfifo(m.path("fifo"))),
            ("chmod", lambda: os.chmod(f, 0o600)),
            ("chown", lambda: os.chown(f, 1, 1)),
            ("utime", lambda: os.utime(f, ns=(1, 1))),
            ("truncate", lambda: os.truncate(f, 0)),
            ("setxattr", lambda: os.setxattr(f, "user.x", b"1")),
            ("removexattr", lambda: os.removexattr(f, STATE_XATTR)),
        ]
        for name, op in ops:
            with self.subTest(op=name):
                self.assertErrno(errno.EROFS, op)
        with open(f, "rb") as fh:
            self.assertEqual(fh.read(), b"content")
        self.assertEqual(names(m.mountpoint), ["d", "f"])


class StateAndStats(TidefsTestCase):

    def test_state_xattr_before_reads(self):
        self.put("a", b"1" * 5000)
        self.put("d/b", b"2" * 10)
        self.put("e", b"")
        m = self.mount()
        for p in ("a", "d/b"):
            self.assertEqual(m.state(p), "released", p)
            self.assertIn(STATE_XATTR, os.listxattr(m.path(p)))
        self.assertEqual(m.state("e"), "archived",
                         "an empty file has nothing to fetch")
        self.assertErrno(errno.ENODATA, os.getxattr, m.path("a"),
                         "user.nonexistent")
        # A buffer too small for the value is ERANGE, not a crash (size
        # probing through the raw syscall is what getfattr does).
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(2)
        n = libc.getxattr(m.path("a").encode(), STATE_XATTR.encode(), buf, 2)
        self.assertEqual((n, ctypes.get_errno()), (-1, errno.ERANGE))
        n = libc.getxattr(m.path("a").encode(), STATE_XATTR.encode(), None, 0)
        self.assertEqual(n, len("released"))

    def test_stats_file(self):
        self.put("a", b"1" * 5000)
        self.put("b", b"22")
        self.put("c/", b"")
        m = self.mount()
        with open(m.path(".tidefs", "stats"), "rb") as f:
            raw = f.read()
        st = json.loads(raw)
        self.assertIsInstance(st, dict)
        for k in STATS_KEYS:
            self.assertIn(k, st)
        self.assertRegex(st["file_system_id"], r"^fs-[0-9a-f]{8,18}$")
        self.assertEqual(st["repository"].rstrip("/"), "s3://" + self.bucket)
        for k in ("cache_capacity_bytes", "cached_bytes", "hits", "misses",
                  "bytes_fetched"):
            self.assertIsInstance(st[k], int, k)
        self.assertGreater(st["cache_capacity_bytes"], 0)
        self.assertEqual((st["cached_bytes"], st["bytes_fetched"]), (0, 0))
        self.assertEqual(sorted(st["states"]), sorted(STATES))
        self.assertEqual(st["states"]["released"], 2)
        for s in ("new", "dirty", "lost"):
            self.assertEqual(st["states"][s], 0, s)
        sst = os.stat(m.path(".tidefs", "stats"))
        self.assertTrue(stat.S_ISREG(sst.st_mode))
        self.assertTrue(stat.S_ISDIR(os.stat(m.path(".tidefs")).st_mode))
        # statfs answers and names fit 255 bytes.
        vfs = os.statvfs(m.mountpoint)
        self.assertGreaterEqual(vfs.f_namemax, 255)
        self.assertGreater(vfs.f_bsize, 0)
        # The file-system id is stable across remounts of one cache dir.
        fsid = st["file_system_id"]
        self.assertEqual(m.unmount(), 0)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(m2.stats()["file_system_id"], fsid)
        self.assertTrue(re.match(r"^fs-", fsid))


if __name__ == "__main__":
    unittest.main()
