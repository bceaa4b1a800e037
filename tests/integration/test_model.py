# SPDX-License-Identifier: MIT
"""A state-machine test: seeded random sequences of what users and tasks do
to a handful of files, each checked against a model of what every file must
hold, locally and in S3.

Steps: pwrite (inside, across and past the end, 1 byte to 3 MiB), truncate
up and down, fallocate (punch hole, zero range), writes through mmap, reads
through fresh and long-held handles (read-only and read-write, so some are
passthrough), rename over other files, unlink and create, export (then S3
must hold every file's model), release (all, or one path), AUTO_RELEASE_DATA,
import after someone else changed an exported object or added one (the
model takes S3's bytes; names deleted or renamed here come back from their
objects), dropped page cache, clean remounts and kill -9 with a remount.
The whole tree is compared with the model every few steps and at the end.

The bugs it found (each has a test of its own now): a read-modify-write's
fetched chunk forgotten by a crash and fetched again over the write;
replaced files (`sed -i`, rename-over, rm and create) failing every export;
an export replacing the object a renamed file still needed; hard links that
could not be exported twice; imports reporting a conflict for a file that
replaced an unchanged object.

TIDEFS_MODEL_STEPS and TIDEFS_MODEL_SEEDS (comma-separated) run longer or
other sequences locally."""

import ctypes
import json
import uuid
import mmap
import os
import random
import time
import unittest

from tidefs_test import (MiB, TidefsTestCase, difference, drop_page_cache,
                         fusermount_unmount, pwrite_all, read_file,
                         write_file)

STEPS = int(os.environ.get("TIDEFS_MODEL_STEPS", "400"))
SEEDS = [int(s) for s in os.environ["TIDEFS_MODEL_SEEDS"].split(",")] \
    if os.environ.get("TIDEFS_MODEL_SEEDS") else None

FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_ZERO_RANGE = 16

libc = ctypes.CDLL(None, use_errno=True)

libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                           ctypes.c_long]


class Model(TidefsTestCase):
    TEST_TIMEOUT = 900

    def run_seed(self, seed, cache_size):
        self.rng = random.Random(seed)
        self.seed = seed
        self.cache_size = cache_size
        self.model = {}      # name -> bytearray: what the file must hold
        self.synced = set()  # names whose object holds the model, unchanged
        # name -> the key of the object its file's never-fetched bytes come
        # from: its own name after an import or export, the old name after
        # a rename, until the next export. Someone else changing an object
        # a renamed-away file still stands on makes that file lost where it
        # is incomplete (docs/FSX-SEMANTICS.md, file states), so the model
        # leaves such objects alone.
        self.stands = {}
        self.held = {}       # name -> fd kept open across steps
        self.held_rw = set()
        self.linked = set()  # names that are or were hard links
        self.dirs = set()    # directories (one level: "dNN")
        self.ops = []
        self.ntask = 0
        if self.mounts:  # a fresh bucket for every sequence after the first
            self.bucket = "b-" + uuid.uuid4().hex[:12]
            self.s3.create_bucket(Bucket=self.bucket)
        for i in range(3):
            body = self.rng.randbytes(self.rng.choice(
                [0, 1, 5000, MiB + 3, 3 * MiB + 17]))
            self.put("imp%d" % i, body)
            self.model["imp%d" % i] = bytearray(body)
            self.stands["imp%d" % i] = "imp%d" % i
        self.cache = os.path.join(self.tmp, "cache-%d" % seed)
        self.m = self.mount(cache_dir=self.cache,
                            args=["--cache-size", cache_size])
        try:
            for step in range(STEPS):
                try:
                    self.step(step)
                except OSError as e:  # with the steps that led to it
                    self.fail_model("step %d: %s" % (step, e))
        finally:
            self.close_held()  # or the failed mount cannot be unmounted
        self.check_all("at the end")
        drop_page_cache()
        self.check_all("at the end, page cache dropped")
        self.remount(kill=True)
        self.check_all("at the end, after kill -9")
        self.assertEqual(self.m.unmount(), 0)

    # ---- helpers ----

    def note(self, text):
        self.ops.append(text)

    def fail_model(self, msg):
        path = os.path.join(self.tmp, "steps-%d.txt" % self.seed)
        with open(path, "w") as f:
            f.write("\n".join(self.ops) + "\n")
        self.fail("seed %d, cache %s: %s\nlast steps (all in %s):\n  %s" % (
            self.seed, self.cache_size, msg, path,
            "\n  ".join(self.ops[-30:])))

    def pick(self):
        return self.rng.choice(sorted(self.model))

    def close_held(self, name=None):
        for n in list(self.held):
            if name is None or n == name:
                os.close(self.held.pop(n))
                self.held_rw.discard(n)

    def check_all(self, label):
        names, dirs = set(), set()
        for e in os.scandir(self.m.mountpoint):
            if e.name == ".tidefs":
                continue
            if e.is_dir(follow_symlinks=False):
                dirs.add(e.name)
                names.update(e.name + "/" + f for f in os.listdir(e.path))
            else:
                names.add(e.name)
        if names != set(self.model) or dirs != self.dirs:
            self.fail_model("%s: files %s, dirs %s; model %s, %s" % (
                label, sorted(names), sorted(dirs), sorted(self.model),
                sorted(self.dirs)))
        for n, data in self.model.items():
            got = read_file(self.m.path(n))
            if got != bytes(data):
                self.fail_model("%s: %s: %s" % (
                    label, n, difference(got, bytes(data))))

    def task(self, req):
        self.ntask += 1
        name = "t%d" % self.ntask
        p = self.m.path(".tidefs", "tasks", name)
        write_file(p, json.dumps(req).encode())
        deadline = time.monotonic() + 120
        while True:
            with open(p, "rb") as f:
                t = json.loads(f.read().decode())
            t = t.get("DataRepositoryTask", t)
            if t.get("Lifecycle") in ("SUCCEEDED", "FAILED", "CANCELED"):
                break
            if time.monotonic() > deadline:
                self.fail_model("task %s stuck: %s" % (req["Type"], t))
            time.sleep(0.05)
        self.note("%s %s -> %s %s" % (req["Type"], req.get("Paths", ""),
                                      t["Lifecycle"], t.get("Status")))
        if t["Lifecycle"] != "SUCCEEDED":
            self.fail_model("task %s: %s\n%s" % (
                req["Type"], t, self.m.log_tail(20)))
        return t

    def remount(self, kill):
        self.close_held()
        if kill:
            self.m.kill()
            # Reaped, not just a zombie leader: its other threads may still
            # be exiting and holding the cache dir's lock.
            self.m.proc.wait(30)
            # The dead connection stays mounted until it is detached.
            fusermount_unmount(self.m.mountpoint, lazy=True)
        else:
            self.assertEqual(self.m.unmount(), 0)
        self.m = self.mount(cache_dir=self.cache,
                            args=["--cache-size", self.cache_size])

    def move_name(self, a, b):
        """The file named a is named b now (b's own file, if any, gone)."""
        self.model[b] = self.model.pop(a)
        self.stands.pop(b, None)
        if a in self.stands:
            self.stands[b] = self.stands.pop(a)
        if a in self.linked:
            self.linked.add(b)
        if a in self.held:
            self.held[b] = self.held.pop(a)
            if a in self.held_rw:
                self.held_rw.discard(a)
                self.held_rw.add(b)
        self.changed(a, b)

    def changed(self, *names):
        for n in names:
            self.synced.discard(n)

    # ---- steps ----

    def step(self, step):
        r = self.rng.random()
        if r < 0.30:
            self.do_write()
        elif r < 0.36:
            n = self.pick()
            d = self.model[n]
            size = self.rng.randrange(0, len(d) + 2 * MiB)
            os.truncate(self.m.path(n), size)
            if size < len(d):
                del d[size:]
            else:
                d.extend(b"\0" * (size - len(d)))
            self.changed(n)
            self.note("truncate %s %d" % (n, size))
        elif r < 0.42:
            self.do_fallocate()
        elif r < 0.48:
            self.do_mmap_write()
        elif r < 0.58:
            self.do_read()
        elif r < 0.62:
            n = self.pick()
            if n in self.held:
                self.close_held(n)
                self.note("close held %s" % n)
            else:
                flags = self.rng.choice([os.O_RDONLY, os.O_RDWR])
                self.held[n] = os.open(self.m.path(n), flags)
                if flags == os.O_RDWR:
                    self.held_rw.add(n)
                self.note("hold %s" % n)
        elif r < 0.64:
            self.do_rename()
        elif r < 0.655:
            self.do_unlink(step)
        elif r < 0.665:
            n = self.pick()
            os.chmod(self.m.path(n), self.rng.choice([0o600, 0o644, 0o640]))
            self.changed(n)  # a metadata-only export: CopyObject
            self.note("chmod %s" % n)
        elif r < 0.67:
            a = self.pick()
            b = "l%d" % step
            os.link(self.m.path(a), self.m.path(b))
            self.model[b] = self.model[a]  # one inode: one bytearray
            if a in self.stands:
                self.stands[b] = self.stands[a]
            self.linked.update((a, b))
            self.changed(a, b)
            self.note("link %s %s" % (a, b))
        elif r < 0.75:
            self.task({"Type": "EXPORT_TO_REPOSITORY"})
            for n, d in self.model.items():
                body = self.s3.get_object(Bucket=self.bucket,
                                          Key=n)["Body"].read()
                if body != bytes(d):
                    self.fail_model("S3 %s after export: %s" % (
                        n, difference(body, bytes(d))))
                self.synced.add(n)
                self.stands[n] = n
        elif r < 0.82:
            req = {"Type": "RELEASE_DATA_FROM_FILESYSTEM",
                   "ReleaseConfiguration": {"DurationSinceLastAccess": {
                       "Unit": "DAYS", "Value": 0}}}
            if self.rng.random() < 0.5:
                req["Paths"] = [self.pick()]
            self.task(req)
        elif r < 0.85:
            self.task({"Type": "AUTO_RELEASE_DATA", "CapacityToRelease": 1})
        elif r < 0.875:
            self.do_import(step)
        elif r < 0.883:
            self.do_mkdir(step)
        elif r < 0.891:
            self.do_rename_dir(step)
        elif r < 0.895:
            self.do_rmdir()
        elif r < 0.90:
            drop_page_cache()
            self.note("drop page cache")
        elif r < 0.93:
            self.check_all("step %d" % step)
            self.note("check all")
        elif r < 0.965:
            self.remount(kill=False)
            self.note("remount")
            self.check_all("after a remount")
        else:
            self.remount(kill=True)
            self.note("kill -9 and remount")
            self.check_all("after kill -9")

    def do_write(self):
        n = self.pick()
        d = self.model[n]
        ln = self.rng.choice([1, 100, 4096, 70000, MiB + 5,
                              self.rng.randrange(1, 3 * MiB)])
        off = self.rng.randrange(0, len(d) + MiB // 2 + 1)
        data = self.rng.randbytes(ln)
        fd = self.held.get(n)
        own = fd is None or n not in self.held_rw or self.rng.random() < 0.5
        if own:
            fd = os.open(self.m.path(n), os.O_RDWR)
        try:
            pwrite_all(fd, data, off)
        finally:
            if own:
                os.close(fd)
        if off > len(d):
            d.extend(b"\0" * (off - len(d)))
        d[off:off + ln] = data
        self.changed(n)
        self.note("write %s off %d len %d%s" % (n, off, ln,
                                                "" if own else " (held)"))

    def pick_range(self, most):
        """A non-empty file and a range of at most `most` bytes inside it,
        or None."""
        n = self.pick()
        d = self.model[n]
        if not d:
            return None
        off = self.rng.randrange(0, len(d))
        return n, d, off, self.rng.randrange(1, min(len(d) - off, most) + 1)

    def do_fallocate(self):
        picked = self.pick_range(2 * MiB)
        if not picked:
            return
        n, d, off, ln = picked
        mode = self.rng.choice([FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                FALLOC_FL_ZERO_RANGE])
        fd = os.open(self.m.path(n), os.O_RDWR)
        try:
            if libc.fallocate(fd, mode, off, ln) != 0:
                e = ctypes.get_errno()
                self.fail_model("fallocate %s: %s" % (n, os.strerror(e)))
        finally:
            os.close(fd)
        d[off:off + ln] = b"\0" * ln
        self.changed(n)
        self.note("fallocate %s mode %d off %d len %d" % (n, mode, off, ln))

    def do_mmap_write(self):
        picked = self.pick_range(300000)
        if not picked:
            return
        n, d, off, ln = picked
        data = self.rng.randbytes(ln)
        fd = os.open(self.m.path(n), os.O_RDWR)
        try:
            with mmap.mmap(fd, len(d)) as mm:
                mm[off:off + ln] = data
                if self.rng.random() < 0.5:
                    mm.flush()
        finally:
            os.close(fd)
        d[off:off + ln] = data
        self.changed(n)
        self.note("mmap write %s off %d len %d" % (n, off, ln))

    def do_read(self):
        n = self.pick()
        d = self.model[n]
        off = self.rng.randrange(0, len(d) + 10)
        ln = self.rng.randrange(1, 3 * MiB)
        fd = self.held.get(n)
        own = fd is None
        if own:
            fd = os.open(self.m.path(n), os.O_RDONLY)
        try:
            got = os.pread(fd, ln, off)
        finally:
            if own:
                os.close(fd)
        want = bytes(d[off:off + ln])
        if got != want:
            self.fail_model("pread %s off %d len %d: %s" % (
                n, off, ln, difference(got, want)))
        self.note("read %s off %d len %d" % (n, off, ln))

    def do_rename(self):
        a = self.pick()
        b = self.rng.choice([self.new_name("new%d" % self.rng.randrange(4))]
                            + sorted(self.model))
        if a == b:
            return
        if b in self.model and self.model[b] is self.model[a]:
            # Two links of one file: rename does nothing (POSIX).
            os.rename(self.m.path(a), self.m.path(b))
            self.note("rename %s -> %s (same file)" % (a, b))
            return
        os.rename(self.m.path(a), self.m.path(b))
        self.close_held(b)
        self.move_name(a, b)
        self.note("rename %s -> %s" % (a, b))

    def do_unlink(self, step):
        n = self.pick()
        os.unlink(self.m.path(n))
        del self.model[n]
        self.stands.pop(n, None)
        self.close_held(n)
        self.changed(n)
        self.note("unlink %s" % n)
        if len(self.model) < 3:
            name = self.new_name("c%d" % step)
            data = self.rng.randbytes(self.rng.randrange(0, 2 * MiB))
            write_file(self.m.path(name), data)
            self.model[name] = bytearray(data)
            self.note("create %s" % name)

    def new_name(self, leaf):
        """leaf at the root or, as often, in one of the directories."""
        if self.dirs and self.rng.random() < 0.5:
            return self.rng.choice(sorted(self.dirs)) + "/" + leaf
        return leaf

    def do_mkdir(self, step):
        d = "d%d" % step
        os.mkdir(self.m.path(d))
        self.dirs.add(d)
        self.note("mkdir %s" % d)

    def do_rename_dir(self, step):
        """A directory and everything in it moves (one transaction)."""
        if not self.dirs:
            return
        a = self.rng.choice(sorted(self.dirs))
        b = "d%d" % step
        os.rename(self.m.path(a), self.m.path(b))
        self.dirs.discard(a)
        self.dirs.add(b)
        for old in [n for n in self.model if n.startswith(a + "/")]:
            self.move_name(old, b + old[len(a):])
        self.note("rename dir %s -> %s" % (a, b))

    def do_rmdir(self):
        empty = [d for d in sorted(self.dirs)
                 if not any(n.startswith(d + "/") for n in self.model)]
        if not empty:
            return
        d = self.rng.choice(empty)
        os.rmdir(self.m.path(d))
        self.dirs.discard(d)
        self.note("rmdir %s" % d)

    def do_import(self, step):
        changed = []
        stood_on = {k for m, k in self.stands.items() if m != k}
        candidates = sorted(self.synced - self.linked - stood_on)
        if candidates and self.rng.random() < 0.7:
            n = self.rng.choice(candidates)
            self.close_held(n)
            body = self.rng.randbytes(self.rng.choice(
                [0, 10, 5000, MiB + 1, 2 * MiB + 3]))
            self.put(n, body)
            self.model[n] = bytearray(body)
            self.stands[n] = n
            changed.append(n)
        if self.rng.random() < 0.3:
            self.put("ext%d" % step, self.rng.randbytes(
                self.rng.randrange(0, 3 * MiB)))
        self.note("someone else changed %s" % changed)
        self.task({"Type": "IMPORT_METADATA_FROM_REPOSITORY"})
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        for o in listing.get("Contents", []):
            if o["Key"].endswith("/"):  # a directory's marker
                if o["Key"][:-1] not in self.dirs:
                    self.dirs.add(o["Key"][:-1])
                    self.note("import brings directory %s" % o["Key"])
                continue
            if "/" in o["Key"]:
                self.dirs.add(o["Key"].split("/")[0])
            if o["Key"] not in self.model:
                # New, or deleted or renamed away here: it comes back.
                self.model[o["Key"]] = bytearray(self.s3.get_object(
                    Bucket=self.bucket, Key=o["Key"])["Body"].read())
                self.synced.add(o["Key"])
                self.stands[o["Key"]] = o["Key"]
                self.note("import brings %s" % o["Key"])

    # ---- the tests ----

    def test_sequences_with_a_large_cache(self):
        for seed in SEEDS or [2, 300]:
            with self.subTest(seed=seed):
                self.run_seed(seed, "1G")

    def test_sequences_with_a_small_cache(self):
        """64M: fetches, releases and the eviction lane under pressure."""
        for seed in SEEDS or [400, 401]:
            with self.subTest(seed=seed):
                self.run_seed(seed, "64M")


if __name__ == "__main__":
    unittest.main()
