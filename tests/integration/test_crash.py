# SPDX-License-Identifier: MIT
"""Crash safety of the write path (issue 3, "Durability"): every operation
that returned success survives `kill -9` of the daemon and a remount of the
same cache dir. The whole tree is compared with what was recorded before the
kill: content md5, type, mode, owner, size, times in ns, xattrs (including
the file state), link counts, inode numbers (so hard links stay one inode),
symlink targets and device numbers. Files unlinked while open and orphaned
data files are cleaned up at the next mount."""

import mmap
import os
import signal
import stat
import subprocess
import sys
import time
import unittest

from tidefs_test import (SETTLE_TIMEOUT, MiB, MountError, TidefsTestCase,
                         difference, file_md5, fusermount_unmount, md5,
                         pattern_bytes, posix_meta, random_bytes, read_file,
                         tidefs_bin, write_file)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data_file(cache_dir, ino):
    """CACHE_DIR/data/<ino % 256 as 2 hex>/<ino> (cache/chunk.h)."""
    return os.path.join(cache_dir, "data", "%02x" % (ino & 0xff), str(ino))


def snapshot(root):
    """Everything under root except .tidefs, from lstat/xattrs/readlink only
    (no data reads, so nothing can change atimes)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d != ".tidefs"]
            filenames = [f for f in filenames if f != ".tidefs"]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            e = {"type": stat.S_IFMT(st.st_mode),
                 "mode": oct(stat.S_IMODE(st.st_mode)),
                 "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                 "ino": st.st_ino, "mtime_ns": st.st_mtime_ns,
                 "ctime_ns": st.st_ctime_ns}
            if not stat.S_ISDIR(st.st_mode):
                # Directory atimes may move when the tree is listed.
                e["atime_ns"] = st.st_atime_ns
                e["size"] = st.st_size
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = st.st_rdev
            try:
                names = os.listxattr(p, follow_symlinks=False)
            except OSError as err:
                names = ["<listxattr errno %d>" % err.errno]
            xs = {}
            for n in sorted(names):
                try:
                    xs[n] = os.getxattr(p, n, follow_symlinks=False).hex()
                except OSError as err:
                    xs[n] = "<errno %d>" % err.errno
            e["xattrs"] = xs
            snap[os.path.relpath(p, root)] = e
    return snap


def link_groups(snap):
    by = {}
    for rel, e in snap.items():
        if e["type"] != stat.S_IFDIR:
            by.setdefault(e["ino"], []).append(rel)
    return sorted(sorted(g) for g in by.values() if len(g) > 1)


class Crash(TidefsTestCase):
    TEST_TIMEOUT = 120

    def crash(self, m):
        """SIGKILL the daemon, then lazily unmount the dead mount."""
        self.assertIsNotNone(m.proc, "crash tests need a foreground mount")
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(20)
        r = fusermount_unmount(m.mountpoint, lazy=True)
        self.assertFalse(m.is_mounted(), "dead mount still attached: %s"
                         % r.stderr.decode(errors="replace"))

    def assertSameTree(self, before, after, label):
        self.assertEqual(sorted(after), sorted(before), label + ": names")
        for rel in sorted(before):
            self.assertEqual(after[rel], before[rel], "%s: %s" % (label, rel))
        self.assertEqual(link_groups(after), link_groups(before),
                         label + ": hard-link groups")

    def assertContent(self, m, content, label):
        for rel, data in sorted(content.items()):
            self.assertEqual(file_md5(m.path(rel)), md5(data),
                             "%s: content of %s" % (label, rel))

    def test_kill9_and_remount_keeps_every_change(self):
        imp = {
            "imp/a.bin": random_bytes(3 * MiB + 1),
            "imp/b.bin": random_bytes(MiB + 7),
            "imp/c.bin": random_bytes(2 * MiB),
            "imp/gone.bin": b"to be deleted",
            "imp/dir/x.bin": random_bytes(100000),
            "imp/meta.bin": b"with posix metadata",
        }
        for k, v in imp.items():
            meta = None
            if k == "imp/meta.bin":
                meta = posix_meta(mode=0o100640, uid=1000, gid=1000,
                                  mtime_ns=1_600_000_000_123_456_789)
            self.put(k, v, meta)
        m = self.mount()
        p = m.path
        content = {}  # expected content of every regular file, by path

        def put_file(rel, data, mode=0o644, fsync=False):
            write_file(p(rel), data, mode, fsync)
            content[rel] = data

        # Directories and files of many sizes; some fsynced, some not.
        os.makedirs(p("d1", "d2", "d3"))
        os.mkdir(p("empty"))
        for i, size in enumerate((0, 1, 4096, MiB + 3, 5 * MiB + 11)):
            put_file("d1/f%d" % i, random_bytes(size), fsync=(i % 2 == 0))
            put_file("d1/d2/g%d" % i, pattern_bytes(size, i))
        put_file("d1/d2/d3/deep", b"deep")
        fsync_dir(p("d1"))
        # Renames: a file, over an existing file, a whole directory.
        put_file("tmpname", b"renamed file")
        os.rename(p("tmpname"), p("d1", "final"))
        content["d1/final"] = content.pop("tmpname")
        put_file("over-src", b"replacement")
        put_file("over-dst", b"replaced")
        os.rename(p("over-src"), p("over-dst"))
        content["over-dst"] = content.pop("over-src")
        os.rename(p("d1", "d2"), p("moved-d2"))
        for rel in [r for r in content if r.startswith("d1/d2/")]:
            content["moved-d2/" + rel[len("d1/d2/"):]] = content.pop(rel)
        # Modes and owners.
        put_file("suid", b"#!/bin/sh\n", fsync=True)
        os.chmod(p("suid"), 0o4755)
        put_file("private", b"secret")
        os.chmod(p("private"), 0o600)
        os.chmod(p("empty"), 0o1777)
        os.chmod(p("moved-d2"), 0o2750)
        os.chown(p("private"), 65534, 65534)
        os.chown(p("moved-d2"), 1000, 1001)
        # Hard links: three names of one inode, and a renamed pair.
        put_file("h1", b"hard linked", fsync=True)
        os.link(p("h1"), p("d1", "h2"))
        os.link(p("h1"), p("moved-d2", "h3"))
        content["d1/h2"] = content["moved-d2/h3"] = content["h1"]
        put_file("p1", b"pair")
        os.link(p("p1"), p("p2"))
        os.rename(p("p2"), p("d1", "p2-renamed"))
        content["d1/p2-renamed"] = content["p1"]
        # Symlinks.
        os.symlink("d1/final", p("rel-link"))
        os.symlink("/nonexistent/absolute", p("abs-link"))
        os.symlink("x" * 1000, p("long-link"))
        os.symlink("moved-d2", p("dir-link"))
        # Xattrs.
        os.setxattr(p("d1", "f1"), "user.a", bytes(range(256)))
        os.setxattr(p("d1", "f1"), "user.empty", b"")
        os.setxattr(p("d1", "f1"), "user.removed", b"x")
        os.removexattr(p("d1", "f1"), "user.removed")
        os.setxattr(p("moved-d2"), "user.dir", b"on a dir")
        # Special files.
        os.mkfifo(p("fifo"), 0o640)
        os.mknod(p("chr"), stat.S_IFCHR | 0o600, os.makedev(1, 7))
        # Imported files: read-modify-write, truncate, chmod, unlink,
        # directory rename, and a read-only touch (stays archived).
        fd = os.open(p("imp", "a.bin"), os.O_WRONLY)
        try:
            os.pwrite(fd, b"PATCH" * 1000, MiB + 100)
        finally:
            os.close(fd)
        a = imp["imp/a.bin"]
        content["imp/a.bin"] = a[:MiB + 100] + b"PATCH" * 1000 + \
            a[MiB + 5100:]
        os.truncate(p("imp", "b.bin"), 1000)
        content["imp/b.bin"] = imp["imp/b.bin"][:1000]
        os.chmod(p("imp", "c.bin"), 0o600)
        content["imp/c.bin"] = imp["imp/c.bin"]
        os.unlink(p("imp", "gone.bin"))
        os.rename(p("imp", "dir"), p("imp", "dir2"))
        content["imp/dir2/x.bin"] = imp["imp/dir/x.bin"]
        content["imp/meta.bin"] = imp["imp/meta.bin"]
        # Times with ns precision, set last (children touch parents).
        times = {"d1/f1": (1_234_567_890_123_456_789,) * 2,
                 "d1/final": (1_000_000_000_000_000_001,
                              1_500_000_000_999_999_999),
                 "moved-d2": (1_111_111_111_111_111_111,
                              1_222_222_222_222_222_222),
                 "imp/c.bin": (1_300_000_000_000_000_003,
                               1_300_000_000_000_000_004)}
        for rel, ns in times.items():
            os.utime(p(rel), ns=ns)
        os.utime(p("rel-link"), ns=(1_400_000_000_000_000_005,
                                    1_400_000_000_000_000_006),
                 follow_symlinks=False)
        # A file unlinked while open: its data must not outlive the crash.
        vfd = os.open(p("victim"), os.O_CREAT | os.O_RDWR, 0o644)
        os.write(vfd, random_bytes(3 * MiB))
        os.fsync(vfd)
        victim_ino = os.fstat(vfd).st_ino
        os.unlink(p("victim"))
        self.assertTrue(os.path.exists(data_file(m.cache_dir, victim_ino)),
                        "expected the open unlinked file's data at %s"
                        % data_file(m.cache_dir, victim_ino))

        before = snapshot(m.mountpoint)
        for rel in ("d1/final", "moved-d2", "imp/c.bin"):
            self.assertEqual((before[rel]["atime_ns"] if "atime_ns" in
                              before[rel] else times[rel][0],
                              before[rel]["mtime_ns"]), times[rel], rel)
        self.assertEqual(before["imp/a.bin"]["xattrs"].get(
            "user.tidefs.state"), b"dirty".hex())
        self.assertEqual(before["d1/f0"]["xattrs"].get("user.tidefs.state"),
                         b"new".hex())
        self.assertEqual(before["imp/meta.bin"]["xattrs"].get(
            "user.tidefs.state"), b"released".hex())
        self.assertEqual(before["h1"]["nlink"], 3)
        try:
            self.crash(m)
        finally:
            try:
                os.close(vfd)
            except OSError:
                pass
        # An orphan data file nobody references (e.g. left by a crash
        # between creating the data file and committing the inode).
        orphan = data_file(m.cache_dir, 999_999_999)
        with open(orphan, "wb") as f:
            f.write(b"orphan" * 100000)

        m2 = self.mount(cache_dir=m.cache_dir)
        after = snapshot(m2.mountpoint)
        self.assertSameTree(before, after, "after kill -9")
        self.assertContent(m2, content, "after kill -9")
        self.assertFalse(os.path.exists(data_file(m.cache_dir, victim_ino)),
                         "data of the file unlinked while open survived the "
                         "remount")
        self.assertFalse(os.path.exists(orphan),
                         "orphan data file not cleaned up at mount")
        self.assertEqual(os.readlink(m2.path("rel-link")), "d1/final")
        self.assertEqual(m2.state("d1", "f0"), "new")
        self.assertEqual(m2.state("imp", "a.bin"), "dirty")

        # One more change, another crash right away: recovery is repeatable.
        after2 = snapshot(m2.mountpoint)  # content reads may move atimes
        write_file(m2.path("after-remount"), b"second life")
        content["after-remount"] = b"second life"
        os.rename(m2.path("d1", "f4"), m2.path("d1", "f4-renamed"))
        content["d1/f4-renamed"] = content.pop("d1/f4")
        before2 = snapshot(m2.mountpoint)
        self.assertEqual(len(before2), len(after2) + 1)
        self.crash(m2)
        m3 = self.mount(cache_dir=m.cache_dir)
        self.assertSameTree(before2, snapshot(m3.mountpoint),
                            "after the second kill -9")
        self.assertContent(m3, content, "after the second kill -9")
        self.assertEqual(m3.unmount(), 0)

    def test_kill9_during_a_busy_writer(self):
        """A writer creates, writes, closes, renames and fsyncs files in a
        loop and journals each completed step; the daemon is killed in the
        middle. Every journalled step is there after the remount, and the
        tree is consistent (every file reads to its size without error)."""
        m = self.mount()
        os.mkdir(m.path("w"))
        journal = os.path.join(self.tmp, "journal")
        code = r"""
import hashlib, os, random, sys
root, journal = sys.argv[1], sys.argv[2]
j = open(journal, "a", buffering=1)
def pattern(size, seed):
    return random.Random(seed).randbytes(size)
i = 0
while True:
    name = "f%05d" % i
    data = pattern((i * 7919) % 200000, name)
    fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    if i % 7 == 0:
        os.fsync(fd)
    os.close(fd)
    digest = hashlib.md5(data).hexdigest()
    j.write("write %s %d %s\n" % (name, len(data), digest))
    if i % 10 == 3:
        os.rename(os.path.join(root, name), os.path.join(root, "r" + name))
        j.write("rename %s r%s\n" % (name, name))
    if i % 13 == 5:
        cur = "r" + name if i % 10 == 3 else name
        os.chmod(os.path.join(root, cur), 0o600)
        j.write("chmod %s\n" % cur)
    i += 1
"""
        child = subprocess.Popen([sys.executable, "-c", code, m.path("w"),
                                  journal], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 2 * SETTLE_TIMEOUT
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if child.poll() is not None:
                    break
                try:
                    with open(journal) as f:
                        if sum(1 for _ in f) >= 300:
                            break
                except FileNotFoundError:
                    pass
            self.assertIsNone(child.poll(), "the writer died on its own "
                              "(write path not working?)")
            self.crash(m)
        finally:
            child.kill()
            child.wait(20)
        with open(journal) as f:
            lines = [ln.split() for ln in f if ln.endswith("\n")]
        self.assertGreater(len(lines), 50, "too few completed steps to test")
        expect = {}   # name -> (size, md5, mode)
        for ln in lines:
            if ln[0] == "write":
                expect[ln[1]] = [int(ln[2]), ln[3], 0o644]
            elif ln[0] == "rename":
                expect[ln[2]] = expect.pop(ln[1])
            elif ln[0] == "chmod":
                expect[ln[1]][2] = 0o600
        # The last journalled file may have been renamed or chmodded by a
        # step that was in flight (done, but not yet journalled).
        last = max(expect, key=lambda n: n.lstrip("r"))
        m2 = self.mount(cache_dir=m.cache_dir)
        present = set(os.listdir(m2.path("w")))
        for name, (size, digest, mode) in sorted(expect.items()):
            with self.subTest(name=name):
                modes = {mode}
                if name == last:
                    modes.add(0o600)
                    if name not in present and "r" + name in present:
                        name = "r" + name
                self.assertIn(name, present)
                st = os.stat(m2.path("w", name))
                self.assertEqual(st.st_size, size)
                self.assertIn(stat.S_IMODE(st.st_mode), modes)
                self.assertEqual(file_md5(m2.path("w", name)), digest)
        renamed_away = {ln[1] for ln in lines if ln[0] == "rename"}
        self.assertFalse(present & renamed_away,
                         "renamed-away names came back: %s"
                         % sorted(present & renamed_away)[:5])
        # At most the step in flight is extra; whatever is there reads.
        self.assertLessEqual(len(present - set(expect)), 2,
                             sorted(present - set(expect)))
        for name in present:
            st = os.stat(m2.path("w", name))
            with open(m2.path("w", name), "rb") as f:
                self.assertEqual(len(f.read()), st.st_size, name)
        self.assertEqual(m2.unmount(), 0)

    def test_kill9_right_after_partial_writes_into_uncached_chunks(self):
        """A write that covers a chunk of an S3-backed file only partly
        fetches the chunk first (read-modify-write). The fetched chunk's
        presence record is written in batches, seconds later; the write's
        own commit must record it, or a crash right after forgets that the
        chunk is local and the next read fetches the object's old bytes
        over the written ones. Covers a file never read (released), one
        read partly, and writes by mmap."""
        old = {n: pattern_bytes(size, n) for n, size in
               (("never_read.bin", 900 * 1024), ("partly.bin", 3 * MiB + 5),
                ("mapped.bin", 2 * MiB + 100))}
        for name, data in old.items():
            self.put(name, data)
        m = self.mount()
        want = {n: bytearray(d) for n, d in old.items()}

        def pwrite(name, off, data):
            fd = os.open(m.path(name), os.O_WRONLY)
            try:
                self.assertEqual(os.pwrite(fd, data, off), len(data))
            finally:
                os.close(fd)
            want[name][off:off + len(data)] = data

        with open(m.path("partly.bin"), "rb") as f:
            f.seek(2 * MiB)
            self.assertEqual(f.read(4096), old["partly.bin"][2 * MiB:
                                                            2 * MiB + 4096])
        pwrite("never_read.bin", 27345, b"n" * 70000)
        pwrite("partly.bin", MiB - 10, b"p" * 20)  # across chunks 0 and 1
        pwrite("partly.bin", 2 * MiB + 100, b"q" * 100)  # a cached chunk
        fd = os.open(m.path("mapped.bin"), os.O_RDWR)
        try:
            with mmap.mmap(fd, 0) as mm:
                mm[MiB + 7:MiB + 7 + 5000] = b"m" * 5000
                mm.flush()
        finally:
            os.close(fd)
        want["mapped.bin"][MiB + 7:MiB + 7 + 5000] = b"m" * 5000
        # Well inside the presence records' batching delay (5 s).
        self.crash(m)
        m2 = self.mount(cache_dir=m.cache_dir)
        for name, data in want.items():
            self.assertEqual(m2.state(name), "dirty", name)
            with open(m2.path(name), "rb") as f:
                got = f.read()
            self.assertEqual(md5(got), md5(bytes(data)), "%s: %s" % (
                name, difference(got, bytes(data))))

    def test_orphans_and_unlinked_open_files_cleaned_at_clean_mount(self):
        m = self.mount()
        write_file(m.path("keep"), b"keep" * 1000)
        keep_ino = os.stat(m.path("keep")).st_ino
        fd = os.open(m.path("open-unlinked"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"x" * MiB)
            ino = os.fstat(fd).st_ino
            os.unlink(m.path("open-unlinked"))
        finally:
            os.close(fd)
        self.assertEqual(m.unmount(), 0)
        orphans = [data_file(m.cache_dir, n) for n in (999_999_999,
                                                        1_024_000)]
        for o in orphans:
            with open(o, "wb") as f:
                f.write(b"junk" * 1000)
        m2 = self.mount(cache_dir=m.cache_dir)
        for o in orphans:
            self.assertFalse(os.path.exists(o), "orphan %s survived" % o)
        self.assertFalse(os.path.exists(data_file(m.cache_dir, ino)))
        self.assertTrue(os.path.exists(data_file(m.cache_dir, keep_ino)))
        self.assertEqual(open(m2.path("keep"), "rb").read(), b"keep" * 1000)
        self.assertEqual(sorted(n for n in os.listdir(m2.mountpoint)
                                if n != ".tidefs"), ["keep"])

    def other_boot(self, cache_dir):
        """Make the metadata's sync points look written in another boot,
        as after a power loss (cache/meta_safe.c: two slots of a 128-byte
        header, boot id at 32, FNV-1a 64 checksum at 120, then the page)."""
        path = os.path.join(cache_dir, "meta", "safe")
        with open(path, "rb") as f:
            raw = bytearray(f.read())
        psize = int.from_bytes(raw[12:16], "little")
        n = 0
        for at in range(0, len(raw) - 128 - psize + 1, 128 + psize):
            slot = raw[at:at + 128 + psize]
            if slot[:8] != b"TIDESAFE":
                continue
            slot[32:72] = b"00000000-0000-4000-8000-000000000000".ljust(
                40, b"\0")
            slot[120:128] = bytes(8)
            h = 0xcbf29ce484222325
            for b in slot:
                h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
            slot[120:128] = h.to_bytes(8, "little")
            raw[at:at + 128 + psize] = slot
            n += 1
        self.assertGreater(n, 0, "no sync point in %s" % path)
        with open(path, "wb") as f:
            f.write(raw)

    def test_power_loss_goes_back_to_the_last_sync_point(self):
        """A power loss (simulated: kill -9, then the sync points made
        another boot's) rolls the metadata back to the last sync point, an
        fsync here: what was synced is there, what came after is not (the
        new directory, the chmod), the log says so, the orphaned data file
        goes (its number may come back as an empty spare), and the store
        takes changes again."""
        m = self.mount(args=["--sync-interval", "3600"])
        body = random_bytes(3 * MiB + 17)
        write_file(m.path("synced"), body, fsync=True)
        os.mkdir(m.path("later"))
        write_file(m.path("later/f"), b"later" * 1000)
        later_ino = os.stat(m.path("later/f")).st_ino
        os.chmod(m.path("synced"), 0o600)
        self.crash(m)
        self.other_boot(m.cache_dir)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertIn("went down after the last sync point", m2.log_text())
        self.assertEqual(file_md5(m2.path("synced")), md5(body))
        self.assertEqual(stat.S_IMODE(os.stat(m2.path("synced")).st_mode),
                         0o644)
        self.assertFalse(os.path.exists(m2.path("later")))
        # gone, or an empty spare again (the inode number is free again)
        df = data_file(m.cache_dir, later_ino)
        self.assertEqual(os.path.getsize(df) if os.path.exists(df) else 0, 0)
        write_file(m2.path("after"), b"after")
        self.assertEqual(m2.unmount(), 0)
        m3 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(open(m3.path("after"), "rb").read(), b"after")
        self.assertEqual(file_md5(m3.path("synced")), md5(body))
        self.assertNotIn("went down", m3.log_text())  # a clean unmount

    def test_power_loss_after_fdatasync_of_rewrites_in_place(self):
        """fdatasync of a file rewritten in place (a database's pages, a
        wrapped WAL) needs no new metadata sync point while one in force
        holds the file's size, state and chunks: only times changed. One
        that grew the file makes one. After a power loss both files read
        back as they were fdatasync'ed."""
        m = self.mount(args=["--sync-interval", "3600"])
        a0, b0 = random_bytes(2 * MiB), random_bytes(MiB)
        write_file(m.path("db"), a0, fsync=True)
        write_file(m.path("log"), b0, fsync=True)
        syncs = m.stats()["metadata_syncs"]
        fa = os.open(m.path("db"), os.O_RDWR)
        fb = os.open(m.path("log"), os.O_RDWR)
        try:
            a = bytearray(a0)
            for i in range(20):
                page = random_bytes(4096)
                off = (i * 7919 * 4096) % (len(a) - 4096)
                self.assertEqual(os.pwrite(fa, page, off), 4096)
                a[off:off + 4096] = page
                os.fdatasync(fa)
            self.assertEqual(m.stats()["metadata_syncs"], syncs,
                             "fdatasync of rewrites in place made sync"
                             " points")
            tail = random_bytes(5000)
            self.assertEqual(os.pwrite(fb, tail, len(b0)), len(tail))
            os.fdatasync(fb)
            self.assertEqual(m.stats()["metadata_syncs"], syncs + 1,
                             "fdatasync of a grown file made no sync point")
            # Changes after the last sync are what a power loss takes.
            os.pwrite(fa, b"unsynced", 0)
            os.pwrite(fb, b"unsynced!", len(b0) + len(tail))
        finally:
            os.close(fa)
            os.close(fb)
        self.crash(m)
        self.other_boot(m.cache_dir)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertIn("went down after the last sync point", m2.log_text())
        got = read_file(m2.path("db"))
        self.assertEqual(len(got), len(a))
        # Its first bytes were rewritten after the sync: either is fine.
        self.assertEqual(md5(got[8:]), md5(bytes(a[8:])))
        self.assertEqual(read_file(m2.path("log")), b0 + tail)

    def test_power_loss_after_fdatasync_into_a_chunk_fetched_since(self):
        """A chunk fetched after the last sync point, then written into
        and fdatasync'ed: its presence record must be in a sync point too,
        or after a power loss the chunk would be fetched again from S3 over
        the write."""
        body = random_bytes(4 * MiB)
        self.put("obj", body)
        m = self.mount(args=["--sync-interval", "3600"])
        exp = bytearray(body)
        fd = os.open(m.path("obj"), os.O_RDWR)
        try:
            self.assertEqual(os.pwrite(fd, b"first", 0), 5)
            exp[0:5] = b"first"
            os.fsync(fd)
            self.assertEqual(os.pread(fd, 100, 2 * MiB), body[2 * MiB:
                                                              2 * MiB + 100])
            syncs = m.stats()["metadata_syncs"]  # records the fetch
            patch = random_bytes(4096)
            self.assertEqual(os.pwrite(fd, patch, 2 * MiB + 100), 4096)
            exp[2 * MiB + 100:2 * MiB + 4196] = patch
            os.fdatasync(fd)
            self.assertGreater(m.stats()["metadata_syncs"], syncs)
        finally:
            os.close(fd)
        write_file(m.path("later"), b"not synced")  # a power loss takes it
        self.crash(m)
        self.other_boot(m.cache_dir)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertIn("went down after the last sync point", m2.log_text())
        self.assertEqual(md5(read_file(m2.path("obj"))), md5(bytes(exp)))
        self.assertFalse(os.path.exists(m2.path("later")))

    def salvage(self, cache_dir):
        """`tidefs salvage CACHE_DIR DEST` into a fresh DEST; returns it."""
        out = os.path.join(self.tmp, "salvage-%d" % time.monotonic_ns())
        r = subprocess.run([tidefs_bin(), "salvage", cache_dir, out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("copied to", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(out, "SALVAGE.txt")))
        return out

    def test_damaged_metadata_is_refused_and_left_alone(self):
        """A store damaged while nothing protected it (a power loss after
        its sync point lapsed, a disk that loses writes) is found by the
        check after an unclean shutdown: the mount fails with one clear
        line, nothing is mounted, data.mdb and the data files stay exactly
        as they were, and once the store is whole again it mounts with
        everything."""
        m = self.mount()
        files = {"f%03d" % i: pattern_bytes(1000 + 37 * i, i)
                 for i in range(200)}
        os.mkdir(m.path("sub"))
        files["sub/deep"] = b"deep" * 999
        for name, data in files.items():
            write_file(m.path(name), data)
        os.symlink("sub/deep", m.path("link"))
        inos = {name: os.stat(m.path(name)).st_ino for name in files}
        self.crash(m)
        # The whole store: every file comes out by its name.
        out = self.salvage(m.cache_dir)
        for name, data in files.items():
            self.assertEqual(file_md5(os.path.join(out, "files", name)),
                             md5(data), name)
        self.assertEqual(os.readlink(os.path.join(out, "files", "link")),
                         "sub/deep")
        self.assertFalse(os.path.exists(os.path.join(out, "lost+found")))
        mdb = os.path.join(m.cache_dir, "meta", "data.mdb")
        with open(mdb, "rb") as f:
            head = f.read(2 * 4096)
            # mm_last_pg at 136 and mm_txnid at 144 of each meta page
            metas = [(int.from_bytes(head[p + 144:p + 152], "little"),
                      int.from_bytes(head[p + 136:p + 144], "little"))
                     for p in (0, 4096)]
            last = max(metas)[1]
            f.seek(0)
            whole = f.read((last + 1) * 4096)

        def data_files():
            out = {}
            for sub in sorted(os.listdir(os.path.join(m.cache_dir, "data"))):
                d = os.path.join(m.cache_dir, "data", sub)
                for name in os.listdir(d):
                    out[sub + "/" + name] = file_md5(os.path.join(d, name))
            return out

        before = data_files()
        # Every page but the two meta pages lost: LMDB alone would read
        # this tree and crash or find nothing, and the orphan scan would
        # then remove every data file.
        with open(mdb, "r+b") as f:
            f.seek(2 * 4096)
            f.write(bytes((last - 1) * 4096))
        with open(mdb, "rb") as f:
            damaged = f.read((last + 1) * 4096)
        m2 = self.mount(cache_dir=m.cache_dir, start=False)
        with self.assertRaises(MountError) as cm:
            m2.start(timeout=60)
        self.assertFalse(m2.is_mounted())
        text = str(cm.exception)
        self.assertIn("is damaged", text)
        self.assertIn("nothing was changed", text)
        with open(mdb, "rb") as f:
            self.assertEqual(f.read((last + 1) * 4096), damaged)
        self.assertEqual(data_files(), before)
        r = subprocess.run([tidefs_bin(), "check", m.cache_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is damaged", r.stderr)
        # The damaged store names nothing: every file's data comes out by
        # its inode number, and salvage changes nothing either.
        out = self.salvage(m.cache_dir)
        for name, data in files.items():
            self.assertEqual(
                file_md5(os.path.join(out, "lost+found", str(inos[name]))),
                md5(data), name)
        with open(mdb, "rb") as f:
            self.assertEqual(f.read((last + 1) * 4096), damaged)
        self.assertEqual(data_files(), before)
        with open(mdb, "r+b") as f:
            f.write(whole)
        r = subprocess.run([tidefs_bin(), "check", m.cache_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("intact", r.stdout)
        m3 = self.mount(cache_dir=m.cache_dir)
        self.assertContent(m3, files, "after the store was mended")
        r = subprocess.run([tidefs_bin(), "check", m.cache_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use by a tidefs mount", r.stderr)

    def data_inos(self, cache_dir):
        inos = set()
        for sub in os.listdir(os.path.join(cache_dir, "data")):
            for name in os.listdir(os.path.join(cache_dir, "data", sub)):
                inos.add(int(name))
        return inos

    def test_spare_data_files_never_outlive_the_mount(self):
        """Empty data files made ahead for the next inode numbers (so a
        new file's first write finds one) are removed at a clean unmount,
        and after kill -9 at the next mount; numbers that became
        directories or FIFOs keep no data file."""
        m = self.mount()
        os.mkdir(m.path("d"))
        write_file(m.path("d", "f"), b"x" * 5000)
        write_file(m.path("empty"), b"")
        os.mkfifo(m.path("fifo"))
        os.symlink("d/f", m.path("l"))
        names = ("d", "d/f", "empty", "fifo", "l")
        ino = {n: os.lstat(m.path(n)).st_ino for n in names}
        with_data = {ino["d/f"], ino["l"], ino["empty"]}
        self.crash(m)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(open(m2.path("d", "f"), "rb").read(), b"x" * 5000)
        for n in ("g1", "g2", "g3"):
            os.mkdir(m2.path(n))
            write_file(m2.path(n, "f"), b"y" * 100)
        with_data |= {os.stat(m2.path(n, "f")).st_ino
                      for n in ("g1", "g2", "g3")}
        self.assertEqual(m2.unmount(), 0)
        left = self.data_inos(m.cache_dir)
        self.assertLessEqual(left, with_data, "stray data files")
        self.assertIn(ino["d/f"], left)
        self.assertIn(ino["l"], left)
        # A data file under a directory's number (a spare that became the
        # directory, left by a crash) goes at the next mount.
        stray = data_file(m.cache_dir, ino["d"])
        with open(stray, "wb") as f:
            f.write(b"")
        m3 = self.mount(cache_dir=m.cache_dir)
        self.assertFalse(os.path.exists(stray), "data file of a directory")
        self.assertEqual(os.readlink(m3.path("l")), "d/f")
        self.assertEqual(open(m3.path("g2", "f"), "rb").read(), b"y" * 100)
        self.assertEqual(m3.unmount(), 0)
        self.assertLessEqual(self.data_inos(m.cache_dir), with_data)


if __name__ == "__main__":
    unittest.main()
