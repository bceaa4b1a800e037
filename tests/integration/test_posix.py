# SPDX-License-Identifier: MIT
"""POSIX conformance of the write path, pjdfstest-style: every syscall's
success and error cases, as Linux/ext4 answers them, against a real mount
(issue 3, "Tests").

Areas: open (O_CREAT/O_EXCL/O_TRUNC/O_APPEND and the errors), mkdir, rmdir,
unlink (incl. open-then-unlink), link (link counts, inode identity), symlink,
rename (files, dirs, over existing, RENAME_NOREPLACE / RENAME_EXCHANGE via
renameat2, ENOTEMPTY, EISDIR/ENOTDIR, EINVAL), chmod, chown, truncate and
ftruncate, utimensat (ns, UTIME_NOW, UTIME_OMIT), mkfifo/mknod, user xattrs
and the reserved user.tidefs.* names, fallocate, fsync, ENAMETOOLONG, the
parent directory's times, and permission checks across users (a forked child
drops to uid 65534 / 65533; the mount uses -o allow_other).
"""

import ctypes
import errno
import os
import pickle
import random
import select
import signal
import socket
import stat
import subprocess
import time
import unittest

from tidefs_test import (SETTLE_TIMEOUT, MiB, TidefsTestCase,
                         fusermount_unmount, md5, random_bytes, read_file,
                         wait_until, write_file)

NOBODY = 65534  # uid and gid
# Linux 6.2's VFS clears S_ISGID without group execute for a caller outside
# the file's group (setattr_should_drop_sgid); tidefs follows the kernel.
VFS_DROPS_SGID_NOGROUP = tuple(
    int(x) for x in os.uname().release.split("-")[0].split(".")[:2]) >= (6, 2)
OTHER = 65533   # a second unprivileged uid and gid

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SYS_renameat2_x86_64 = 316

_libc = ctypes.CDLL(None, use_errno=True)


def _raise_errno(what, path=None):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)), path)


def renameat2(old, new, flags):
    f = getattr(_libc, "renameat2", None)
    if f is not None:
        f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                      ctypes.c_char_p, ctypes.c_uint]
        f.restype = ctypes.c_int
        r = f(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    else:
        r = _libc.syscall(ctypes.c_long(SYS_renameat2_x86_64),
                          ctypes.c_int(AT_FDCWD),
                          ctypes.c_char_p(os.fsencode(old)),
                          ctypes.c_int(AT_FDCWD),
                          ctypes.c_char_p(os.fsencode(new)),
                          ctypes.c_uint(flags))
    if r != 0:
        _raise_errno("renameat2", old)


class _timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime, flags=0):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    def ts(t):
        if t in (UTIME_NOW, UTIME_OMIT):
            return _timespec(0, t)
        return _timespec(t[0], t[1])
    arr = (_timespec * 2)(ts(atime), ts(mtime))
    _libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                ctypes.c_void_p, ctypes.c_int]
    r = _libc.utimensat(AT_FDCWD, os.fsencode(path), ctypes.byref(arr),
                        flags)
    if r != 0:
        _raise_errno("utimensat", path)


def fallocate(fd, mode, offset, length):
    _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int,
                                ctypes.c_int64, ctypes.c_int64]
    r = _libc.fallocate(fd, mode, offset, length)
    if r != 0:
        _raise_errno("fallocate(mode=%#x)" % mode)


def as_user(uid, gid, fn, groups=(), timeout=20):
    """Run fn() in a forked child running as uid/gid (supplementary groups
    `groups`). Returns fn's (picklable) result; an OSError in the child is
    re-raised here with the same errno."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into unittest
        code = 0
        try:
            os.close(rfd)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            try:
                res = ("ok", fn())
            except OSError as e:
                res = ("oserror", e.errno, str(e))
            except BaseException as e:  # noqa: B902
                res = ("exc", repr(e))
            try:
                data = pickle.dumps(res)
            except Exception as e:
                data = pickle.dumps(("exc", "unpicklable: %r" % e))
            while data:
                n = os.write(wfd, data)
                data = data[n:]
        except BaseException:  # noqa: B902
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("child as uid %d did not finish in %ds"
                                     % (uid, timeout))
            r, _, _ = select.select([rfd], [], [], left)
            if r:
                b = os.read(rfd, 65536)
                if not b:
                    break
                data += b
    finally:
        os.close(rfd)
    os.waitpid(pid, 0)
    if not data:
        raise AssertionError("child as uid %d died without a result" % uid)
    res = pickle.loads(data)
    if res[0] == "ok":
        return res[1]
    if res[0] == "oserror":
        raise OSError(res[1], res[2])
    raise AssertionError("child as uid %d raised %s" % (uid, res[1]))


def nobody(fn, **kw):
    return as_user(NOBODY, NOBODY, fn, **kw)


def other(fn, **kw):
    return as_user(OTHER, OTHER, fn, **kw)


def user_write(path, data, mode=0o644):
    write_file(path, data, mode)
    return True


def mode_of(path, follow=True):
    st = os.stat(path) if follow else os.lstat(path)
    return stat.S_IMODE(st.st_mode)


class PosixCase(TidefsTestCase):
    """A fresh empty mount (-o allow_other) per test; umask 022; the temp
    dirs above the mount point opened up so other uids can reach it."""

    TEST_TIMEOUT = 60

    def setUp(self):
        super().setUp()
        os.chmod(self.class_tmp, 0o755)
        os.chmod(self.tmp, 0o755)
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        self.m = self.mount(args=["-o", "allow_other"])

    def p(self, *parts):
        return self.m.path(*parts)

    def pub(self, name="pub", mode=0o1777):
        """A world-writable directory (sticky by default) owned by root."""
        d = self.p(name)
        os.mkdir(d)
        os.chmod(d, mode)
        return d

    def tick(self):
        # Let the clock move so that a changed timestamp is observable.
        time.sleep(0.02)

    def assertErrnoIn(self, codes, fn, *a, **kw):
        with self.assertRaises(OSError) as cm:
            fn(*a, **kw)
        self.assertIn(cm.exception.errno, codes,
                      "expected one of %s, got %s (%s)" % (
                          [errno.errorcode.get(c, c) for c in codes],
                          errno.errorcode.get(cm.exception.errno),
                          cm.exception))
        return cm.exception

    def names(self, d):
        return sorted(n for n in os.listdir(d) if n != ".tidefs")


# -------------------------------------------------------------- open ----

class Open(PosixCase):

    def test_creat_mode_owner_umask(self):
        fd = os.open(self.p("f"), os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        st = os.stat(self.p("f"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual((st.st_uid, st.st_gid, st.st_size, st.st_nlink),
                         (0, 0, 0, 1))
        self.assertEqual(self.names(self.m.mountpoint), ["f"])
        pub = self.pub()

        def create_as_user():
            os.umask(0o077)
            fd = os.open(os.path.join(pub, "u"), os.O_CREAT | os.O_RDWR,
                         0o666)
            os.write(fd, b"user data")
            os.close(fd)
            return True
        nobody(create_as_user)
        st = os.stat(os.path.join(pub, "u"))
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY),
                         "a created file belongs to the caller")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(read_file(os.path.join(pub, "u")), b"user data")

    def test_creat_existing_keeps_content(self):
        write_file(self.p("f"), b"keep me")
        fd = os.open(self.p("f"), os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        self.assertEqual(read_file(self.p("f")), b"keep me")
        self.assertEqual(mode_of(self.p("f")), 0o644,
                         "O_CREAT on an existing file must not change mode")

    def test_excl(self):
        write_file(self.p("f"), b"x")
        self.assertErrno(errno.EEXIST, os.open, self.p("f"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.mkdir(self.p("d"))
        self.assertErrno(errno.EEXIST, os.open, self.p("d"),
                         os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o644)
        # O_EXCL does not follow symlinks, even dangling ones.
        os.symlink("target-missing", self.p("dangling"))
        self.assertErrno(errno.EEXIST, os.open, self.p("dangling"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        self.assertFalse(os.path.lexists(self.p("target-missing")))
        fd = os.open(self.p("g"), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                     0o640)
        os.write(fd, b"new")
        os.close(fd)
        self.assertEqual(read_file(self.p("g")), b"new")
        self.assertEqual(mode_of(self.p("g")), 0o640)

    def test_creat_through_dangling_symlink_creates_target(self):
        os.symlink("t", self.p("l"))
        fd = os.open(self.p("l"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"via link")
        os.close(fd)
        self.assertEqual(read_file(self.p("t")), b"via link")
        self.assertTrue(os.path.islink(self.p("l")))

    def test_trunc(self):
        write_file(self.p("f"), b"0123456789" * 1000)
        ino = os.stat(self.p("f")).st_ino
        st0 = os.stat(self.p("f"))
        self.tick()
        fd = os.open(self.p("f"), os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        st = os.stat(self.p("f"))
        self.assertEqual(st.st_size, 0)
        self.assertEqual(st.st_ino, ino)
        self.assertEqual(read_file(self.p("f")), b"")
        self.assertGreater(st.st_mtime_ns, st0.st_mtime_ns)
        self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)
        # O_TRUNC then write: only the new bytes.
        fd = os.open(self.p("f"), os.O_RDWR | os.O_TRUNC)
        os.write(fd, b"abc")
        os.close(fd)
        self.assertEqual(read_file(self.p("f")), b"abc")

    def test_rdonly_trunc_truncates(self):
        """Linux truncates on O_RDONLY | O_TRUNC (asking for write
        permission, as for any O_TRUNC); so does tidefs."""
        write_file(self.p("f"), b"0123456789")
        os.chmod(self.p("f"), 0o644)
        os.close(os.open(self.p("f"), os.O_RDONLY | os.O_TRUNC))
        self.assertEqual(os.stat(self.p("f")).st_size, 0)
        self.assertEqual(read_file(self.p("f")), b"")
        write_file(self.p("f"), b"0123456789")
        self.assertErrno(errno.EACCES, lambda: nobody(
            lambda: os.close(os.open(self.p("f"), os.O_RDONLY | os.O_TRUNC))))
        self.assertEqual(read_file(self.p("f")), b"0123456789")

    def test_trunc_of_an_empty_file_and_set_id_bits(self):
        """As on ext4: open with O_TRUNC marks mtime and ctime even when
        the file was empty already, and when the caller lacks CAP_FSETID
        clears S_ISUID, and S_ISGID when group-executable or the caller is
        not in the file's group (libfuse asks for atomic O_TRUNC, so the
        kernel leaves all of it to the open)."""
        f = self.p("e")
        write_file(f, b"")
        os.utime(f, ns=(10**18, 10**18))
        st0 = os.stat(f)
        self.tick()
        os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
        st = os.stat(f)
        self.assertGreater(st.st_mtime_ns, st0.st_mtime_ns)
        self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)

        def trunc_open():
            os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
            return True
        os.chmod(f, 0o6777)
        trunc_open()
        self.assertEqual(mode_of(f), 0o6777, "root keeps them")
        # S_ISGID without group execute goes too when the caller is not
        # in the file's group (the VFS since Linux 6.2; before, it stays),
        # and stays when it is.
        nogroup = 0o767 if VFS_DROPS_SGID_NOGROUP else 0o2767
        for mode, group, left in ((0o6777, 0, 0o777), (0o6767, 0, nogroup),
                                  (0o4777, 0, 0o777),
                                  (0o6767, NOBODY, 0o2767)):
            os.chown(f, 0, group)
            os.chmod(f, mode)
            self.assertTrue(nobody(trunc_open))
            self.assertEqual(mode_of(f), left, "%o" % mode)
        # Its own file: the owner without CAP_FSETID loses them too.
        os.chown(f, NOBODY, NOBODY)
        os.chmod(f, 0o4700)
        write_file(f, b"data")
        self.assertTrue(nobody(trunc_open))
        self.assertEqual(mode_of(f), 0o700)
        self.assertEqual(os.stat(f).st_size, 0)

    def test_append(self):
        write_file(self.p("f"), b"head:")
        fd = os.open(self.p("f"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"one,")
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"two,")
            os.pwrite(fd, b"three", 0)  # Linux: pwrite on O_APPEND appends
        finally:
            os.close(fd)
        self.assertEqual(read_file(self.p("f")), b"head:one,two,three")
        # Two appenders interleave without overwriting each other.
        fa = os.open(self.p("f"), os.O_WRONLY | os.O_APPEND)
        fb = os.open(self.p("f"), os.O_WRONLY | os.O_APPEND)
        try:
            for i in range(50):
                os.write(fa, b"A%02d" % i)
                os.write(fb, b"B%02d" % i)
        finally:
            os.close(fa)
            os.close(fb)
        data = read_file(self.p("f"))
        self.assertEqual(len(data), len(b"head:one,two,three") + 300)
        for i in range(50):
            self.assertIn(b"A%02d" % i, data)
            self.assertIn(b"B%02d" % i, data)

    def test_errors(self):
        os.mkdir(self.p("d"))
        write_file(self.p("f"), b"x")
        self.assertErrno(errno.EISDIR, os.open, self.p("d"), os.O_WRONLY)
        self.assertErrno(errno.EISDIR, os.open, self.p("d"), os.O_RDWR)
        self.assertErrno(errno.EISDIR, os.open, self.p("d"),
                         os.O_CREAT | os.O_WRONLY, 0o644)
        self.assertErrno(errno.ENOTDIR, os.open, self.p("f", "x"),
                         os.O_RDONLY)
        self.assertErrno(errno.ENOTDIR, os.open, self.p("f", "x"),
                         os.O_CREAT | os.O_WRONLY, 0o644)
        self.assertErrno(errno.ENOTDIR, os.open, self.p("f"),
                         os.O_RDONLY | os.O_DIRECTORY)
        self.assertErrno(errno.ENOENT, os.open, self.p("missing"),
                         os.O_RDONLY)
        self.assertErrno(errno.ENOENT, os.open, self.p("nodir", "x"),
                         os.O_CREAT | os.O_WRONLY, 0o644)
        os.symlink("f", self.p("lnk"))
        self.assertErrno(errno.ELOOP, os.open, self.p("lnk"),
                         os.O_RDONLY | os.O_NOFOLLOW)
        os.symlink("loop2", self.p("loop1"))
        os.symlink("loop1", self.p("loop2"))
        self.assertErrno(errno.ELOOP, os.open, self.p("loop1"), os.O_RDONLY)
        self.assertEqual(self.names(self.m.mountpoint),
                         ["d", "f", "lnk", "loop1", "loop2"])

    def test_write_read_back_across_chunks(self):
        data = random_bytes(3 * MiB + 12345)
        write_file(self.p("big"), data)
        self.assertEqual(os.stat(self.p("big")).st_size, len(data))
        self.assertEqual(md5(read_file(self.p("big"))), md5(data))
        fd = os.open(self.p("big"), os.O_RDWR)
        try:
            os.pwrite(fd, b"X" * 10, MiB - 5)
            os.pwrite(fd, b"Y" * 3, len(data) + 100)  # a hole, then Y
            self.assertEqual(os.pread(fd, 20, MiB - 10),
                             data[MiB - 10:MiB - 5] + b"X" * 10
                             + data[MiB + 5:MiB + 10])
        finally:
            os.close(fd)
        exp = bytearray(data)
        exp[MiB - 5:MiB + 5] = b"X" * 10
        exp += b"\0" * 100 + b"YYY"
        self.assertEqual(md5(read_file(self.p("big"))), md5(bytes(exp)))

    def test_mode_zero_create_fd_still_writable(self):
        """The creating open gets the access it asked for, whatever the
        new file's mode; later opens are checked against the mode."""
        pub = self.pub()
        path = os.path.join(pub, "m0")

        def create():
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0)
            try:
                os.write(fd, b"written through the creating fd")
                os.ftruncate(fd, 10)
                os.fsync(fd)
                return os.pread(fd, 100, 0)
            finally:
                os.close(fd)
        self.assertEqual(nobody(create), b"written th")
        self.assertEqual(mode_of(path), 0)
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.open(path, os.O_RDONLY))
        self.assertEqual(read_file(path), b"written th")  # root may

    def test_readdir_after_many_creates_and_unlinks(self):
        os.mkdir(self.p("d"))
        names = ["f%04d" % i for i in range(600)]
        for n in names:
            os.close(os.open(self.p("d", n), os.O_CREAT | os.O_WRONLY,
                             0o644))
        self.assertEqual(sorted(os.listdir(self.p("d"))), names)
        for n in names[::2]:
            os.unlink(self.p("d", n))
        self.assertEqual(sorted(os.listdir(self.p("d"))), names[1::2])
        # Entries removed while a directory stream is open are not returned
        # twice and the stream still ends.
        seen = []
        with os.scandir(self.p("d")) as it:
            for i, e in enumerate(it):
                seen.append(e.name)
                if i == 10:
                    for n in names[1::2][100:200]:
                        os.unlink(self.p("d", n))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(os.listdir(self.p("d"))),
                         names[1::2][:100] + names[1::2][200:])


# ------------------------------------------------------- name lengths ----

class NameLength(PosixCase):

    def test_255_ok_256_enametoolong(self):
        ok = "a" * 255
        bad = "b" * 256
        ok_utf8 = "\u00e9" * 127 + "x"     # 255 bytes
        bad_utf8 = "\u00e9" * 128          # 256 bytes
        write_file(self.p("src"), b"s")
        ops = [
            ("create", lambda n: os.close(os.open(
                self.p(n), os.O_CREAT | os.O_WRONLY, 0o644))),
            ("mkdir", lambda n: os.mkdir(self.p("d", n))),
            ("mkfifo", lambda n: os.mkfifo(self.p("fifo", n))),
            ("symlink", lambda n: os.symlink("src", self.p("s", n))),
            ("link", lambda n: os.link(self.p("src"), self.p("l", n))),
            ("rename", lambda n: self._rename_fresh(n)),
        ]
        for sub in ("d", "fifo", "s", "l", "r"):
            os.mkdir(self.p(sub))
        for what, fn in ops:
            with self.subTest(op=what):
                for name in (ok, ok_utf8):
                    fn(name)
                for name in (bad, bad_utf8):
                    self.assertErrno(errno.ENAMETOOLONG, fn, name)
        self.assertEqual(os.stat(self.p(ok)).st_size, 0)
        self.assertIn(ok, os.listdir(self.m.mountpoint))
        self.assertIn(ok_utf8, os.listdir(self.p("r")))
        # Lookup of a too-long name: ENAMETOOLONG, not ENOENT.
        self.assertErrno(errno.ENAMETOOLONG, os.stat, self.p(bad))
        self.assertErrno(errno.ENAMETOOLONG, os.unlink, self.p(bad))
        self.assertEqual(os.statvfs(self.m.mountpoint).f_namemax, 255)

    def _rename_fresh(self, name):
        src = self.p("r", "victim")
        if not os.path.exists(src):
            write_file(src, b"v")
        os.rename(src, self.p("r", name))


# ------------------------------------------------------- mkdir/rmdir ----

class MkdirRmdir(PosixCase):

    def test_mkdir(self):
        os.mkdir(self.p("d"), 0o777)
        st = os.stat(self.p("d"))
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.assertEqual((st.st_uid, st.st_gid, st.st_nlink), (0, 0, 2))
        os.mkdir(self.p("s"), 0o1777)
        self.assertEqual(mode_of(self.p("s")), 0o1755,
                         "mkdir keeps S_ISVTX")
        os.mkdir(self.p("d", "a"))
        os.mkdir(self.p("d", "b"))
        write_file(self.p("d", "f"), b"")
        self.assertEqual(os.stat(self.p("d")).st_nlink, 4)
        self.assertEqual(os.stat(self.p("d", "a", "..")).st_ino,
                         os.stat(self.p("d")).st_ino)
        self.assertEqual(sorted(os.listdir(self.p("d"))), ["a", "b", "f"])
        self.assertEqual(os.listdir(self.p("d", "a")), [])
        self.assertErrno(errno.EEXIST, os.mkdir, self.p("d"))
        self.assertErrno(errno.EEXIST, os.mkdir, self.p("d", "f"))
        os.symlink("nowhere", self.p("dl"))
        self.assertErrno(errno.EEXIST, os.mkdir, self.p("dl"))
        self.assertErrno(errno.ENOENT, os.mkdir, self.p("no", "x"))
        self.assertErrno(errno.ENOTDIR, os.mkdir, self.p("d", "f", "x"))

    def test_rmdir(self):
        os.makedirs(self.p("d", "sub"))
        os.mkdir(self.p("d", "sub2"))
        self.assertEqual(os.stat(self.p("d")).st_nlink, 4)
        os.rmdir(self.p("d", "sub2"))
        self.assertEqual(os.stat(self.p("d")).st_nlink, 3)
        self.assertErrno(errno.ENOENT, os.stat, self.p("d", "sub2"))
        self.assertErrno(errno.ENOTEMPTY, os.rmdir, self.p("d"))
        for kind in ("file", "fifo", "symlink", "dir"):
            with self.subTest(only_child=kind):
                os.mkdir(self.p("e"))
                c = self.p("e", ".hidden")
                if kind == "file":
                    write_file(c, b"")
                elif kind == "fifo":
                    os.mkfifo(c)
                elif kind == "symlink":
                    os.symlink("x", c)
                else:
                    os.mkdir(c)
                self.assertErrno(errno.ENOTEMPTY, os.rmdir, self.p("e"))
                if kind == "dir":
                    os.rmdir(c)
                else:
                    os.unlink(c)
                os.rmdir(self.p("e"))
        write_file(self.p("f"), b"")
        self.assertErrno(errno.ENOTDIR, os.rmdir, self.p("f"))
        self.assertErrno(errno.ENOENT, os.rmdir, self.p("missing"))
        self.assertErrno(errno.EINVAL, os.rmdir, self.p("d", "sub", "."))
        self.assertErrno(errno.ENOTEMPTY, os.rmdir, self.p("d", "sub", ".."))
        os.rmdir(self.p("d", "sub"))
        os.rmdir(self.p("d"))
        self.assertEqual(self.names(self.m.mountpoint), ["f"])
        self.assertEqual(os.stat(self.m.mountpoint).st_nlink, 2)

    def test_setgid_directory_inheritance(self):
        os.mkdir(self.p("g"))
        os.chown(self.p("g"), 0, 1000)
        os.chmod(self.p("g"), 0o2775)
        write_file(self.p("g", "f"), b"")
        os.mkdir(self.p("g", "sub"))
        self.assertEqual(os.stat(self.p("g", "f")).st_gid, 1000)
        st = os.stat(self.p("g", "sub"))
        self.assertEqual(st.st_gid, 1000)
        self.assertTrue(st.st_mode & stat.S_ISGID,
                        "a subdirectory of a setgid dir is setgid")

    def test_parent_times_change(self):
        os.mkdir(self.p("d"))
        os.mkdir(self.p("e"))
        write_file(self.p("d", "keep"), b"")

        def changed(label, fn, *dirs):
            before = [os.stat(d) for d in dirs]
            self.tick()
            fn()
            for d, b in zip(dirs, before):
                a = os.stat(d)
                self.assertGreater(a.st_mtime_ns, b.st_mtime_ns,
                                   "%s: mtime of %s" % (label, d))
                self.assertGreater(a.st_ctime_ns, b.st_ctime_ns,
                                   "%s: ctime of %s" % (label, d))
        d, e = self.p("d"), self.p("e")
        changed("create", lambda: write_file(self.p("d", "f"), b"x"), d)
        changed("mkdir", lambda: os.mkdir(self.p("d", "s")), d)
        changed("mkfifo", lambda: os.mkfifo(self.p("d", "p")), d)
        changed("symlink", lambda: os.symlink("f", self.p("d", "l")), d)
        changed("link", lambda: os.link(self.p("d", "f"),
                                        self.p("e", "hl")), e)
        changed("rename", lambda: os.rename(self.p("d", "f"),
                                            self.p("e", "f")), d, e)
        changed("unlink", lambda: os.unlink(self.p("e", "f")), e)
        changed("rmdir", lambda: os.rmdir(self.p("d", "s")), d)
        # Writing a file's data changes the file's mtime, not the parent's.
        b = os.stat(d)
        f0 = os.stat(self.p("d", "keep"))
        self.tick()
        write_file(self.p("d", "keep"), b"data")
        self.assertEqual(os.stat(d).st_mtime_ns, b.st_mtime_ns)
        self.assertGreater(os.stat(self.p("d", "keep")).st_mtime_ns,
                           f0.st_mtime_ns)


# ----------------------------------------------------- unlink / link ----

class UnlinkLink(PosixCase):

    def test_unlink(self):
        write_file(self.p("f"), b"data")
        os.mkdir(self.p("d"))
        os.symlink("f", self.p("l"))
        os.unlink(self.p("l"))
        self.assertEqual(read_file(self.p("f")), b"data",
                         "unlink of a symlink leaves its target")
        os.unlink(self.p("f"))
        self.assertErrno(errno.ENOENT, os.stat, self.p("f"))
        self.assertErrno(errno.ENOENT, os.unlink, self.p("f"))
        self.assertErrno(errno.EISDIR, os.unlink, self.p("d"))
        write_file(self.p("g"), b"")
        self.assertErrno(errno.ENOTDIR, os.unlink, self.p("g", "x"))
        self.assertEqual(self.names(self.m.mountpoint), ["d", "g"])
        # The name can be reused at once, as a different kind of file.
        os.mkdir(self.p("f"))
        self.assertTrue(os.path.isdir(self.p("f")))

    def test_open_then_unlink_works_until_last_close(self):
        data = random_bytes(2 * MiB + 5)
        write_file(self.p("f"), data)
        ino = os.stat(self.p("f")).st_ino
        fd1 = os.open(self.p("f"), os.O_RDWR)
        fd2 = os.open(self.p("f"), os.O_RDONLY)
        try:
            os.unlink(self.p("f"))
            self.assertErrno(errno.ENOENT, os.stat, self.p("f"))
            self.assertNotIn("f", os.listdir(self.m.mountpoint))
            st = os.fstat(fd1)
            self.assertEqual((st.st_nlink, st.st_ino, st.st_size),
                             (0, ino, len(data)))
            # A new file under the same name is a different file.
            write_file(self.p("f"), b"new file")
            self.assertNotEqual(os.stat(self.p("f")).st_ino, ino)
            # The unlinked file keeps working: read, write, truncate.
            self.assertEqual(os.pread(fd2, 100, MiB), data[MiB:MiB + 100])
            os.pwrite(fd1, b"Z" * 4096, MiB - 100)
            os.ftruncate(fd1, 2 * MiB)
            os.fsync(fd1)
            os.fchmod(fd1, 0o600)
            self.assertEqual(stat.S_IMODE(os.fstat(fd1).st_mode), 0o600)
            os.close(fd1)
            fd1 = -1
            exp = data[:MiB - 100] + b"Z" * 4096 + data[MiB + 3996:2 * MiB]
            got = b""
            while len(got) < 2 * MiB:
                b = os.pread(fd2, MiB, len(got))
                if not b:
                    break
                got += b
            self.assertEqual(md5(got), md5(exp),
                             "unlinked file changed after the first close")
            self.assertEqual(os.fstat(fd2).st_size, 2 * MiB)
        finally:
            if fd1 >= 0:
                os.close(fd1)
            os.close(fd2)
        self.assertEqual(read_file(self.p("f")), b"new file")
        # After the last close the unlinked file's local data goes away
        # (CACHE_DIR/data/<ino % 256 as 2 hex>/<ino>, cache/chunk.h).
        data_file = os.path.join(self.m.cache_dir, "data",
                                 "%02x" % (ino & 0xff), str(ino))
        wait_until(lambda: not os.path.exists(data_file), SETTLE_TIMEOUT)
        self.assertFalse(os.path.exists(data_file),
                         "data file of the unlinked inode %d still exists "
                         "after the last close" % ino)

    def test_link_counts_and_identity(self):
        write_file(self.p("a"), b"shared")
        os.mkdir(self.p("d"))
        st0 = os.stat(self.p("a"))
        self.tick()
        os.link(self.p("a"), self.p("b"))
        os.link(self.p("a"), self.p("d", "c"))
        os.link(self.p("b"), self.p("d", "e"))
        for n in ("a", "b", "d/c", "d/e"):
            st = os.stat(self.p(n))
            self.assertEqual((st.st_ino, st.st_nlink), (st0.st_ino, 4), n)
        self.assertGreater(os.stat(self.p("a")).st_ctime_ns, st0.st_ctime_ns,
                           "link() updates the inode's ctime")
        # A change through one name shows through all of them.
        with open(self.p("d", "c"), "r+b") as f:
            f.write(b"SHARED")
        os.chmod(self.p("b"), 0o600)
        self.assertEqual(read_file(self.p("a")), b"SHARED")
        self.assertEqual(mode_of(self.p("d", "e")), 0o600)
        os.unlink(self.p("a"))
        self.assertEqual(os.stat(self.p("b")).st_nlink, 3)
        os.unlink(self.p("d", "c"))
        os.unlink(self.p("d", "e"))
        st = os.stat(self.p("b"))
        self.assertEqual((st.st_nlink, st.st_ino), (1, st0.st_ino))
        self.assertEqual(read_file(self.p("b")), b"SHARED")

    def test_link_errors(self):
        write_file(self.p("a"), b"")
        write_file(self.p("b"), b"")
        os.mkdir(self.p("d"))
        self.assertErrno(errno.EEXIST, os.link, self.p("a"), self.p("b"))
        self.assertErrno(errno.EEXIST, os.link, self.p("a"), self.p("d"))
        self.assertErrno(errno.EPERM, os.link, self.p("d"), self.p("d2"))
        self.assertErrno(errno.ENOENT, os.link, self.p("missing"),
                         self.p("x"))
        self.assertErrno(errno.ENOENT, os.link, self.p("a"),
                         self.p("nodir", "x"))
        self.assertErrno(errno.ENOTDIR, os.link, self.p("a"),
                         self.p("b", "x"))
        self.assertEqual(os.stat(self.p("a")).st_nlink, 1)

    def test_link_to_symlink_itself(self):
        write_file(self.p("t"), b"t")
        os.symlink("t", self.p("s"))
        os.link(self.p("s"), self.p("s2"), follow_symlinks=False)
        st = os.lstat(self.p("s2"))
        self.assertTrue(stat.S_ISLNK(st.st_mode))
        self.assertEqual(st.st_nlink, 2)
        self.assertEqual(st.st_ino, os.lstat(self.p("s")).st_ino)
        self.assertEqual(os.readlink(self.p("s2")), "t")
        # linkat(AT_SYMLINK_FOLLOW) links the target (os.link only uses
        # linkat when given a dir fd).
        dfd = os.open(self.m.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link("s", "t2", src_dir_fd=dfd, dst_dir_fd=dfd,
                    follow_symlinks=True)
        finally:
            os.close(dfd)
        self.assertEqual(os.lstat(self.p("t2")).st_ino,
                         os.stat(self.p("t")).st_ino)
        self.assertEqual(os.stat(self.p("t")).st_nlink, 2)

    def test_protected_hardlinks(self):
        """fs.protected_hardlinks: an unprivileged user may not link to a
        file it could not write (the kernel asks the fs for the owner/mode)."""
        with open("/proc/sys/fs/protected_hardlinks") as f:
            self.assertEqual(f.read().strip(), "1",
                             "this test expects fs.protected_hardlinks=1")
        write_file(self.p("secret"), b"s", 0o600)
        os.chmod(self.p("secret"), 0o600)
        pub = self.pub()
        self.assertErrno(errno.EPERM, nobody, lambda: os.link(
            self.p("secret"), os.path.join(pub, "mine")))
        nobody(lambda: user_write(os.path.join(pub, "own"), b"o"))
        nobody(lambda: os.link(os.path.join(pub, "own"),
                               os.path.join(pub, "own2")))
        self.assertEqual(os.stat(os.path.join(pub, "own")).st_nlink, 2)


# ------------------------------------------------------------ symlink ----

class Symlink(PosixCase):

    def test_symlink(self):
        write_file(self.p("t"), b"target data")
        os.symlink("t", self.p("rel"))
        os.symlink(self.p("t"), self.p("abs"))
        os.symlink("no/such/target", self.p("dangling"))
        long_target = "x/" * 2000 + "y" * 95  # 4095 bytes
        self.assertEqual(len(long_target), 4095)
        os.symlink(long_target, self.p("long"))
        for name, target in (("rel", "t"), ("abs", self.p("t")),
                             ("dangling", "no/such/target"),
                             ("long", long_target)):
            st = os.lstat(self.p(name))
            self.assertTrue(stat.S_ISLNK(st.st_mode), name)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o777, name)
            self.assertEqual(st.st_size, len(target.encode()), name)
            self.assertEqual(st.st_nlink, 1, name)
            self.assertEqual(os.readlink(self.p(name)), target, name)
        self.assertEqual(read_file(self.p("rel")), b"target data")
        self.assertEqual(read_file(self.p("abs")), b"target data")
        self.assertErrno(errno.ENOENT, os.stat, self.p("dangling"))
        self.assertErrno(errno.EEXIST, os.symlink, "x", self.p("t"))
        self.assertErrno(errno.EEXIST, os.symlink, "x", self.p("rel"))
        self.assertErrno(errno.ENOENT, os.symlink, "x", self.p("no", "l"))
        self.assertErrno(errno.ENAMETOOLONG, os.symlink, "y" * 4096,
                         self.p("toolong"))
        self.assertErrno(errno.EINVAL, os.readlink, self.p("t"))
        # A symlink to a directory resolves for lookups below it.
        os.mkdir(self.p("dir"))
        write_file(self.p("dir", "in"), b"in")
        os.symlink("dir", self.p("dl"))
        self.assertEqual(read_file(self.p("dl", "in")), b"in")
        pub = self.pub()
        nobody(lambda: os.symlink("t", os.path.join(pub, "ul")))
        st = os.lstat(os.path.join(pub, "ul"))
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))

    def test_lchown_and_lutimes_touch_the_link_only(self):
        write_file(self.p("t"), b"")
        os.symlink("t", self.p("l"))
        t0 = os.stat(self.p("t"))
        os.chown(self.p("l"), NOBODY, NOBODY, follow_symlinks=False)
        os.utime(self.p("l"), ns=(1_000_000_000_000_000_123,
                                  1_100_000_000_000_000_456),
                 follow_symlinks=False)
        ls = os.lstat(self.p("l"))
        self.assertEqual((ls.st_uid, ls.st_gid), (NOBODY, NOBODY))
        self.assertEqual((ls.st_atime_ns, ls.st_mtime_ns),
                         (1_000_000_000_000_000_123,
                          1_100_000_000_000_000_456))
        t1 = os.stat(self.p("t"))
        self.assertEqual((t1.st_uid, t1.st_gid, t1.st_mtime_ns),
                         (t0.st_uid, t0.st_gid, t0.st_mtime_ns))


# ------------------------------------------------------------- rename ----

class Rename(PosixCase):

    def test_rename_file(self):
        write_file(self.p("a"), b"A" * 5000)
        os.mkdir(self.p("d"))
        st0 = os.stat(self.p("a"))
        self.tick()
        os.rename(self.p("a"), self.p("b"))
        self.assertErrno(errno.ENOENT, os.stat, self.p("a"))
        st = os.stat(self.p("b"))
        self.assertEqual(st.st_ino, st0.st_ino)
        self.assertEqual(st.st_mtime_ns, st0.st_mtime_ns,
                         "rename must not change the file's mtime")
        self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns,
                           "rename updates the renamed inode's ctime")
        self.assertEqual(read_file(self.p("b")), b"A" * 5000)
        os.rename(self.p("b"), self.p("d", "c"))
        self.assertEqual(read_file(self.p("d", "c")), b"A" * 5000)
        self.assertEqual(self.names(self.m.mountpoint), ["d"])
        self.assertEqual(os.listdir(self.p("d")), ["c"])
        # Renaming to itself is a no-op.
        os.rename(self.p("d", "c"), self.p("d", "c"))
        self.assertEqual(read_file(self.p("d", "c")), b"A" * 5000)
        # A symlink renames as itself; its target is untouched.
        os.symlink("d/c", self.p("l"))
        os.rename(self.p("l"), self.p("l2"))
        self.assertEqual(os.readlink(self.p("l2")), "d/c")
        self.assertEqual(read_file(self.p("l2")), b"A" * 5000)

    def test_rename_over_existing_file(self):
        write_file(self.p("a"), b"new content")
        write_file(self.p("b"), b"old content")
        ino_a = os.stat(self.p("a")).st_ino
        fd = os.open(self.p("b"), os.O_RDONLY)
        try:
            os.rename(self.p("a"), self.p("b"))
            self.assertEqual(read_file(self.p("b")), b"new content")
            self.assertEqual(os.stat(self.p("b")).st_ino, ino_a)
            self.assertEqual(os.pread(fd, 100, 0), b"old content",
                             "an open replaced file keeps its data")
            self.assertEqual(os.fstat(fd).st_nlink, 0)
        finally:
            os.close(fd)
        self.assertEqual(self.names(self.m.mountpoint), ["b"])
        # Atomic-replace pattern (editors, git): write tmp, fsync, rename.
        for i in range(20):
            tmp = self.p(".b.tmp")
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.write(fd, b"version %d" % i)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, self.p("b"))
        self.assertEqual(read_file(self.p("b")), b"version 19")
        self.assertEqual(self.names(self.m.mountpoint), ["b"])

    def test_rename_hard_links_of_one_inode_is_a_noop(self):
        write_file(self.p("a"), b"x")
        os.link(self.p("a"), self.p("b"))
        os.rename(self.p("a"), self.p("b"))
        self.assertEqual(self.names(self.m.mountpoint), ["a", "b"])
        self.assertEqual(os.stat(self.p("a")).st_nlink, 2)

    def test_rename_directories(self):
        os.makedirs(self.p("d1", "sub", "deep"))
        write_file(self.p("d1", "sub", "deep", "f"), b"deep file")
        os.mkdir(self.p("d2"))
        d2_ino = os.stat(self.p("d2")).st_ino
        self.assertEqual(os.stat(self.p("d1")).st_nlink, 3)
        os.rename(self.p("d1", "sub"), self.p("d2", "sub"))
        self.assertEqual(os.stat(self.p("d1")).st_nlink, 2)
        self.assertEqual(os.stat(self.p("d2")).st_nlink, 3)
        self.assertEqual(os.stat(self.p("d2", "sub", "..")).st_ino, d2_ino)
        self.assertEqual(read_file(self.p("d2", "sub", "deep", "f")),
                         b"deep file")
        self.assertErrno(errno.ENOENT, os.stat, self.p("d1", "sub"))
        # Over an empty directory: replaces it.
        os.mkdir(self.p("empty"))
        os.rename(self.p("d2", "sub"), self.p("empty"))
        self.assertEqual(read_file(self.p("empty", "deep", "f")),
                         b"deep file")
        self.assertEqual(os.stat(self.p("d2")).st_nlink, 2)
        # Over a non-empty directory: ENOTEMPTY, both intact.
        os.mkdir(self.p("d1", "x"))
        self.assertErrno(errno.ENOTEMPTY, os.rename, self.p("d1"),
                         self.p("empty"))
        self.assertErrno(errno.ENOTEMPTY, os.rename, self.p("d2"),
                         self.p("d1"))
        self.assertTrue(os.path.isdir(self.p("d1", "x")))
        self.assertTrue(os.path.isdir(self.p("d2")))
        # Kind mismatches.
        write_file(self.p("file"), b"f")
        self.assertErrno(errno.EISDIR, os.rename, self.p("file"),
                         self.p("d2"))
        self.assertErrno(errno.ENOTDIR, os.rename, self.p("d2"),
                         self.p("file"))
        # Into itself or its own descendant.
        self.assertErrno(errno.EINVAL, os.rename, self.p("empty"),
                         self.p("empty", "deep", "self"))
        self.assertErrno(errno.EINVAL, os.rename, self.p("empty"),
                         self.p("empty", "x"))
        self.assertEqual(self.names(self.m.mountpoint),
                         ["d1", "d2", "empty", "file"])
        self.assertEqual(os.stat(self.m.mountpoint).st_nlink, 5)

    def test_rename_errors(self):
        write_file(self.p("a"), b"a")
        self.assertErrno(errno.ENOENT, os.rename, self.p("missing"),
                         self.p("x"))
        self.assertErrno(errno.ENOENT, os.rename, self.p("a"),
                         self.p("nodir", "x"))
        self.assertErrno(errno.ENOTDIR, os.rename, self.p("a"),
                         self.p("a", "x"))
        self.assertErrno(errno.ENAMETOOLONG, os.rename, self.p("a"),
                         self.p("n" * 256))
        self.assertEqual(read_file(self.p("a")), b"a")

    def test_noreplace(self):
        write_file(self.p("a"), b"A")
        write_file(self.p("b"), b"B")
        self.assertErrno(errno.EEXIST, renameat2, self.p("a"), self.p("b"),
                         RENAME_NOREPLACE)
        self.assertEqual(read_file(self.p("a")), b"A")
        self.assertEqual(read_file(self.p("b")), b"B")
        os.mkdir(self.p("d"))
        self.assertErrno(errno.EEXIST, renameat2, self.p("a"), self.p("d"),
                         RENAME_NOREPLACE)
        renameat2(self.p("a"), self.p("c"), RENAME_NOREPLACE)
        self.assertEqual(read_file(self.p("c")), b"A")
        self.assertEqual(self.names(self.m.mountpoint), ["b", "c", "d"])

    def test_exchange(self):
        write_file(self.p("a"), b"A")
        write_file(self.p("b"), b"BB")
        ia, ib = os.stat(self.p("a")).st_ino, os.stat(self.p("b")).st_ino
        renameat2(self.p("a"), self.p("b"), RENAME_EXCHANGE)
        self.assertEqual(read_file(self.p("a")), b"BB")
        self.assertEqual(read_file(self.p("b")), b"A")
        self.assertEqual((os.stat(self.p("a")).st_ino,
                          os.stat(self.p("b")).st_ino), (ib, ia))
        # A file and a directory in different parents swap places; the
        # parents' link counts follow the directory.
        os.mkdir(self.p("p1"))
        os.mkdir(self.p("p2"))
        os.mkdir(self.p("p1", "dir"))
        write_file(self.p("p1", "dir", "inner"), b"inner")
        write_file(self.p("p2", "file"), b"file")
        renameat2(self.p("p1", "dir"), self.p("p2", "file"), RENAME_EXCHANGE)
        self.assertTrue(os.path.isdir(self.p("p2", "file")))
        self.assertEqual(read_file(self.p("p2", "file", "inner")), b"inner")
        self.assertEqual(read_file(self.p("p1", "dir")), b"file")
        self.assertEqual(os.stat(self.p("p1")).st_nlink, 2)
        self.assertEqual(os.stat(self.p("p2")).st_nlink, 3)
        self.assertEqual(os.stat(self.p("p2", "file", "..")).st_ino,
                         os.stat(self.p("p2")).st_ino)
        self.assertErrno(errno.ENOENT, renameat2, self.p("a"),
                         self.p("missing"), RENAME_EXCHANGE)
        self.assertErrno(errno.EINVAL, renameat2, self.p("a"), self.p("b"),
                         RENAME_EXCHANGE | RENAME_NOREPLACE)
        self.assertEqual(read_file(self.p("a")), b"BB")


# ------------------------------------------------------ chmod / chown ----

class ChmodChown(PosixCase):

    def test_chmod(self):
        write_file(self.p("f"), b"")
        os.mkdir(self.p("d"))
        for mode in (0o0, 0o600, 0o755, 0o4755, 0o2755, 0o1755, 0o7777,
                     0o644):
            with self.subTest(mode=oct(mode)):
                st0 = os.stat(self.p("f"))
                self.tick()
                os.chmod(self.p("f"), mode)
                st = os.stat(self.p("f"))
                self.assertEqual(stat.S_IMODE(st.st_mode), mode)
                self.assertTrue(stat.S_ISREG(st.st_mode))
                self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)
                self.assertEqual(st.st_mtime_ns, st0.st_mtime_ns)
                os.chmod(self.p("d"), mode)
                self.assertEqual(mode_of(self.p("d")), mode)
        os.symlink("f", self.p("l"))
        os.chmod(self.p("l"), 0o640)  # follows the link
        self.assertEqual(mode_of(self.p("f")), 0o640)
        self.assertEqual(mode_of(self.p("l"), follow=False), 0o777)
        fd = os.open(self.p("f"), os.O_RDONLY)
        try:
            os.fchmod(fd, 0o604)
        finally:
            os.close(fd)
        self.assertEqual(mode_of(self.p("f")), 0o604)
        self.assertErrno(errno.ENOENT, os.chmod, self.p("missing"), 0o644)

    def test_chmod_permissions(self):
        pub = self.pub()
        write_file(self.p("rootfile"), b"", 0o666)
        os.chmod(self.p("rootfile"), 0o666)
        self.assertErrno(errno.EPERM, nobody,
                         lambda: os.chmod(self.p("rootfile"), 0o777))
        self.assertEqual(mode_of(self.p("rootfile")), 0o666)
        mine = os.path.join(pub, "mine")
        nobody(lambda: user_write(mine, b""))
        nobody(lambda: os.chmod(mine, 0o700))
        self.assertEqual(mode_of(mine), 0o700)
        # Setting S_ISGID on a file whose group the caller is not in: the
        # bit is silently dropped.
        os.chown(mine, NOBODY, 0)
        nobody(lambda: os.chmod(mine, 0o2755))
        self.assertEqual(mode_of(mine), 0o755)

    def test_chown(self):
        write_file(self.p("f"), b"")
        st0 = os.stat(self.p("f"))
        self.tick()
        os.chown(self.p("f"), NOBODY, NOBODY)
        st = os.stat(self.p("f"))
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))
        self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)
        os.chown(self.p("f"), -1, 1000)
        self.assertEqual((os.stat(self.p("f")).st_uid,
                          os.stat(self.p("f")).st_gid), (NOBODY, 1000))
        os.chown(self.p("f"), 1000, -1)
        self.assertEqual((os.stat(self.p("f")).st_uid,
                          os.stat(self.p("f")).st_gid), (1000, 1000))
        os.chown(self.p("f"), -1, -1)
        self.assertEqual((os.stat(self.p("f")).st_uid,
                          os.stat(self.p("f")).st_gid), (1000, 1000))
        os.mkdir(self.p("d"))
        os.chown(self.p("d"), 4000000000, 4000000001)  # large ids
        st = os.stat(self.p("d"))
        self.assertEqual((st.st_uid, st.st_gid), (4000000000, 4000000001))
        self.assertErrno(errno.ENOENT, os.chown, self.p("missing"), 0, 0)

    def test_chown_clears_setid_bits(self):
        write_file(self.p("f"), b"#!/bin/sh\n")
        os.chmod(self.p("f"), 0o6755)
        os.chown(self.p("f"), NOBODY, NOBODY)
        self.assertEqual(mode_of(self.p("f")), 0o755,
                         "chown of a regular file clears S_ISUID/S_ISGID")

    def test_chown_permissions(self):
        pub = self.pub()
        mine = os.path.join(pub, "mine")
        nobody(lambda: user_write(mine, b""))
        self.assertErrno(errno.EPERM, nobody, lambda: os.chown(mine, 0, -1))
        self.assertErrno(errno.EPERM, nobody,
                         lambda: os.chown(mine, OTHER, -1))
        self.assertErrno(errno.EPERM, nobody, lambda: os.chown(mine, -1, 0))
        nobody(lambda: os.chown(mine, NOBODY, NOBODY))  # no change: allowed
        # The owner may change the group to one it is a member of.
        as_user(NOBODY, NOBODY, lambda: os.chown(mine, -1, 1000),
                groups=(1000,))
        self.assertEqual(os.stat(mine).st_gid, 1000)
        write_file(self.p("rootfile"), b"")
        self.assertErrno(errno.EPERM, nobody,
                         lambda: os.chown(self.p("rootfile"), NOBODY, -1))
        st = os.stat(mine)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, 1000))


# ----------------------------------------------------------- truncate ----

class Truncate(PosixCase):

    def test_truncate_down_and_up(self):
        data = random_bytes(3 * MiB)
        write_file(self.p("f"), data)
        st0 = os.stat(self.p("f"))
        self.tick()
        os.truncate(self.p("f"), MiB + MiB // 2)
        st = os.stat(self.p("f"))
        self.assertEqual(st.st_size, MiB + MiB // 2)
        self.assertGreater(st.st_mtime_ns, st0.st_mtime_ns)
        self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)
        self.assertEqual(md5(read_file(self.p("f"))),
                         md5(data[:MiB + MiB // 2]))
        # Growing again must show zeros, never the old bytes.
        os.truncate(self.p("f"), 3 * MiB)
        exp = data[:MiB + MiB // 2] + b"\0" * (MiB + MiB // 2)
        self.assertEqual(md5(read_file(self.p("f"))), md5(exp))
        os.truncate(self.p("f"), 0)
        self.assertEqual(read_file(self.p("f")), b"")
        os.truncate(self.p("f"), 10)
        self.assertEqual(read_file(self.p("f")), b"\0" * 10)

    def test_ftruncate(self):
        fd = os.open(self.p("f"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"abcdefghij")
            os.ftruncate(fd, 4)
            self.assertEqual(os.fstat(fd).st_size, 4)
            self.assertEqual(os.pread(fd, 100, 0), b"abcd")
            os.ftruncate(fd, 8)
            self.assertEqual(os.pread(fd, 100, 0), b"abcd\0\0\0\0")
            # The file offset is past EOF: the write leaves a hole.
            os.write(fd, b"Z")
            self.assertEqual(os.pread(fd, 100, 0),
                             b"abcd\0\0\0\0\0\0Z")
        finally:
            os.close(fd)
        fd = os.open(self.p("f"), os.O_RDONLY)
        try:
            self.assertErrno(errno.EINVAL, os.ftruncate, fd, 0)
        finally:
            os.close(fd)
        self.assertEqual(os.stat(self.p("f")).st_size, 11)

    def test_sparse_truncate_up_is_cheap(self):
        write_file(self.p("f"), b"head")
        size = 10 * 1024 * MiB
        os.truncate(self.p("f"), size)
        st = os.stat(self.p("f"))
        self.assertEqual(st.st_size, size)
        self.assertLess(st.st_blocks * 512, 16 * MiB)
        fd = os.open(self.p("f"), os.O_RDWR)
        try:
            self.assertEqual(os.pread(fd, 8, 0), b"head\0\0\0\0")
            self.assertEqual(os.pread(fd, 4096, size - 4096), b"\0" * 4096)
            self.assertEqual(os.pread(fd, 10, size), b"")
            os.pwrite(fd, b"tail", size - 4)
            self.assertEqual(os.pread(fd, 10, size - 4), b"tail")
        finally:
            os.close(fd)
        self.assertEqual(os.stat(self.p("f")).st_size, size)

    def test_truncate_errors(self):
        os.mkdir(self.p("d"))
        write_file(self.p("f"), b"x")
        self.assertErrno(errno.EISDIR, os.truncate, self.p("d"), 0)
        self.assertErrno(errno.ENOENT, os.truncate, self.p("missing"), 0)
        self.assertErrno(errno.EINVAL, os.truncate, self.p("f"), -1)
        self.assertErrno(errno.ENOTDIR, os.truncate, self.p("f", "x"), 0)
        os.chmod(self.p("f"), 0o644)
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.truncate(self.p("f"), 0))
        self.assertEqual(read_file(self.p("f")), b"x")


# ----------------------------------------------------------- utimens ----

class Utimens(PosixCase):

    def test_ns_precision(self):
        write_file(self.p("f"), b"")
        os.mkdir(self.p("d"))
        cases = [
            (1_000_000_001_123_456_789, 1_234_567_890_987_654_321),
            (1, 999_999_999),
            (0, 0),
            (-1_000_000_000 + 5, -2_000_000_000),       # before 1970
            ((1 << 33) * 10**9 + 7, (1 << 33) * 10**9 + 999_999_999),
        ]
        for a, mt in cases:
            for name in ("f", "d"):
                with self.subTest(atime=a, mtime=mt, name=name):
                    st0 = os.stat(self.p(name))
                    self.tick()
                    os.utime(self.p(name), ns=(a, mt))
                    st = os.stat(self.p(name))
                    self.assertEqual((st.st_atime_ns, st.st_mtime_ns),
                                     (a, mt))
                    self.assertGreater(st.st_ctime_ns, st0.st_ctime_ns)

    def test_now_and_omit(self):
        write_file(self.p("f"), b"")
        base_a, base_m = 1_500_000_000_111_111_111, 1_500_000_000_222_222_222
        os.utime(self.p("f"), ns=(base_a, base_m))
        t0 = time.time_ns()
        os.utime(self.p("f"))  # times == NULL: both now
        t1 = time.time_ns()
        st = os.stat(self.p("f"))
        slack = 1_000_000_000
        for v in (st.st_atime_ns, st.st_mtime_ns):
            self.assertTrue(t0 - slack <= v <= t1 + slack, v)
        os.utime(self.p("f"), ns=(base_a, base_m))
        utimensat(self.p("f"), UTIME_NOW, UTIME_OMIT)
        st = os.stat(self.p("f"))
        self.assertEqual(st.st_mtime_ns, base_m, "UTIME_OMIT mtime")
        self.assertGreater(st.st_atime_ns, t0 - slack, "UTIME_NOW atime")
        os.utime(self.p("f"), ns=(base_a, base_m))
        utimensat(self.p("f"), UTIME_OMIT, (1_600_000_000, 42))
        st = os.stat(self.p("f"))
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns),
                         (base_a, 1_600_000_000_000_000_042))
        utimensat(self.p("f"), (1_700_000_000, 7), UTIME_OMIT)
        st = os.stat(self.p("f"))
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns),
                         (1_700_000_000_000_000_007,
                          1_600_000_000_000_000_042))
        c0 = st.st_ctime_ns
        self.tick()
        utimensat(self.p("f"), UTIME_OMIT, UTIME_OMIT)
        st = os.stat(self.p("f"))
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns),
                         (1_700_000_000_000_000_007,
                          1_600_000_000_000_000_042, c0),
                         "UTIME_OMIT for both changes nothing")
        self.assertErrno(errno.EINVAL, utimensat, self.p("f"),
                         (0, 1_000_000_000), UTIME_OMIT)
        self.assertErrno(errno.ENOENT, os.utime, self.p("missing"))

    def test_utime_permissions(self):
        write_file(self.p("ro"), b"", 0o644)
        os.chmod(self.p("ro"), 0o644)
        write_file(self.p("rw"), b"", 0o666)
        os.chmod(self.p("rw"), 0o666)
        # Not the owner: setting explicit times needs ownership (EPERM);
        # setting "now" needs write permission (EACCES without it).
        self.assertErrno(errno.EPERM, nobody,
                         lambda: os.utime(self.p("rw"), ns=(5, 5)))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.utime(self.p("ro")))
        t0 = time.time_ns()
        nobody(lambda: os.utime(self.p("rw")))
        self.assertGreater(os.stat(self.p("rw")).st_mtime_ns, t0 - 10**9)
        pub = self.pub()
        mine = os.path.join(pub, "mine")
        nobody(lambda: user_write(mine, b"", 0o444))
        nobody(lambda: os.utime(mine, ns=(12345, 67890)))
        st = os.stat(mine)
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns), (12345, 67890))


# ----------------------------------------------------- mkfifo / mknod ----

class MkfifoMknod(PosixCase):

    def test_mkfifo(self):
        os.mkfifo(self.p("fifo"), 0o666)
        st = os.lstat(self.p("fifo"))
        self.assertTrue(stat.S_ISFIFO(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual(st.st_size, 0)
        self.assertErrno(errno.EEXIST, os.mkfifo, self.p("fifo"))
        self.assertErrno(errno.ENOENT, os.mkfifo, self.p("no", "fifo"))
        # It is a working pipe.
        r = os.open(self.p("fifo"), os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(self.p("fifo"), os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(w, b"through the fifo")
            self.assertEqual(os.read(r, 100), b"through the fifo")
        finally:
            os.close(w)
            os.close(r)
        os.rename(self.p("fifo"), self.p("fifo2"))
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.p("fifo2")).st_mode))
        os.unlink(self.p("fifo2"))
        self.assertEqual(self.names(self.m.mountpoint), [])

    def test_mknod(self):
        os.mknod(self.p("reg"), stat.S_IFREG | 0o600)
        st = os.stat(self.p("reg"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_size), (0o600, 0))
        write_file(self.p("reg"), b"regular")
        self.assertEqual(read_file(self.p("reg")), b"regular")
        dev = os.makedev(1, 3)
        os.mknod(self.p("chr"), stat.S_IFCHR | 0o600, dev)
        st = os.lstat(self.p("chr"))
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual(st.st_rdev, dev)
        os.mknod(self.p("blk"), stat.S_IFBLK | 0o600, os.makedev(7, 0))
        self.assertTrue(stat.S_ISBLK(os.lstat(self.p("blk")).st_mode))
        self.assertEqual(os.lstat(self.p("blk")).st_rdev, os.makedev(7, 0))
        pub = self.pub()
        self.assertErrno(errno.EPERM, nobody, lambda: os.mknod(
            os.path.join(pub, "c"), stat.S_IFCHR | 0o600, dev))
        self.assertErrno(errno.EEXIST, os.mknod, self.p("reg"),
                         stat.S_IFREG | 0o600)

    def test_unix_socket(self):
        path = self.p("sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            srv.bind(path)
            srv.listen(1)
            self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
            cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                cli.settimeout(5)
                cli.connect(path)
                conn, _ = srv.accept()
                cli.sendall(b"ping")
                self.assertEqual(conn.recv(10), b"ping")
                conn.close()
            finally:
                cli.close()
        finally:
            srv.close()
        os.unlink(path)


# ------------------------------------------------------------- xattrs ----

class Xattr(PosixCase):

    def test_user_xattrs(self):
        write_file(self.p("f"), b"")
        f = self.p("f")
        os.setxattr(f, "user.a", b"alpha")
        os.setxattr(f, "user.empty", b"")
        binval = bytes(range(256)) * 4 + b"\0\0tail"
        os.setxattr(f, "user.bin", binval)
        self.assertEqual(os.getxattr(f, "user.a"), b"alpha")
        self.assertEqual(os.getxattr(f, "user.empty"), b"")
        self.assertEqual(os.getxattr(f, "user.bin"), binval)
        names = set(os.listxattr(f))
        self.assertTrue({"user.a", "user.empty", "user.bin"} <= names, names)
        os.setxattr(f, "user.a", b"replaced", os.XATTR_REPLACE)
        self.assertEqual(os.getxattr(f, "user.a"), b"replaced")
        self.assertErrno(errno.EEXIST, os.setxattr, f, "user.a", b"x",
                         os.XATTR_CREATE)
        self.assertErrno(errno.ENODATA, os.setxattr, f, "user.nope", b"x",
                         os.XATTR_REPLACE)
        self.assertErrno(errno.ENODATA, os.getxattr, f, "user.nope")
        os.setxattr(f, "user.created", b"c", os.XATTR_CREATE)
        os.removexattr(f, "user.a")
        self.assertErrno(errno.ENODATA, os.getxattr, f, "user.a")
        self.assertErrno(errno.ENODATA, os.removexattr, f, "user.a")
        self.assertNotIn("user.a", os.listxattr(f))
        for i in range(60):
            os.setxattr(f, "user.many.%02d" % i, b"v%d" % i)
        names = set(os.listxattr(f))
        for i in range(60):
            self.assertIn("user.many.%02d" % i, names)
            self.assertEqual(os.getxattr(f, "user.many.%02d" % i), b"v%d" % i)
        # Directories carry user xattrs too; symlinks and FIFOs may not.
        os.mkdir(self.p("d"))
        os.setxattr(self.p("d"), "user.dir", b"d")
        self.assertEqual(os.getxattr(self.p("d"), "user.dir"), b"d")
        os.symlink("f", self.p("l"))
        self.assertErrno(errno.EPERM, os.setxattr, self.p("l"), "user.x",
                         b"x", follow_symlinks=False)
        os.setxattr(self.p("l"), "user.via_link", b"y")  # follows to f
        self.assertEqual(os.getxattr(f, "user.via_link"), b"y")
        os.mkfifo(self.p("fifo"))
        self.assertErrno(errno.EPERM, os.setxattr, self.p("fifo"), "user.x",
                         b"x")
        # xattrs follow the inode through rename and hard links.
        os.rename(f, self.p("g"))
        os.link(self.p("g"), self.p("h"))
        self.assertEqual(os.getxattr(self.p("h"), "user.bin"), binval)

    def test_xattr_namespaces(self):
        # trusted.* and security.capability are stored; ACLs and security
        # labels are not supported and say so (EOPNOTSUPP, not ENODATA), so
        # that ls -l stops asking every file for them.
        f = self.p("f")
        write_file(f, b"x")
        os.setxattr(f, "trusted.t", b"tv")
        self.assertEqual(os.getxattr(f, "trusted.t"), b"tv")
        cap = bytes.fromhex("0100000200200000000000000000000000000000")
        os.setxattr(f, "security.capability", cap)
        self.assertEqual(os.getxattr(f, "security.capability"), cap)
        self.assertIn("security.capability", os.listxattr(f))
        os.removexattr(f, "security.capability")
        self.assertErrno(errno.ENODATA, os.getxattr, f, "security.capability")
        for name in ("security.selinux", "security.SMACK64",
                     "system.posix_acl_access", "system.posix_acl_default",
                     "system.nfs4_acl"):
            self.assertErrno(errno.EOPNOTSUPP, os.getxattr, f, name)
            if name.startswith("system.posix_acl"):
                continue  # the kernel handles setting and removing ACLs
            self.assertErrno(errno.EOPNOTSUPP, os.setxattr, f, name, b"v")
            self.assertErrno(errno.EOPNOTSUPP, os.removexattr, f, name)
        self.assertErrno(errno.EOPNOTSUPP, os.getxattr, self.m.path(),
                         "security.selinux")
        names = os.listxattr(f)
        self.assertIn("trusted.t", names)
        self.assertNotIn("security.capability", names)
        # ls -l asks the first file, learns, and lists everything.
        for i in range(20):
            write_file(self.p("ls%02d" % i), b"")
        out = subprocess.run(["ls", "-l", self.m.path()], capture_output=True,
                             text=True, check=True).stdout
        self.assertEqual(out.count("ls"), 20, out)

    def test_xattr_times(self):
        write_file(self.p("f"), b"")
        st0 = os.stat(self.p("f"))
        self.tick()
        os.setxattr(self.p("f"), "user.t", b"1")
        st1 = os.stat(self.p("f"))
        self.assertGreater(st1.st_ctime_ns, st0.st_ctime_ns)
        self.assertEqual(st1.st_mtime_ns, st0.st_mtime_ns)
        self.tick()
        os.removexattr(self.p("f"), "user.t")
        st2 = os.stat(self.p("f"))
        self.assertGreater(st2.st_ctime_ns, st1.st_ctime_ns)
        self.assertEqual(st2.st_mtime_ns, st0.st_mtime_ns)
        # The same value again changes nothing, not even ctime (ext4).
        os.setxattr(self.p("f"), "user.t", b"same")
        st3 = os.stat(self.p("f"))
        self.tick()
        os.setxattr(self.p("f"), "user.t", b"same")
        os.setxattr(self.p("f"), "user.t", b"same", os.XATTR_REPLACE)
        self.assertEqual(os.stat(self.p("f")).st_ctime_ns, st3.st_ctime_ns)
        self.assertErrno(errno.EEXIST, os.setxattr, self.p("f"), "user.t",
                         b"same", os.XATTR_CREATE)
        os.setxattr(self.p("f"), "user.t", b"samf")
        self.assertGreater(os.stat(self.p("f")).st_ctime_ns, st3.st_ctime_ns)
        self.assertEqual(os.getxattr(self.p("f"), "user.t"), b"samf")

    def test_reserved_tidefs_names(self):
        write_file(self.p("f"), b"x")
        os.mkdir(self.p("d"))
        f = self.p("f")
        self.assertEqual(os.getxattr(f, "user.tidefs.state"), b"new")
        for name in ("user.tidefs.state", "user.tidefs.other"):
            with self.subTest(name=name):
                self.assertErrnoIn((errno.EPERM, errno.EACCES), os.setxattr,
                                   f, name, b"archived")
                self.assertErrnoIn((errno.EPERM, errno.EACCES),
                                   os.setxattr, self.p("d"), name, b"x")
        self.assertErrnoIn((errno.EPERM, errno.EACCES, errno.ENODATA),
                           os.removexattr, f, "user.tidefs.state")
        self.assertEqual(os.getxattr(f, "user.tidefs.state"), b"new")
        self.assertErrno(errno.ENODATA, os.getxattr, f, "user.tidefs.other")

    def test_xattr_permissions(self):
        write_file(self.p("f"), b"", 0o644)
        os.chmod(self.p("f"), 0o644)
        os.setxattr(self.p("f"), "user.a", b"root's")
        self.assertEqual(nobody(lambda: os.getxattr(self.p("f"), "user.a")),
                         b"root's")
        self.assertErrno(errno.EACCES, nobody, lambda: os.setxattr(
            self.p("f"), "user.b", b"x"))
        self.assertErrno(errno.EACCES, nobody, lambda: os.removexattr(
            self.p("f"), "user.a"))
        os.chmod(self.p("f"), 0o600)
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.getxattr(self.p("f"), "user.a"))
        os.chmod(self.p("f"), 0o666)
        nobody(lambda: os.setxattr(self.p("f"), "user.b", b"by nobody"))
        self.assertEqual(os.getxattr(self.p("f"), "user.b"), b"by nobody")


# ------------------------------------------------- fallocate / fsync ----

class FallocateFsync(PosixCase):

    def test_fallocate_allocates_and_extends(self):
        fd = os.open(self.p("f"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"keep")
            fallocate(fd, 0, 0, 2 * MiB)
            st = os.fstat(fd)
            self.assertEqual(st.st_size, 2 * MiB)
            self.assertGreaterEqual(st.st_blocks * 512, 2 * MiB)
            self.assertEqual(os.pread(fd, 8, 0), b"keep\0\0\0\0")
            self.assertEqual(os.pread(fd, MiB, MiB), b"\0" * MiB)
            fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 * MiB, MiB)
            self.assertEqual(os.fstat(fd).st_size, 2 * MiB)
            self.assertEqual(os.pread(fd, 10, 2 * MiB), b"")
            # Inside existing data: nothing changes.
            fallocate(fd, 0, 0, 100)
            self.assertEqual(os.pread(fd, 4, 0), b"keep")
            self.assertEqual(os.fstat(fd).st_size, 2 * MiB)
            self.assertErrno(errno.EINVAL, fallocate, fd, 0, 0, 0)
        finally:
            os.close(fd)
        fd = os.open(self.p("f"), os.O_RDONLY)
        try:
            self.assertErrno(errno.EBADF, fallocate, fd, 0, 0, 10)
        finally:
            os.close(fd)

    def test_fallocate_punch_hole_and_zero_range(self):
        data = random_bytes(3 * MiB)
        write_file(self.p("f"), data)
        fd = os.open(self.p("f"), os.O_RDWR)
        try:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      MiB - 100, MiB + 200)
            self.assertEqual(os.fstat(fd).st_size, 3 * MiB)
            fallocate(fd, FALLOC_FL_ZERO_RANGE, 3 * MiB - 10, 20)
            self.assertEqual(os.fstat(fd).st_size, 3 * MiB + 10)
        finally:
            os.close(fd)
        exp = (data[:MiB - 100] + b"\0" * (MiB + 200) + data[2 * MiB + 100:
               3 * MiB - 10] + b"\0" * 20)
        self.assertEqual(md5(read_file(self.p("f"))), md5(exp))

    def test_fsync_fdatasync_fsyncdir(self):
        os.mkdir(self.p("d"))
        fd = os.open(self.p("d", "f"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, b"durable")
            os.fsync(fd)
            os.pwrite(fd, b"D", 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        dfd = os.open(self.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        rfd = os.open(self.p("d", "f"), os.O_RDONLY)
        try:
            os.fsync(rfd)  # fsync on a read-only fd is allowed
        finally:
            os.close(rfd)
        self.assertEqual(read_file(self.p("d", "f")), b"Durable")


# -------------------------------------------- permissions across users ----

class Permissions(PosixCase):

    def test_other_user_and_root_owned_file(self):
        f = self.p("f")
        write_file(f, b"root data", 0o644)
        os.chmod(f, 0o644)
        self.assertEqual(nobody(lambda: read_file(f)), b"root data")
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.open(f, os.O_WRONLY))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.open(f, os.O_RDONLY | os.O_TRUNC))
        self.assertErrno(errno.EACCES, nobody, lambda: os.open(
            f, os.O_WRONLY | os.O_APPEND))
        self.assertErrno(errno.EACCES, nobody, lambda: os.unlink(f))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.rename(f, self.p("g")))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: user_write(self.p("new"), b""))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.mkdir(self.p("newdir")))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.symlink("f", self.p("newlink")))
        self.assertEqual(read_file(f), b"root data")
        self.assertEqual(self.names(self.m.mountpoint), ["f"])
        # Root is not bound by the mode bits (but needs an x bit to exec).
        os.chmod(f, 0)
        self.assertEqual(read_file(f), b"root data")
        write_file(f, b"root again")
        self.assertFalse(os.access(f, os.X_OK))

    def test_owner_group_other_classes(self):
        cases = [  # (mode, uid, gid) -> who may read
            (0o640, 0, NOBODY, {NOBODY}),
            (0o604, 0, NOBODY, {OTHER}),          # group class denies
            (0o077, NOBODY, 0, {OTHER}),          # owner class denies
            (0o400, NOBODY, 0, {NOBODY}),
            (0o004, 0, 0, {NOBODY, OTHER}),
        ]
        for i, (mode, uid, gid, readers) in enumerate(cases):
            f = self.p("f%d" % i)
            write_file(f, b"content %d" % i)
            os.chown(f, uid, gid)
            os.chmod(f, mode)
            for who in (NOBODY, OTHER):
                with self.subTest(mode=oct(mode), owner=(uid, gid), who=who):
                    if who in readers:
                        self.assertEqual(as_user(who, who,
                                                 lambda: read_file(f)),
                                         b"content %d" % i)
                    else:
                        self.assertErrno(errno.EACCES, as_user, who, who,
                                         lambda: read_file(f))
        # Supplementary groups count.
        self.assertEqual(as_user(OTHER, OTHER, lambda: read_file(
            self.p("f0")), groups=(NOBODY,)), b"content 0")

    def test_directory_search_and_read(self):
        for name, mode in (("priv", 0o700), ("xonly", 0o711),
                           ("ronly", 0o744)):
            os.mkdir(self.p(name))
            write_file(self.p(name, "f"), b"in " + name.encode(), 0o644)
            os.chmod(self.p(name, "f"), 0o644)
            os.chmod(self.p(name), mode)
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.stat(self.p("priv", "f")))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.listdir(self.p("priv")))
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.listdir(self.p("xonly")))
        self.assertEqual(nobody(lambda: read_file(self.p("xonly", "f"))),
                         b"in xonly")
        self.assertEqual(nobody(lambda: os.listdir(self.p("ronly"))), ["f"])
        self.assertErrno(errno.EACCES, nobody,
                         lambda: os.stat(self.p("ronly", "f")))
        self.assertErrno(errno.EACCES, nobody, lambda: user_write(
            self.p("xonly", "new"), b""))

    def test_sticky_directory(self):
        pub = self.pub()
        mine = os.path.join(pub, "mine")
        theirs = os.path.join(pub, "theirs")
        nobody(lambda: user_write(mine, b"mine", 0o666))
        other(lambda: user_write(theirs, b"theirs"))
        other(lambda: os.chmod(theirs, 0o666))
        other(lambda: os.mkdir(os.path.join(pub, "theirdir")))
        self.assertEqual(os.stat(theirs).st_uid, OTHER)
        # Writable by everyone, yet in a sticky dir only the owner of the
        # file (or of the dir, or root) may remove or rename it.
        self.assertEqual(nobody(lambda: user_write(theirs, b"overwritten")),
                         True)
        self.assertErrnoIn((errno.EPERM, errno.EACCES), nobody,
                           lambda: os.unlink(theirs))
        self.assertErrnoIn((errno.EPERM, errno.EACCES), nobody,
                           lambda: os.rename(theirs,
                                             os.path.join(pub, "moved")))
        self.assertErrnoIn((errno.EPERM, errno.EACCES), nobody,
                           lambda: os.rename(mine, theirs))
        self.assertErrnoIn((errno.EPERM, errno.EACCES), nobody,
                           lambda: os.rmdir(os.path.join(pub, "theirdir")))
        self.assertEqual(read_file(theirs), b"overwritten")
        nobody(lambda: os.rename(mine, os.path.join(pub, "mine2")))
        nobody(lambda: os.unlink(os.path.join(pub, "mine2")))
        self.assertEqual(sorted(os.listdir(pub)), ["theirdir", "theirs"])
        # The directory's owner may remove anyone's file.
        os.chown(pub, NOBODY, NOBODY)
        nobody(lambda: os.unlink(theirs))
        # Root may too.
        other(lambda: user_write(theirs, b"again"))
        os.unlink(theirs)
        os.rmdir(os.path.join(pub, "theirdir"))
        self.assertEqual(os.listdir(pub), [])
        # Without the sticky bit anyone with write permission may.
        os.chmod(pub, 0o777)
        other(lambda: user_write(theirs, b"x"))
        nobody(lambda: os.unlink(theirs))
        self.assertEqual(os.listdir(pub), [])

    def test_write_by_non_owner_clears_setuid(self):
        f = self.p("suid")
        write_file(f, b"#!/bin/sh\n")
        os.chmod(f, 0o4777)

        def append():
            fd = os.open(f, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, b"echo hi\n")
            finally:
                os.close(fd)
            return True
        nobody(append)
        self.assertEqual(mode_of(f) & stat.S_ISUID, 0,
                         "a write by a non-owner clears S_ISUID (mode %o)"
                         % mode_of(f))
        self.assertEqual(read_file(f), b"#!/bin/sh\necho hi\n")

    def test_file_capabilities_go_with_changes_of_the_bytes(self):
        """As on ext4: security.capability goes when the file's bytes
        change (a write through any handle, truncate, O_TRUNC) or its
        owner does, and stays through chmod and utime. A write-only handle
        (the kernel passes its writes straight through, without removing
        it first) agrees with a read-write one."""
        cap = bytes.fromhex("0100000200200000000000000000000000000000")

        def write_with(flags):
            def go(f):
                fd = os.open(f, flags)
                try:
                    os.pwrite(fd, b"x", 1)
                finally:
                    os.close(fd)
            return go
        cases = [("write-only", write_with(os.O_WRONLY), False),
                 ("read-write", write_with(os.O_RDWR), False),
                 ("append", write_with(os.O_WRONLY | os.O_APPEND), False),
                 ("truncate", lambda f: os.truncate(f, 1), False),
                 ("O_TRUNC", lambda f: os.close(
                     os.open(f, os.O_WRONLY | os.O_TRUNC)), False),
                 ("chown", lambda f: os.chown(f, 65534, 65534), False),
                 ("chmod", lambda f: os.chmod(f, 0o700), True),
                 ("utime", lambda f: os.utime(f, (1, 1)), True)]
        for name, change, kept in cases:
            f = self.p("cap-" + name)
            write_file(f, b"abc")
            os.setxattr(f, "security.capability", cap)
            change(f)
            if kept:
                self.assertEqual(os.getxattr(f, "security.capability"), cap,
                                 name)
            else:
                self.assertErrno(errno.ENODATA, os.getxattr, f,
                                 "security.capability")
                self.assertNotIn("security.capability", os.listxattr(f),
                                 name)
        # A write to a file without capabilities changes no xattr.
        f = self.p("cap-none")
        write_file(f, b"abc")
        os.setxattr(f, "user.keep", b"1")
        write_with(os.O_WRONLY)(f)
        self.assertEqual(os.getxattr(f, "user.keep"), b"1")

    def test_set_group_id_without_group_execute(self):
        """As on ext4 (the VFS since Linux 6.2): S_ISGID on a file that is
        not group-executable goes when a caller without CAP_FSETID that is
        not in the file's group writes, truncates or allocates it, and
        stays for one in the group. FUSE's kernel client keeps it either
        way (its own, older rule), so tidefs clears it itself."""
        f = self.p("sg")
        write_file(f, b"0123456789")

        def change(how):
            def go():
                if how == "truncate":
                    os.truncate(f, 5)
                    return True
                fd = os.open(f, os.O_WRONLY if how == "write-only"
                             else os.O_RDWR)
                try:
                    if how == "fallocate":
                        os.posix_fallocate(fd, 0, 64)
                    else:
                        os.pwrite(fd, b"x", 1)
                finally:
                    os.close(fd)
                return True
            return go
        if not VFS_DROPS_SGID_NOGROUP:
            self.skipTest("kernel %s keeps it (older than 6.2)"
                          % os.uname().release)
        for how in ("write-only", "read-write", "truncate", "fallocate"):
            for group, left in ((0, 0o767), (NOBODY, 0o2767)):
                os.chown(f, 0, group)
                os.chmod(f, 0o2767)
                self.assertTrue(nobody(change(how)))
                self.assertEqual(mode_of(f), left, "%s, group %d: %o"
                                 % (how, group, mode_of(f)))
            os.chown(f, 0, 0)
            os.chmod(f, 0o2767)
            change(how)()  # root keeps it
            self.assertEqual(mode_of(f), 0o2767, how)

    def test_set_id_bits_after_writes(self):
        """As on ext4: a write by a caller without CAP_FSETID clears
        S_ISUID, and S_ISGID when group-executable; root's writes keep
        them. Write-only handles (the kernel passes their writes straight
        through) and read-write ones (through its page cache) agree."""
        f = self.p("sid")
        write_file(f, b"0123456789")

        def write_at(flags, off):
            def go():
                fd = os.open(f, flags)
                try:
                    os.pwrite(fd, b"x", off)
                finally:
                    os.close(fd)
                return True
            return go
        for flags in (os.O_WRONLY, os.O_RDWR):
            os.chmod(f, 0o6777)
            write_at(flags, 1)()
            self.assertEqual(mode_of(f), 0o6777, "root (%o)" % flags)
            nobody(write_at(flags, 2))
            self.assertEqual(mode_of(f), 0o777, "nobody (%o)" % flags)
            os.chmod(f, 0o4757)
            nobody(write_at(flags, 3))
            self.assertEqual(mode_of(f), 0o757, "S_ISUID only (%o)" % flags)
        self.assertEqual(read_file(f), b"0xxx456789")


# ------------------------------------------- against the local file system --

class AgainstLocal(PosixCase):
    """The same random operations, as root and as nobody, on the mount and
    on a directory of the test's own (local) file system, side by side:
    after each, the same result (errno) and the same tree (type, mode,
    owner, links, size, bytes, symlink targets, xattrs, and whether mtime
    and ctime moved). Found: O_TRUNC that kept set-id bits and times (and
    did not truncate with O_RDONLY), file capabilities kept by a
    write-only handle's write, S_ISGID kept for callers outside the group,
    the same xattr value again moving ctime, and removed symlinks that
    made every write fail with ENOSPC. (Device nodes are left out: FUSE
    mounts are nodev.)"""

    TEST_TIMEOUT = 240
    maxDiff = None
    SEEDS = 12
    S3_SEEDS = 6
    OPS = 80
    NAMES = ["a", "b", "c", "d/e", "d/f", "d", "g", "g/h"]

    def caps(self, i):
        # security.capability v2, its permitted set varying with i (the
        # same value set again would leave ext4's ctime alone).
        return bytes([1, 0, 0, 2, i & 0xff, 0x20]) + bytes(14)

    def local_supports(self, root):
        f = os.path.join(root, "probe")
        write_file(f, b"")
        try:
            os.setxattr(f, "user.x", b"1")
            os.setxattr(f, "security.capability", self.caps(1))
        except OSError:
            return False
        finally:
            os.unlink(f)
        return True

    def op(self, root, k, a, b, i, arg):
        p, q = os.path.join(root, a), os.path.join(root, b)
        nb = os.O_NONBLOCK  # FIFOs: never wait for the other end

        def pw(flags, data, off=None):
            fd = os.open(p, flags | nb, 0o666)
            try:
                if off is None:
                    os.write(fd, data)
                else:
                    os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        if k == 0:
            pw(os.O_CREAT | os.O_WRONLY, b"w%d" % i * 10, i)
        elif k == 1:
            pw(os.O_RDWR | os.O_APPEND, b"app")
        elif k == 2:
            os.truncate(p, i * 3)
        elif k == 3:
            os.chmod(p, arg)
        elif k == 4:
            os.chown(p, *arg)
        elif k == 5:
            os.setxattr(p, "security.capability", self.caps(i))
        elif k == 6:
            os.setxattr(p, "user.x", b"%d" % i)
        elif k == 7:
            os.rename(p, q)
        elif k == 8:
            os.link(p, q)
        elif k == 9:
            os.unlink(p)
        elif k == 10:
            os.close(os.open(p, os.O_WRONLY | os.O_TRUNC | nb))
        elif k == 11:
            os.utime(p, (i, i))
        elif k == 12:
            pw(os.O_WRONLY, b"Z", 0)
        elif k == 13:
            pw(os.O_RDWR, b"Y", 1)
        elif k == 14:
            os.mkdir(p, 0o777)
        elif k == 15:
            os.rmdir(p)
        elif k == 16:
            os.symlink("tgt%d" % i, p)
        elif k == 17:
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640))
        elif k == 18:
            fd = os.open(p, os.O_RDWR | nb)
            try:
                os.posix_fallocate(fd, 0, i * 5)
            finally:
                os.close(fd)
        elif k == 19:
            os.removexattr(p, "user.x")
        elif k == 20:
            os.mkfifo(p, 0o600)
        elif k == 21:
            os.chmod(p, arg | 0o1000)
        elif k == 22:
            os.lchown(p, arg[0], -1)
        elif k == 23:
            os.replace(p, q)
        elif k in (24, 25):  # RENAME_NOREPLACE, RENAME_EXCHANGE
            renameat2(p, q, 1 if k == 24 else 2)
        elif k == 26:
            os.mknod(p, stat.S_IFIFO | 0o640)
        elif k == 27:
            fd = os.open(p, os.O_RDONLY | nb)
            try:
                os.read(fd, 10)
            finally:
                os.close(fd)
        elif k == 28:
            os.listdir(p)
        elif k == 29:
            os.chmod(p, 0o2770 if i % 2 else 0o700)
        elif k == 30:
            os.mkdir(p, 0o2777)
        elif k == 31:
            os.close(os.open(p, os.O_RDONLY | os.O_TRUNC | nb))
        elif k == 32:
            os.link(p, q, follow_symlinks=False)
        elif k == 33:
            os.utime(p, None)
        return True

    def run_op(self, root, k, a, b, i, arg, who):
        try:
            if who:
                nobody(lambda: self.op(root, k, a, b, i, arg))
            else:
                self.op(root, k, a, b, i, arg)
            return 0
        except OSError as e:
            return e.errno

    def tree(self, root, prev):
        out, raw = {}, {}
        for dp, dns, fns in os.walk(root):
            if dp == root:
                dns[:] = [d for d in dns if d != ".tidefs"]
            for n in sorted(dns + fns):
                path = os.path.join(dp, n)
                st = os.lstat(path)
                rel = os.path.relpath(path, root)
                raw[rel] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
                old = prev.get(rel)
                if old is None or old[0] != st.st_ino:
                    moved = "another file"  # times not comparable
                else:
                    moved = (old[1] != st.st_mtime_ns,
                             old[2] != st.st_ctime_ns)
                if stat.S_ISFIFO(st.st_mode):
                    moved = None  # the kernel keeps a FIFO's write times
                e = [oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink,
                     0 if stat.S_ISDIR(st.st_mode) else st.st_size, moved]
                if stat.S_ISREG(st.st_mode):
                    e.append(read_file(path))
                elif stat.S_ISLNK(st.st_mode):
                    e.append(os.readlink(path))
                if not stat.S_ISLNK(st.st_mode):
                    e.append({x: os.getxattr(path, x)
                              for x in sorted(os.listxattr(path))
                              if not x.startswith("user.tidefs.")})
                out[rel] = e
        return out, raw

    MODES = [0o6755, 0o644, 0o2775, 0o4700, 0o777, 0o2767]
    OWNERS = [(0, 0), (0, NOBODY), (NOBODY, 0), (NOBODY, NOBODY)]

    def local_dir(self):
        local = os.path.join(self.tmp, "local")
        os.mkdir(local)
        os.chmod(local, 0o755)
        if not self.local_supports(local):
            self.skipTest("the test's file system lacks user.* or "
                          "security.* xattrs")
        return local

    def run_seed(self, seed, rnd, roots):
        """OPS random operations on both roots, compared after each."""
        prev = [self.tree(r, {})[1] for r in roots]
        first = [self.tree(r, {})[0] for r in roots]
        self.assertEqual(first[0], first[1], "seed %d: before" % seed)
        for i in range(self.OPS):
            k = rnd.randrange(34)
            a, b = rnd.choice(self.NAMES), rnd.choice(self.NAMES)
            who = rnd.random() < 0.3
            arg = (rnd.choice(self.MODES) if k in (3, 21)
                   else rnd.choice(self.OWNERS))
            # A moved time is a different one, even where the local file
            # system stamps times by the tick (HZ 100 or more).
            time.sleep(0.011)
            res = [self.run_op(r, k, a, b, i, arg, who) for r in roots]
            trees = [self.tree(r, pv) for r, pv in zip(roots, prev)]
            prev = [t[1] for t in trees]
            what = "seed %d op %d: %d %s %s as %s" % (
                seed, i, k, a, b, "nobody" if who else "root")
            self.assertEqual(res[0], res[1], what)
            self.assertEqual(trees[0][0], trees[1][0], what)

    def test_random_operations_on_files_from_s3_match_local_copies(self):
        """The same on files a first mount imported from S3 and has not
        read yet (released: writes into them fetch what they cover only
        partly), beside local copies with the same bytes, mode and owner."""
        local = self.local_dir()
        sizes = [0, 1, 4096, MiB - 1, MiB + 7, 3 * MiB + 5]
        for seed in range(self.S3_SEEDS):
            rnd = random.Random(7000 + seed)
            prefix = "s3-%d" % seed
            bodies = {n: random_bytes(rnd.choice(sizes))
                      for n in ("a", "b", "c", "d/e", "d/f", "g/h")}
            self.put_many(("%s/%s" % (prefix, n), b)
                          for n, b in bodies.items())
            self.assertEqual(self.m.unmount(), 0)
            self.m = self.mount(prefix=prefix, args=["-o", "allow_other"])
            roots = [self.p(), os.path.join(local, prefix)]
            for n, b in bodies.items():
                path = os.path.join(roots[1], n)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_file(path, b)
                st = os.lstat(self.p(n))
                self.assertEqual(self.m.state(n),
                                 "released" if b else "archived")
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, stat.S_IMODE(st.st_mode))
            for r in roots:
                for d in ("", "d", "g"):
                    os.chmod(os.path.join(r, d), 0o777)
            self.run_seed(seed, rnd, roots)

    def test_random_operations_match_the_local_file_system(self):
        local = self.local_dir()
        for seed in range(self.SEEDS):
            rnd = random.Random(9000 + seed)
            roots = [self.p("s%d" % seed), os.path.join(local, "s%d" % seed)]
            for r in roots:
                os.makedirs(os.path.join(r, "d"))
                os.chmod(r, 0o777)
                os.chmod(os.path.join(r, "d"), 0o777)
            self.run_seed(seed, rnd, roots)
        # All of it, times to the nanosecond, is what the next mount finds,
        # after kill -9 of the daemon (every change was acknowledged) and
        # after a clean unmount.
        before = self.tree(self.p(), {})[1], self.tree(self.p(), {})[0]
        os.kill(self.m.proc.pid, signal.SIGKILL)
        self.m.proc.wait(20)
        fusermount_unmount(self.m.mountpoint, lazy=True)
        for how in ("kill -9", "unmount"):
            self.m = self.mount(cache_dir=self.m.cache_dir,
                                args=["-o", "allow_other"])
            after = self.tree(self.p(), {})[1], self.tree(self.p(), {})[0]
            self.assertEqual(after, before, "after " + how)
            if how == "kill -9":
                self.assertEqual(self.m.unmount(), 0)


if __name__ == "__main__":
    unittest.main()
