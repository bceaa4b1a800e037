# SPDX-License-Identifier: MIT
"""Passthrough reads (Linux 6.9+): a read-only handle of a fully cached file
is served by the kernel from the data file; everything else keeps going
through tidefs, and the two kinds of handle coexist on one inode.

On a kernel without FUSE passthrough (Debian 12's 6.1) the same tests check
that nothing changes for users: every handle is an ordinary one."""

import gzip
import json
import mmap
import os
import shutil
import subprocess
import time
import unittest

from tidefs_test import (MiB, TidefsTestCase, drop_page_cache, file_md5, md5,
                         pattern_bytes, pread_all, read_file)

IMPORT = "IMPORT_METADATA_FROM_REPOSITORY"
RELEASE = "RELEASE_DATA_FROM_FILESYSTEM"
FINISHED = ("SUCCEEDED", "FAILED", "CANCELED")


def cap_sys_admin():
    """Whether this process (and so the daemon it starts) has
    CAP_SYS_ADMIN, which registering a data file with the kernel needs."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 21))
    return False


def kernel_passthrough():
    """True/False when the running kernel's config says whether FUSE
    passthrough is built in (and we may use it); None when it cannot be
    told."""
    if not cap_sys_admin():
        return False
    paths = ["/proc/config.gz", "/boot/config-%s" % os.uname().release]
    for p in paths:
        try:
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt") as f:
                return any(line.strip() == "CONFIG_FUSE_PASSTHROUGH=y"
                           for line in f)
        except OSError:
            continue
    return None


class Passthrough(TidefsTestCase):
    TEST_TIMEOUT = 120

    def setUp(self):
        super().setUp()
        self.kernel = kernel_passthrough()

    def mounted(self, **kw):
        m = self.mount(**kw)
        if self.kernel:
            self.assertTrue(m.stats()["passthrough"],
                            "the kernel offers passthrough: tidefs must "
                            "ask for it")
        return m

    def pt_opens(self, m):
        return m.stats()["passthrough_opens"]

    def read_without_passthrough(self, m, name, body):
        """Read name three times (the later ones fully cached): passthrough
        is off for the mount and no open was one. Returns the stats."""
        for _ in range(3):
            self.assertEqual(file_md5(m.path(name)), md5(body))
            drop_page_cache()
        st = m.stats()
        self.assertFalse(st["passthrough"])
        self.assertEqual(st["passthrough_opens"], 0)
        return st

    def task(self, m, name, req, timeout=60):
        path = m.path(".tidefs", "tasks", name)
        with open(path, "w") as f:
            f.write(json.dumps(req))
        deadline = time.monotonic() + timeout
        while True:
            with open(path, "rb") as f:
                t = json.loads(f.read().decode())
            t = t.get("DataRepositoryTask", t)
            if t.get("Lifecycle") in FINISHED:
                return t
            self.assertLess(time.monotonic(), deadline, t)
            time.sleep(0.1)

    def report(self, t, prefix):
        key = "%s/%s/report.csv" % (prefix, t["TaskId"])
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return [ln.split(",") for ln in body.read().decode().splitlines()
                if ln]

    # ---- reads ----

    def test_cached_file_reads_through_the_kernel(self):
        body = pattern_bytes(5 * MiB + 7, "pt")
        self.put("a.bin", body)
        m = self.mounted()
        # Released: an ordinary handle, which fetches.
        self.assertEqual(file_md5(m.path("a.bin")), md5(body))
        self.assertEqual(self.pt_opens(m), 0)
        self.assertEqual(m.state("a.bin"), "archived")
        fetched = m.stats()["bytes_fetched"]
        hits = m.stats()["hits"]
        drop_page_cache()
        self.assertTrue(m.wait_closed())
        # Fully cached: read, pread and mmap all give the same bytes.
        fd = os.open(m.path("a.bin"), os.O_RDONLY)
        try:
            self.assertEqual(md5(pread_all(fd, len(body))), md5(body))
            for off, n in ((0, 1), (MiB - 3, 10), (5 * MiB, 100),
                           (len(body) - 1, 10), (len(body), 10)):
                self.assertEqual(os.pread(fd, n, off), body[off:off + n])
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(mm[MiB - 5:MiB + 5], body[MiB - 5:MiB + 5])
                self.assertEqual(len(mm), len(body))
        finally:
            os.close(fd)
        st = m.stats()
        self.assertEqual(st["bytes_fetched"], fetched)
        # A passthrough open counts as a hit (its reads never reach us).
        self.assertGreater(st["hits"], hits)
        if self.kernel:
            self.assertEqual(st["passthrough_opens"], 1)

    def test_partly_cached_file_is_not_passthrough(self):
        body = pattern_bytes(4 * MiB, "part")
        self.put("p.bin", body)
        m = self.mounted()
        fd = os.open(m.path("p.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 10, 2 * MiB), body[2 * MiB:][:10])
            # A second reader while an ordinary handle is open: ordinary
            # too (the kernel cannot mix the two on one inode).
            with open(m.path("p.bin"), "rb") as f:
                self.assertEqual(md5(f.read()), md5(body))
            self.assertEqual(self.pt_opens(m), 0)
            self.assertEqual(md5(pread_all(fd, len(body))), md5(body))
        finally:
            os.close(fd)
        # The kernel sends the close of fd after close() returns.
        self.assertTrue(m.wait_closed())
        with open(m.path("p.bin"), "rb") as f:
            self.assertEqual(md5(f.read()), md5(body))
        if self.kernel:
            self.assertEqual(self.pt_opens(m), 1)

    def test_new_file_and_exec(self):
        """Local files are passthrough once written; a program runs from
        the mount (exec maps the data file)."""
        m = self.mounted()
        exe = m.path("true")
        shutil.copy("/bin/true", exe)
        os.chmod(exe, 0o755)
        drop_page_cache()
        self.assertTrue(m.wait_closed())
        self.assertEqual(subprocess.run([exe], timeout=30).returncode, 0)
        self.assertEqual(read_file(exe), read_file("/bin/true"))
        self.assertEqual(m.state("true"), "new")
        if self.kernel:
            self.assertGreaterEqual(self.pt_opens(m), 1)

    def test_file_grown_before_it_had_data(self):
        """An empty object has no data file; grown by truncate and then
        written through the same handle, the data file must still be as
        long as the file (reads past its end would find nothing)."""
        self.put("e.bin", b"")
        m = self.mounted()
        want = b"x" * 4096 + bytes(MiB - 4096)
        w = os.open(m.path("e.bin"), os.O_RDWR)
        try:
            os.ftruncate(w, MiB)
            self.assertEqual(os.pwrite(w, b"x" * 4096, 0), 4096)
            r = os.open(m.path("e.bin"), os.O_RDONLY)
            try:
                self.assertEqual(md5(pread_all(r, MiB + 1)), md5(want))
            finally:
                os.close(r)
        finally:
            os.close(w)
        drop_page_cache()
        self.assertEqual(md5(read_file(m.path("e.bin"))), md5(want))
        self.assertEqual(os.stat(m.path("e.bin")).st_size, MiB)

    # ---- mixing with writers ----

    def test_writer_joins_passthrough_reader(self):
        body = pattern_bytes(3 * MiB, "w")
        self.put("w.bin", body)
        m = self.mounted()
        self.assertEqual(file_md5(m.path("w.bin")), md5(body))
        self.assertTrue(m.wait_closed())
        r = os.open(m.path("w.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(r, 4, 0), body[:4])
            w = os.open(m.path("w.bin"), os.O_RDWR)
            try:
                # Dirty from the open on when it joined a passthrough
                # reader (a shared mapping could write unseen).
                self.assertEqual(m.stats()["open_handles"], 2)
                if self.kernel:
                    self.assertEqual(self.pt_opens(m), 2)
                    self.assertEqual(m.state("w.bin"), "dirty")
                self.assertEqual(os.pwrite(w, b"HELLO", MiB - 2), 5)
                self.assertEqual(os.pread(r, 9, MiB - 4),
                                 body[MiB - 4:MiB - 2] + b"HELLO" +
                                 body[MiB + 3:MiB + 5])
                self.assertEqual(os.pread(w, 5, MiB - 2), b"HELLO")
                # Growing the file: the reader sees size and bytes.
                self.assertEqual(os.pwrite(w, b"TAIL", len(body)), 4)
                self.assertEqual(os.fstat(r).st_size, len(body) + 4)
                self.assertEqual(os.pread(r, 10, len(body) - 2),
                                 body[-2:] + b"TAIL")
                os.fsync(w)
            finally:
                os.close(w)
        finally:
            os.close(r)
        self.assertEqual(m.state("w.bin"), "dirty")
        want = bytearray(body)
        want[MiB - 2:MiB + 3] = b"HELLO"
        want += b"TAIL"
        m.unmount()
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(md5(read_file(m2.path("w.bin"))), md5(bytes(want)))
        self.assertEqual(m2.state("w.bin"), "dirty")

    def test_reader_joins_ordinary_writer(self):
        m = self.mounted()
        body = pattern_bytes(2 * MiB, "rw")
        with open(m.path("f.bin"), "wb") as f:
            f.write(body)
        w = os.open(m.path("f.bin"), os.O_WRONLY | os.O_APPEND)
        try:
            with open(m.path("f.bin"), "rb") as f:
                self.assertEqual(md5(f.read()), md5(body))
                os.write(w, b"more")
                f.seek(len(body))
                self.assertEqual(f.read(), b"more")
            self.assertEqual(self.pt_opens(m), 0)
        finally:
            os.close(w)
        self.assertEqual(read_file(m.path("f.bin")), body + b"more")

    def test_shared_mapping_write_beside_passthrough_reader(self):
        body = pattern_bytes(2 * MiB, "map")
        self.put("m.bin", body)
        m = self.mounted()
        self.assertEqual(file_md5(m.path("m.bin")), md5(body))
        r = os.open(m.path("m.bin"), os.O_RDONLY)
        try:
            w = os.open(m.path("m.bin"), os.O_RDWR)
            try:
                with mmap.mmap(w, 0) as mm:
                    mm[100:105] = b"MAPPD"
                    mm.flush()
                self.assertEqual(os.pread(r, 5, 100), b"MAPPD")
            finally:
                os.close(w)
        finally:
            os.close(r)
        # The change is local data to export, never dropped.
        self.assertEqual(m.state("m.bin"), "dirty")
        t = self.task(m, "rel", {
            "Type": RELEASE, "Paths": ["/"],
            "ReleaseConfiguration": {"DurationSinceLastAccess": {
                "Unit": "DAYS", "Value": 0}}})
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        drop_page_cache()
        want = body[:100] + b"MAPPD" + body[105:]
        self.assertEqual(md5(read_file(m.path("m.bin"))), md5(want))

    # ---- tasks ----

    def test_release_and_import_leave_open_file_alone(self):
        v1 = pattern_bytes(3 * MiB, "v1")
        v2 = pattern_bytes(2 * MiB, "v2")
        self.put("o.bin", v1)
        m = self.mounted()
        self.assertEqual(file_md5(m.path("o.bin")), md5(v1))
        self.assertTrue(m.wait_closed())
        fd = os.open(m.path("o.bin"), os.O_RDONLY)
        try:
            t = self.task(m, "rel", {
                "Type": RELEASE, "Paths": ["/"],
                "ReleaseConfiguration": {"DurationSinceLastAccess": {
                    "Unit": "DAYS", "Value": 0}}})
            self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
            self.assertEqual(m.state("o.bin"), "archived")
            self.put("o.bin", v2)
            t = self.task(m, "imp", {"Type": IMPORT, "Report": {
                "Enabled": True, "Path": "s3://%s/rep" % self.bucket,
                "Format": "REPORT_CSV_20191124",
                "Scope": "FAILED_FILES_ONLY"}})
            if self.kernel:
                self.assertEqual(self.pt_opens(m), 1)
            if self.pt_opens(m):
                # The kernel reads the cached bytes without us: they
                # cannot be dropped under it.
                self.assertEqual(t["Lifecycle"], "FAILED", t)
                self.assertEqual(self.report(t, "rep"),
                                 [["o.bin", "failed", "FILE_IN_USE"]])
                self.assertEqual(m.state("o.bin"), "archived")
                self.assertEqual(md5(pread_all(fd, len(v1))), md5(v1))
            else:
                self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        finally:
            os.close(fd)
        # Closed: the import goes through (right after the close, whose
        # release request reaches tidefs a moment later).
        t = self.task(m, "imp2", {"Type": IMPORT})
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(m.state("o.bin"), "released")
        drop_page_cache()
        self.assertEqual(md5(read_file(m.path("o.bin"))), md5(v2))

    def test_declined_by_the_kernel(self):
        """A cache dir the kernel cannot pass reads through to (here on
        overlayfs, already one level of stacking): ordinary handles, no
        error, and one log line."""
        base = os.path.join(self.tmp, "ovl")
        dirs = [os.path.join(base, d) for d in ("lower", "upper", "work",
                                                "merged")]
        for d in dirs:
            os.makedirs(d)
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            "lowerdir=%s,upperdir=%s,workdir=%s" %
                            tuple(dirs[:3]), dirs[3]],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount overlayfs: %s" % r.stderr.strip())
        try:
            body = pattern_bytes(MiB + 3, "ovl")
            self.put("o.bin", body)
            cache = os.path.join(dirs[3], "cache")
            os.mkdir(cache)
            m = self.mount(cache_dir=cache)
            try:
                self.read_without_passthrough(m, "o.bin", body)
                if self.kernel:
                    self.assertEqual(m.log_text().count(
                        "passthrough reads are not available"), 1)
            finally:
                m.unmount()
        finally:
            subprocess.run(["umount", dirs[3]], check=True)

    def test_no_passthrough_option(self):
        body = pattern_bytes(MiB + 1, "off")
        self.put("x.bin", body)
        m = self.mount(args=["--no-passthrough"])
        st = self.read_without_passthrough(m, "x.bin", body)
        self.assertGreater(st["hits"], 0)


if __name__ == "__main__":
    unittest.main()
