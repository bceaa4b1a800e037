# SPDX-License-Identifier: MIT
"""IMPORT_METADATA_FROM_REPOSITORY on a live mount (docs/FSX-SEMANTICS.md):
new objects appear, changed objects of clean files bring their new size and
content (also under an open file), new/dirty files win with
LOCAL_CHANGES_CONFLICT in the report, deletions are never applied, Paths
limit the scope, keys that cannot be POSIX names fail with INVALID_KEY.

Tasks are created by writing the request JSON to MOUNT/.tidefs/tasks/NAME and
followed by reading the same file. New names are always looked up fresh
(never stat'ed before the import), since the kernel caches entries and
attributes for the mount's timeout until the daemon invalidates them."""

import errno
import json
import os
import stat
import time
import unittest

from tidefs_test import (MiB, TidefsTestCase, drop_page_cache, md5,
                         pattern_bytes, posix_meta, pread_all, read_file,
                         write_file)

IMPORT = "IMPORT_METADATA_FROM_REPOSITORY"
FINISHED = ("SUCCEEDED", "FAILED", "CANCELED")


def names(path):
    return sorted(n for n in os.listdir(path) if n != ".tidefs")


class ImportTaskTest(TidefsTestCase):
    TEST_TIMEOUT = 120

    # ---- helpers ----

    def task_file(self, m, name):
        return m.path(".tidefs", "tasks", name)

    def read_task(self, m, name):
        with open(self.task_file(m, name), "rb") as f:
            d = json.loads(f.read().decode())
        return d.get("DataRepositoryTask", d)

    def run_task(self, m, name, paths=None, report_prefix=None,
                 timeout=60):
        req = {"Type": IMPORT}
        if paths is not None:
            req["Paths"] = paths
        if report_prefix is not None:
            req["Report"] = {
                "Enabled": True,
                "Path": "s3://%s/%s" % (self.bucket, report_prefix),
                "Format": "REPORT_CSV_20191124",
                "Scope": "FAILED_FILES_ONLY"}
        with open(self.task_file(m, name), "w") as f:
            f.write(json.dumps(req))
        deadline = time.monotonic() + timeout
        while True:
            t = self.read_task(m, name)
            if t.get("Lifecycle") in FINISHED:
                return t
            if time.monotonic() > deadline:
                self.fail("task %s still %s after %ds" % (
                    name, t.get("Lifecycle"), timeout))
            time.sleep(0.1)

    def report_rows(self, t, report_prefix):
        key = "%s/%s/report.csv" % (report_prefix.rstrip("/"), t["TaskId"])
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        text = body.read().decode()
        return [line.split(",") for line in text.splitlines() if line]

    def counts(self, t):
        s = t["Status"]
        return s["TotalCount"], s["SucceededCount"], s["FailedCount"]

    # ---- tests ----

    def test_new_objects_appear(self):
        self.put("old.txt", b"old")
        m = self.mount()
        self.assertEqual(names(m.mountpoint), ["old.txt"])
        body = pattern_bytes(3 * MiB + 17, "new")
        self.put("new.bin", body,
                 posix_meta(mode=0o100640, uid=1234, gid=2345,
                            mtime_ns=1600000000123456789))
        self.put("empty", b"")
        self.put("d1/", b"", posix_meta(mode=0o40750, uid=7, gid=8))
        self.put("d1/d2/deep.txt", b"deep")
        self.put("lnk", b"d1/d2/deep.txt", posix_meta(mode=0o120777))
        t = self.run_task(m, "imp-new")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(t["Type"], IMPORT)
        self.assertEqual(self.counts(t), (6, 6, 0))

        st = os.stat(m.path("new.bin"))
        self.assertEqual(st.st_size, len(body))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual((st.st_uid, st.st_gid), (1234, 2345))
        self.assertEqual(st.st_mtime_ns, 1600000000123456789)
        self.assertEqual(m.state("new.bin"), "released")
        self.assertEqual(md5(read_file(m.path("new.bin"))), md5(body))

        self.assertEqual(os.stat(m.path("empty")).st_size, 0)
        self.assertEqual(m.state("empty"), "archived")

        st = os.stat(m.path("d1"))
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o750)
        self.assertEqual((st.st_uid, st.st_gid), (7, 8))
        self.assertEqual(st.st_nlink, 3)  # ".", its entry, d2's ".."
        self.assertEqual(read_file(m.path("d1", "d2", "deep.txt")), b"deep")
        self.assertEqual(os.readlink(m.path("lnk")), "d1/d2/deep.txt")
        self.assertEqual(read_file(m.path("lnk")), b"deep")

        # A second run finds nothing new: everything counts, nothing fails.
        t = self.run_task(m, "imp-again")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (6, 6, 0))
        self.assertEqual(m.state("new.bin"), "archived")  # read above

    def test_stats_count_imported_files(self):
        self.put("a", b"a")
        m = self.mount()
        before = sum(m.stats()["states"].values())
        self.put("b", b"b")
        self.put("c", b"")
        t = self.run_task(m, "imp-stats")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        states = m.stats()["states"]
        self.assertEqual(sum(states.values()), before + 2, states)
        self.assertEqual(states.get("released"), 2, states)
        self.assertEqual(states.get("archived"), 1, states)

    def test_many_keys_in_batches(self):
        """More keys than one apply transaction holds, in a new directory
        and an existing one, with a change among them."""
        self.put("big/0000", b"v1")
        m = self.mount()
        self.put_many(("big/%04d" % i, b"%d" % i) for i in range(1, 1300))
        self.put("big/0000", b"v2")
        t = self.run_task(m, "imp-many", timeout=100)
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (1300, 1300, 0))
        got = names(m.path("big"))
        self.assertEqual(got, ["%04d" % i for i in range(1300)])
        self.assertEqual(read_file(m.path("big", "1299")), b"1299")
        drop_page_cache()
        self.assertEqual(read_file(m.path("big", "0000")), b"v2")

    def test_changed_released_file(self):
        v1 = pattern_bytes(2 * MiB, "v1")
        self.put("f.bin", v1)
        m = self.mount()
        v2 = pattern_bytes(2 * MiB + 4096, "v2")
        self.put("f.bin", v2, posix_meta(mode=0o100600))
        t = self.run_task(m, "imp-changed")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (1, 1, 0))
        st = os.stat(m.path("f.bin"))
        self.assertEqual(st.st_size, len(v2))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(m.state("f.bin"), "released")
        self.assertEqual(md5(read_file(m.path("f.bin"))), md5(v2))
        self.assertEqual(m.state("f.bin"), "archived")

    def test_changed_symlink_and_directory_marker(self):
        self.put("l", b"a", posix_meta(mode=0o120777))
        self.put("d/", b"", posix_meta(mode=0o40755))
        m = self.mount()
        # Same (empty) content, so the same ETag: only a newer
        # LastModified, in whole seconds, tells the marker changed.
        time.sleep(1.1)
        self.put("l", b"a/longer/target", posix_meta(mode=0o120777))
        self.put("d/", b"", posix_meta(mode=0o40700, uid=9, gid=9))
        t = self.run_task(m, "imp-link")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (2, 2, 0))
        self.assertEqual(os.readlink(m.path("l")), "a/longer/target")
        st = os.stat(m.path("d"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual((st.st_uid, st.st_gid), (9, 9))

    def test_changed_cached_file_drops_data(self):
        v1 = pattern_bytes(3 * MiB, "v1")
        self.put("c.bin", v1)
        m = self.mount()
        self.assertEqual(md5(read_file(m.path("c.bin"))), md5(v1))
        self.assertEqual(m.state("c.bin"), "archived")
        used = m.stats()["cached_bytes"]
        self.assertGreaterEqual(used, len(v1))
        v2 = pattern_bytes(MiB + 5, "v2")
        self.put("c.bin", v2)
        t = self.run_task(m, "imp-cached")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(m.state("c.bin"), "released")
        self.assertEqual(m.stats()["cached_bytes"], used - len(v1))
        drop_page_cache()  # the kernel's old attributes and pages
        self.assertEqual(os.stat(m.path("c.bin")).st_size, len(v2))
        self.assertEqual(md5(read_file(m.path("c.bin"))), md5(v2))

    def test_changed_under_open_file(self):
        """Same size, new bytes: the open file's ETag and chunk state are
        reloaded, so its next read fetches the new object (not a 412/EIO,
        never a mix of old and new chunks)."""
        size = 4 * MiB
        v1 = pattern_bytes(size, "v1")
        v2 = pattern_bytes(size, "v2")
        self.put("o.bin", v1)
        m = self.mount()
        fd = os.open(m.path("o.bin"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, MiB, 0), v1[:MiB])
            self.put("o.bin", v2)
            t = self.run_task(m, "imp-open")
            self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
            self.assertEqual(m.state("o.bin"), "released")
            drop_page_cache()  # pages only: the inode is in use
            self.assertEqual(md5(pread_all(fd, size)), md5(v2))
        finally:
            os.close(fd)
        self.assertEqual(m.state("o.bin"), "archived")

    def test_dirty_file_conflict_in_report(self):
        self.put("keep.txt", b"remote v1")
        self.put("other.txt", b"other v1")
        m = self.mount()
        with open(m.path("keep.txt"), "r+b") as f:
            f.write(b"LOCAL")
        self.assertEqual(m.state("keep.txt"), "dirty")
        self.put("keep.txt", b"remote v2, longer")
        self.put("other.txt", b"other v2")
        t = self.run_task(m, "imp-conflict", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "FAILED", t)
        self.assertEqual(self.counts(t), (2, 1, 1))
        self.assertIn("Message", t.get("FailureDetails", {}))
        rows = self.report_rows(t, "reports")
        self.assertEqual(rows, [["keep.txt", "failed",
                                 "LOCAL_CHANGES_CONFLICT"]])
        # Local wins: the dirty data is untouched.
        self.assertEqual(read_file(m.path("keep.txt")), b"LOCALe v1")
        self.assertEqual(m.state("keep.txt"), "dirty")
        drop_page_cache()
        self.assertEqual(read_file(m.path("other.txt")), b"other v2")

    def test_replaced_file_is_no_conflict_until_the_object_changes(self):
        """A file deleted or renamed over here left its object in S3; the
        file now at that name replaced it. An import finds that very object
        unchanged (no conflict, local wins); once someone else changes it,
        the new or dirty file there conflicts as usual."""
        self.put("a.txt", b"remote a")
        self.put("b.txt", b"remote b")
        self.put("c.txt", b"remote c")
        m = self.mount()
        os.unlink(m.path("a.txt"))
        write_file(m.path("a.txt"), b"new a")
        write_file(m.path("b.tmp"), b"new b")
        os.rename(m.path("b.tmp"), m.path("b.txt"))
        os.rename(m.path("c.txt"), m.path("a.txt"))  # c's object stays
        t = self.run_task(m, "imp-same", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (3, 3, 0))
        # c.txt has no file here any more: it comes back (deletions and
        # renames are not applied to S3); the others keep their data.
        self.assertEqual(read_file(m.path("a.txt")), b"remote c")
        self.assertEqual(read_file(m.path("b.txt")), b"new b")
        self.assertEqual(read_file(m.path("c.txt")), b"remote c")
        self.assertEqual(m.state("b.txt"), "new")

        # Names that left while their file lived on: renamed away, or one
        # link of two renamed over. Their objects are unchanged too.
        self.put("w.txt", b"remote w")
        self.put("x.txt", b"remote x")
        t = self.run_task(m, "imp-more")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        os.rename(m.path("w.txt"), m.path("w2.txt"))
        write_file(m.path("w.txt"), b"new w")
        os.link(m.path("x.txt"), m.path("x-link.txt"))
        write_file(m.path("x.tmp"), b"new x")
        os.rename(m.path("x.tmp"), m.path("x.txt"))
        t = self.run_task(m, "imp-left", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(read_file(m.path("w.txt")), b"new w")
        self.assertEqual(read_file(m.path("w2.txt")), b"remote w")
        self.assertEqual(read_file(m.path("x.txt")), b"new x")
        self.assertEqual(read_file(m.path("x-link.txt")), b"remote x")

        self.put("b.txt", b"remote b v2")
        t = self.run_task(m, "imp-changed", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "FAILED", t)
        self.assertEqual(self.report_rows(t, "reports"),
                         [["b.txt", "failed", "LOCAL_CHANGES_CONFLICT"]])
        self.assertEqual(read_file(m.path("b.txt")), b"new b")

    def test_new_file_under_a_renamed_directory_is_no_conflict(self):
        """A directory renamed here keeps its files on their old objects
        until they are exported under the new names. A new file at an old
        path is no conflict with that object while it is unchanged; once
        someone else changes it, it is."""
        self.put("d/a", b"remote a")
        self.put("d/b", b"remote b")
        m = self.mount()
        os.rename(m.path("d"), m.path("e"))
        os.mkdir(m.path("d"))
        write_file(m.path("d", "a"), b"new a")
        t = self.run_task(m, "imp-renamed", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(read_file(m.path("d", "a")), b"new a")
        self.assertEqual(read_file(m.path("e", "a")), b"remote a")
        # d/b has no file here any more: it comes back, as ever.
        self.assertEqual(read_file(m.path("d", "b")), b"remote b")

        self.put("d/a", b"remote a v2")
        t = self.run_task(m, "imp-changed", report_prefix="reports")
        self.assertEqual(t["Lifecycle"], "FAILED", t)
        self.assertEqual(self.report_rows(t, "reports"),
                         [["d/a", "failed", "LOCAL_CHANGES_CONFLICT"]])
        self.assertEqual(read_file(m.path("d", "a")), b"new a")
        self.assertEqual(read_file(m.path("e", "a")), b"remote a")

    def test_deletions_not_applied(self):
        self.put("stays.txt", b"s")
        self.put("gone.txt", b"g")
        self.put("dir/gone2.txt", b"g2")
        m = self.mount()
        self.s3.delete_object(Bucket=self.bucket, Key="gone.txt")
        self.s3.delete_object(Bucket=self.bucket, Key="dir/gone2.txt")
        t = self.run_task(m, "imp-del")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (1, 1, 0))
        drop_page_cache()
        self.assertEqual(names(m.mountpoint),
                         ["dir", "gone.txt", "stays.txt"])
        self.assertEqual(os.listdir(m.path("dir")), ["gone2.txt"])

    def test_paths_limit_scope(self):
        self.put("pre/seed.txt", b"seed")
        m = self.mount(prefix="pre")
        self.put("pre/x/1.txt", b"x1")
        self.put("pre/xy.txt", b"xy")
        self.put("pre/y/1.txt", b"y1")
        self.put("outside.txt", b"o")
        t = self.run_task(m, "imp-scope",
                          paths=["s3://%s/pre/x/" % self.bucket,
                                 "s3://%s/pre/x/1" % self.bucket])
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (1, 1, 0))
        self.assertEqual(read_file(m.path("x", "1.txt")), b"x1")
        # (listings, not lookups: a failed lookup is cached by the kernel)
        self.assertEqual(names(m.mountpoint), ["seed.txt", "x"])
        # "pre/x" (no slash) selects every key starting with it.
        t = self.run_task(m, "imp-scope2",
                          paths=["s3://%s/pre/x" % self.bucket])
        self.assertEqual(self.counts(t), (2, 2, 0))
        self.assertEqual(read_file(m.path("xy.txt")), b"xy")
        self.assertEqual(names(m.mountpoint), ["seed.txt", "x", "xy.txt"])
        # The whole repository; nothing outside the prefix comes in.
        t = self.run_task(m, "imp-all",
                          paths=["s3://%s/pre" % self.bucket])
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (4, 4, 0))
        self.assertEqual(read_file(m.path("y", "1.txt")), b"y1")
        self.assertEqual(names(m.mountpoint),
                         ["seed.txt", "x", "xy.txt", "y"])

    def test_prefix_marker_updates_root(self):
        """The "prefix/" object carries the root's metadata; the root is
        not a local change of its own (it has no object until then)."""
        self.put("pre/seed.txt", b"seed")
        m = self.mount(prefix="pre")
        self.put("pre/", b"", posix_meta(mode=0o40750, uid=5, gid=6))
        t = self.run_task(m, "imp-root")
        self.assertEqual(t["Lifecycle"], "SUCCEEDED", t)
        self.assertEqual(self.counts(t), (2, 2, 0))
        t = self.run_task(m, "imp-root2")
        self.assertEqual(self.counts(t), (2, 2, 0))
        # The kernel holds the root's attributes: look from a new mount.
        m.unmount()
        m2 = self.mount(prefix="pre", cache_dir=m.cache_dir)
        st = os.stat(m2.mountpoint)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o750)
        self.assertEqual((st.st_uid, st.st_gid), (5, 6))

    def test_path_outside_repository(self):
        m = self.mount(prefix="pre")
        name = "imp-outside"
        try:
            t = self.run_task(m, name,
                              paths=["s3://%s/other/" % self.bucket])
        except OSError as e:  # refused by the request validator
            self.assertEqual(e.errno, errno.EINVAL)
            return
        self.assertEqual(t["Lifecycle"], "FAILED", t)
        self.assertIn("outside", t["FailureDetails"]["Message"])

    def test_invalid_key_and_type_conflict(self):
        self.put("f", b"file")
        m = self.mount()
        self.put("a/" + "x" * 300, b"too long a name")
        self.put("f/under", b"a key below a local file")
        self.put("ok.txt", b"ok")
        t = self.run_task(m, "imp-bad", report_prefix="rep")
        self.assertEqual(t["Lifecycle"], "FAILED", t)
        self.assertEqual(self.counts(t), (4, 2, 2))
        rows = sorted(self.report_rows(t, "rep"))
        self.assertEqual(rows, [
            ["a/" + "x" * 300, "failed", "INVALID_KEY"],
            ["f/under", "failed", "PATH_TYPE_CONFLICT"]])
        self.assertEqual(read_file(m.path("ok.txt")), b"ok")
        self.assertEqual(read_file(m.path("f")), b"file")


if __name__ == "__main__":
    unittest.main()
