# SPDX-License-Identifier: MIT
"""Command line, startup failures, daemonizing, unmount and cache sizing.

Contract: without -f the command returns 0 only once the mount is live; any
startup failure exits non-zero with one line on stderr starting "tidefs: "
and leaves nothing mounted; `fusermount3 -u` makes the daemon exit 0.
"""

import os
import signal
import subprocess
import time
import unittest

from tidefs_test import (SETTLE_TIMEOUT, MiB, TidefsTestCase, free_port,
                         is_mounted, pids_with_arg, run_to_files, tidefs_bin,
                         wait_until)


def _drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


class StartupErrors(TidefsTestCase):
    TEST_TIMEOUT = 90

    def run_tidefs(self, args, timeout=45):
        t0 = time.monotonic()
        r = run_to_files([tidefs_bin()] + args, timeout)
        if r is None:
            self.fail("tidefs %s did not exit within %ds" % (args, timeout))
        return subprocess.CompletedProcess(args, r[0], r[1], r[2]), \
            time.monotonic() - t0

    def assertStartupFails(self, args, mountpoint, *keywords, timeout=45):
        """Non-zero exit, exactly one stderr line starting 'tidefs: ' that
        mentions one of keywords, nothing mounted, no daemon left."""
        r, el = self.run_tidefs(args, timeout)
        err = r.stderr.decode(errors="replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertNotEqual(r.returncode, 0,
                            "tidefs %s succeeded; stderr=%r" % (args, err))
        self.assertEqual(len(lines), 1,
                         "expected one line on stderr, got %r" % err)
        self.assertTrue(lines[0].startswith("tidefs: "),
                        "stderr line does not start with 'tidefs: ': %r"
                        % lines[0])
        if keywords:
            low = lines[0].lower()
            self.assertTrue(any(k.lower() in low for k in keywords),
                            "message %r names none of %r" % (lines[0],
                                                             keywords))
        if mountpoint is not None and os.path.isdir(mountpoint):
            self.assertFalse(is_mounted(mountpoint),
                             "failed start left %s mounted" % mountpoint)
            wait_until(lambda: not pids_with_arg(mountpoint),
                       SETTLE_TIMEOUT)
            self.assertEqual(pids_with_arg(mountpoint), [],
                             "a tidefs process for %s outlived the failed "
                             "start" % mountpoint)
        return lines[0], el

    def dirs(self):
        cache = os.path.join(self.tmp, "cache")
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(cache, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        return cache, mnt

    def base(self, cache, url=None, endpoint=None):
        a = []
        if cache is not None:
            a += ["--cache-dir", cache]
        a += ["--endpoint-url", endpoint or self.moto.url,
              "--region", "us-east-1", "--retry-timeout", "2"]
        return a

    def test_help_and_version(self):
        r, _ = self.run_tidefs(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        text = (r.stdout + r.stderr).decode()
        for opt in ("--cache-dir", "--cache-size", "--endpoint-url",
                    "--region", "--profile", "--foreground", "--log-level",
                    "--retry-timeout", "s3://"):
            self.assertIn(opt, text, "--help does not mention %s" % opt)
        r, _ = self.run_tidefs(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0.1.0", (r.stdout + r.stderr).decode())

    def test_missing_cache_dir(self):
        _, mnt = self.dirs()
        self.assertStartupFails(self.base(None) + ["s3://%s" % self.bucket,
                                                   mnt], mnt, "cache-dir")

    def test_bad_cache_size(self):
        cache, mnt = self.dirs()
        for bad in ("12Q", "abc", "-1G", "1.5.5G", ""):
            with self.subTest(size=bad):
                self.assertStartupFails(
                    self.base(cache) + ["--cache-size", bad,
                                        "s3://%s" % self.bucket, mnt],
                    mnt, "size", bad or "size")

    def test_unknown_option_and_bad_url(self):
        cache, mnt = self.dirs()
        self.assertStartupFails(self.base(cache) + [
            "--no-such-option", "s3://%s" % self.bucket, mnt], mnt)
        for url in ("http://%s" % self.bucket, "s3://", self.bucket):
            with self.subTest(url=url):
                self.assertStartupFails(self.base(cache) + [url, mnt], mnt)
        self.assertStartupFails(self.base(cache) + ["s3://%s" % self.bucket],
                                None)

    def test_unknown_bucket(self):
        cache, mnt = self.dirs()
        self.assertStartupFails(
            self.base(cache) + ["s3://no-such-bucket-4711", mnt], mnt,
            "no-such-bucket-4711", "bucket")

    def test_unreachable_endpoint(self):
        cache, mnt = self.dirs()
        dead = "http://127.0.0.1:%d" % free_port()
        _, el = self.assertStartupFails(
            self.base(cache, endpoint=dead) + ["s3://%s" % self.bucket, mnt],
            mnt, "127.0.0.1", "endpoint", "connect", "reach")
        self.assertLess(el, 30, "startup against a dead endpoint took %.1fs"
                        " with --retry-timeout 2" % el)

    def test_bad_mount_point(self):
        cache, _ = self.dirs()
        missing = os.path.join(self.tmp, "does", "not", "exist")
        self.assertStartupFails(
            self.base(cache) + ["s3://%s" % self.bucket, missing], None,
            "mount", missing)
        regular = os.path.join(self.tmp, "plainfile")
        with open(regular, "w") as f:
            f.write("x")
        self.assertStartupFails(
            self.base(cache) + ["s3://%s" % self.bucket, regular], None,
            "mount", regular)

    def test_cache_dir_locked_by_live_mount(self):
        self.put("f", b"hello")
        m1 = self.mount()
        mnt2 = os.path.join(self.tmp, "mnt2")
        os.makedirs(mnt2)
        self.assertStartupFails(
            self.base(m1.cache_dir) + ["s3://%s" % self.bucket, mnt2], mnt2,
            "lock", "in use", "already", "busy", m1.cache_dir)
        # The first mount is unharmed.
        with open(m1.path("f"), "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual(m1.unmount(), 0)

    def test_cache_dir_of_another_bucket_or_prefix(self):
        other = "o-" + self.bucket
        self.s3.create_bucket(Bucket=other)
        self.put("p1/a", b"1")
        self.put("p2/b", b"2")
        m1 = self.mount(prefix="p1")
        self.assertEqual(sorted(n for n in os.listdir(m1.mountpoint)
                                if n != ".tidefs"), ["a"])
        self.assertEqual(m1.unmount(), 0)
        mnt = os.path.join(self.tmp, "mnt-other")
        os.makedirs(mnt)
        self.assertStartupFails(
            self.base(m1.cache_dir) + ["s3://%s" % other, mnt], mnt,
            other, self.bucket, "bucket", "repository", "cache")
        self.assertStartupFails(
            self.base(m1.cache_dir) + ["s3://%s/p2" % self.bucket, mnt], mnt,
            "p2", "p1", "prefix", "repository", "cache")
        # Same bucket and prefix still mounts from that cache dir.
        m2 = self.mount(prefix="p1", cache_dir=m1.cache_dir)
        self.assertTrue(os.path.isfile(m2.path("a")))


class MountLifecycle(TidefsTestCase):
    TEST_TIMEOUT = 90

    def test_background_mount_is_live_on_return(self):
        self.put("dir/file.txt", b"payload")
        m = self.mount(foreground=False, log_level=None)
        # No sleeping: the mount must be usable the moment the command
        # returned 0.
        self.assertTrue(m.is_mounted())
        self.assertIn("dir", os.listdir(m.mountpoint))
        with open(m.path("dir", "file.txt"), "rb") as f:
            self.assertEqual(f.read(), b"payload")
        pids = m.daemon_pids()
        self.assertEqual(len(pids), 1, "expected one daemon, found %r" % pids)
        m.unmount()  # waits for the daemon to exit, raises if it does not
        self.assertFalse(m.is_mounted())
        log = os.path.join(m.cache_dir, "tidefs.log")
        self.assertTrue(os.path.exists(log),
                        "a daemonized tidefs logs to DIR/tidefs.log (README)")
        self.assertGreater(os.path.getsize(log), 0,
                           "DIR/tidefs.log is empty after a mount's life")
        self.assertEqual(pids_with_arg(m.mountpoint), [],
                         "daemon still running after fusermount3 -u")

    def test_foreground_unmount_exits_zero(self):
        self.put("a", b"x")
        m = self.mount()
        self.assertTrue(m.is_mounted())
        rc = m.unmount()
        self.assertEqual(rc, 0, "daemon exit code after fusermount3 -u:\n%s"
                         % m.log_tail())
        self.assertFalse(m.is_mounted())

    def test_sigterm_unmounts_and_exits_zero(self):
        self.put("a", b"x")
        m = self.mount()
        os.kill(m.proc.pid, signal.SIGTERM)
        try:
            rc = m.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("daemon did not exit within 20s of SIGTERM")
        self.assertEqual(rc, 0, m.log_tail())
        wait_until(lambda: not m.is_mounted(), SETTLE_TIMEOUT)
        self.assertFalse(m.is_mounted(), "SIGTERM left the mount behind")

    def test_remount_after_kill9(self):
        """An unclean stop leaves the cache dir usable (lock released)."""
        self.put("a", b"x" * 1000)
        m = self.mount()
        with open(m.path("a"), "rb") as f:
            self.assertEqual(f.read(), b"x" * 1000)
        m.kill(signal.SIGKILL)
        m.proc.wait(10)
        m.cleanup()
        self.assertFalse(m.is_mounted())
        m2 = self.mount(cache_dir=m.cache_dir)
        with open(m2.path("a"), "rb") as f:
            self.assertEqual(f.read(), b"x" * 1000)
        self.assertEqual(m2.unmount(), 0)

    def test_allow_other(self):
        """Without allow_other only the mounting user gets in; with it,
        others do, and permissions are checked (default_permissions)."""
        self.put("pub", b"public", {"file-permissions": "0100644",
                                    "file-owner": "1000",
                                    "file-group": "1000"})
        self.put("priv", b"secret", {"file-permissions": "0100600",
                                     "file-owner": "1000",
                                     "file-group": "1000"})

        def as_nobody(code, path):
            return subprocess.run(
                ["python3", "-c", code, path], preexec_fn=_drop_to_nobody,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        # mkdtemp makes 0700 directories: let others reach the mount point.
        for d in (self.class_tmp, self.tmp):
            os.chmod(d, 0o755)
        read = ("import sys\ntry:\n print(open(sys.argv[1]).read())\n"
                "except OSError as e:\n print('errno', e.errno)")
        m = self.mount()
        r = as_nobody(read, m.path("pub"))
        self.assertEqual(r.stdout.decode().strip(), "errno 13",
                         "another user read a mount without allow_other")
        self.assertEqual(m.unmount(), 0)
        m = self.mount(cache_dir=m.cache_dir, args=["-o", "allow_other"])
        r = as_nobody(read, m.path("pub"))
        self.assertEqual(r.stdout.decode().strip(), "public", r.stderr)
        r = as_nobody(read, m.path("priv"))
        self.assertEqual(r.stdout.decode().strip(), "errno 13",
                         "mode 0600 of uid 1000 was readable by nobody")
        with open(m.path("priv"), "rb") as f:  # root may
            self.assertEqual(f.read(), b"secret")

    def test_ro_option_accepted(self):
        self.put("a", b"x")
        m = self.mount(args=["-o", "ro"])
        with open("/proc/self/mountinfo") as f:
            line = [ln for ln in f
                    if ln.split()[4] == os.path.realpath(m.mountpoint)][0]
        self.assertIn("ro", line.split()[5].split(","))
        with open(m.path("a"), "rb") as f:
            self.assertEqual(f.read(), b"x")


class CacheSize(TidefsTestCase):
    TEST_TIMEOUT = 90

    def test_explicit_size_is_used_and_remembered(self):
        self.put("a", b"x")
        m = self.mount(args=["--cache-size", "512M"])
        self.assertEqual(m.stats()["cache_capacity_bytes"], 512 * MiB)
        self.assertEqual(m.unmount(), 0)
        m2 = self.mount(cache_dir=m.cache_dir)
        self.assertEqual(m2.stats()["cache_capacity_bytes"], 512 * MiB,
                         "--cache-size was not remembered in the cache dir")

    def test_size_units(self):
        self.put("a", b"x")
        for arg, want in (("50G", 50 << 30), ("1T", 1 << 40)):
            with self.subTest(size=arg):
                m = self.mount(args=["--cache-size", arg])
                self.assertEqual(m.stats()["cache_capacity_bytes"], want)
                self.assertEqual(m.unmount(), 0)

    def test_default_is_80_percent_of_free_space(self):
        self.put("a", b"x")
        cache = os.path.join(self.tmp, "cache-default")
        os.makedirs(cache)
        st = os.statvfs(cache)
        free = st.f_bavail * st.f_frsize
        m = self.mount(cache_dir=cache)
        cap = m.stats()["cache_capacity_bytes"]
        self.assertAlmostEqual(cap / free, 0.8, delta=0.05,
                               msg="capacity %d vs free %d" % (cap, free))


if __name__ == "__main__":
    unittest.main()
