# SPDX-License-Identifier: MIT
"""mount.tidefs, the mount(8) helper: `mount -t tidefs s3://b/p DIR -o ...`
and /etc/fstab lines (here a temporary fstab with `mount -a -T FILE`).

The helper is copied to /sbin/mount.tidefs for each test (mount(8) looks for
/sbin/mount.<type>) and removed afterwards; mount(8) run by root passes the
environment through, so the helper finds the daemon through TIDEFS_BIN.
Covers: option translation, mount returning only once the mount is live,
the s3:// source in the mount table, ro and allow_other reaching FUSE, the
options only mount(8) acts on (_netdev, nofail, noauto, x-*) being dropped,
fstab entries with `mount -a` (twice: the second sees "already mounted"),
`noauto`, umount ending the daemon, and start-up failures leaving nothing
mounted.
"""

import os
import shutil
import subprocess
import time
import unittest

from tidefs_test import (REPO, TidefsTestCase, fusermount_unmount, is_mounted,
                         kill_daemons_for, pids_with_arg, tidefs_bin)

HELPER_SRC = os.path.join(REPO, "scripts", "mount.tidefs")
HELPER_DST = "/sbin/mount.tidefs"


def mount_entries():
    """{mount point: (source, fstype, options)} from /proc/self/mountinfo."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            fields, tail = a.split(), b.split()
            out[fields[4]] = (tail[1], tail[0], fields[5] + "," + tail[2])
    return out


class MountHelper(TidefsTestCase):
    TEST_TIMEOUT = 120

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(HELPER_SRC))
        self.saved = None
        if os.path.lexists(HELPER_DST):
            self.saved = HELPER_DST + ".saved-by-test"
            os.rename(HELPER_DST, self.saved)
        shutil.copy(HELPER_SRC, HELPER_DST)
        os.chmod(HELPER_DST, 0o755)
        self.env = dict(os.environ, TIDEFS_BIN=tidefs_bin())
        self.mountpoints = []
        self.addCleanup(self._helper_cleanup)

    def _helper_cleanup(self):
        for mnt in self.mountpoints:
            if is_mounted(mnt):
                subprocess.run(["umount", mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if is_mounted(mnt):
                fusermount_unmount(mnt, lazy=True)
            kill_daemons_for(mnt)
        try:
            os.unlink(HELPER_DST)
        except FileNotFoundError:
            pass
        if self.saved:
            os.rename(self.saved, HELPER_DST)

    def dirs(self, tag):
        cache = os.path.join(self.tmp, "cache-" + tag)
        mnt = os.path.join(self.tmp, "mnt-" + tag)
        os.makedirs(mnt)
        self.mountpoints.append(mnt)
        return cache, mnt

    def run_cmd(self, argv, timeout=60):
        # Files, not pipes: the daemon inherits the helper's stderr until it
        # has detached.
        r = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), \
            r.stderr.decode(errors="replace")

    def base_opts(self, cache):
        return ("cache_dir=%s,cache_size=128M,endpoint_url=%s,"
                "region=us-east-1" % (cache, self.moto.url))

    def wait_daemon_gone(self, mnt, timeout=20):
        deadline = time.monotonic() + timeout
        while pids_with_arg(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(pids_with_arg(mnt), [],
                         "tidefs for %s outlived the unmount" % mnt)

    def test_mount_t_tidefs(self):
        self.put("pre/hello.txt", b"hello from s3")
        self.put("pre/dir/x", b"x" * 5000)
        self.put("elsewhere", b"no")
        cache, mnt = self.dirs("a")
        src = "s3://%s/pre" % self.bucket
        rc, out, err = self.run_cmd(
            ["mount", "-t", "tidefs", src, mnt, "-o",
             self.base_opts(cache) + ",allow_other,ro,_netdev,nofail"])
        self.assertEqual(rc, 0, err)
        # mount(8) returned: the mount is already live.
        self.assertTrue(is_mounted(mnt))
        self.assertEqual(sorted(n for n in os.listdir(mnt)
                                if n != ".tidefs"), ["dir", "hello.txt"])
        with open(os.path.join(mnt, "hello.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello from s3")
        source, fstype, opts = mount_entries()[mnt]
        self.assertEqual(source, src)
        self.assertEqual(fstype, "fuse.tidefs")
        for o in ("ro", "allow_other", "default_permissions"):
            self.assertIn(o, opts.split(","))
        self.assertNotIn("_netdev", opts)
        self.assertErrno(30, os.mkdir, os.path.join(mnt, "new"))  # EROFS
        # The daemon logs to the cache dir once it has detached.
        self.assertTrue(os.path.exists(os.path.join(cache, "tidefs.log")))

        rc, out, err = self.run_cmd(["umount", mnt])
        self.assertEqual(rc, 0, err)
        self.assertFalse(is_mounted(mnt))
        self.wait_daemon_gone(mnt)

    def test_fstab_mount_all(self):
        self.put("one/a", b"AAA")
        self.put("two/b", b"BBB")
        c1, m1 = self.dirs("one")
        c2, m2 = self.dirs("two")
        fstab = os.path.join(self.tmp, "fstab")
        with open(fstab, "w") as f:
            f.write("# tidefs test fstab\n")
            f.write("s3://%s/one %s tidefs %s,allow_other,_netdev,nofail,"
                    "x-systemd.automount,comment=test 0 0\n"
                    % (self.bucket, m1, self.base_opts(c1)))
            f.write("s3://%s/two\t%s\ttidefs\t%s,noauto,_netdev\t0\t0\n"
                    % (self.bucket, m2, self.base_opts(c2)))
        rc, out, err = self.run_cmd(["mount", "-a", "-T", fstab])
        self.assertEqual(rc, 0, err)
        self.assertTrue(is_mounted(m1))
        self.assertFalse(is_mounted(m2), "noauto entry mounted by mount -a")
        with open(os.path.join(m1, "a"), "rb") as f:
            self.assertEqual(f.read(), b"AAA")
        pids = pids_with_arg(m1)
        self.assertEqual(len(pids), 1, pids)

        # Again: mount(8) recognises the mounted entry by source and target.
        rc, out, err = self.run_cmd(["mount", "-a", "-T", fstab])
        self.assertEqual(rc, 0, err)
        self.assertEqual(pids_with_arg(m1), pids)

        # The noauto entry mounts by its mount point.
        rc, out, err = self.run_cmd(["mount", "-T", fstab, m2])
        self.assertEqual(rc, 0, err)
        with open(os.path.join(m2, "b"), "rb") as f:
            self.assertEqual(f.read(), b"BBB")

        for m in (m1, m2):
            rc, out, err = self.run_cmd(["umount", m])
            self.assertEqual(rc, 0, err)
            self.assertFalse(is_mounted(m))
            self.wait_daemon_gone(m)

        # Mounted again from fstab, the cache is reused.
        rc, out, err = self.run_cmd(["mount", "-T", fstab, m1])
        self.assertEqual(rc, 0, err)
        with open(os.path.join(m1, "a"), "rb") as f:
            self.assertEqual(f.read(), b"AAA")
        self.assertEqual(self.run_cmd(["umount", m1])[0], 0)
        self.wait_daemon_gone(m1)

    def test_failures_leave_nothing_mounted(self):
        cache, mnt = self.dirs("f")
        cases = [
            # no cache_dir
            ("endpoint_url=%s" % self.moto.url, "cache-dir"),
            # unknown bucket
            (self.base_opts(cache) + ",retry_timeout=2", "tidefs:"),
            # tidefs option without its value
            ("cache_dir", "cache_dir"),
        ]
        src = "s3://%s" % self.bucket
        for opts, word in cases:
            if word == "tidefs:":
                src = "s3://no-such-bucket-%s" % self.bucket[2:]
            rc, out, err = self.run_cmd(["mount", "-t", "tidefs", src, mnt,
                                         "-o", opts])
            self.assertNotEqual(rc, 0, (opts, err))
            self.assertIn(word, err, (opts, err))
            self.assertFalse(is_mounted(mnt), opts)
            self.wait_daemon_gone(mnt)
        rc, out, err = self.run_cmd(["mount", "-t", "tidefs", "/not/s3", mnt,
                                     "-o", self.base_opts(cache)])
        self.assertNotEqual(rc, 0)
        self.assertIn("s3://", err)

    def test_option_translation(self):
        """The helper's -f (fake) prints the tidefs command it would run."""
        rc, out, err = self.run_cmd(
            [HELPER_DST, "s3://bkt/some/prefix", "/mnt/x", "-f", "-o",
             "rw,cache-dir=/c,cache_size=2G,endpoint-url=http://h:9000,"
             "region=eu-west-1,profile=prod,retry_timeout=5,chunk_size=4M,"
             "fetch_threads=8,import_parallel=4,log_level=warn,"
             "no_verify_ssl,virtual_hosted,allow_other,_netdev,nofail,"
             "noauto,user,x-systemd.requires=network-online.target,"
             "comment=hi,defaults,default_permissions,noatime"])
        self.assertEqual(rc, 0, err)
        argv = err.strip().split(" ", 1)[1].split()
        self.assertEqual(argv[0], tidefs_bin())
        expected = ["--cache-dir", "/c", "--cache-size", "2G",
                    "--endpoint-url", "http://h:9000", "--region",
                    "eu-west-1", "--profile", "prod", "--retry-timeout", "5",
                    "--chunk-size", "4M", "--fetch-threads", "8",
                    "--import-parallel", "4", "--log-level", "warn",
                    "--no-verify-ssl", "--virtual-hosted", "-o",
                    "rw,allow_other,noatime,fsname=s3://bkt/some/prefix",
                    "s3://bkt/some/prefix", "/mnt/x"]
        self.assertEqual(argv[1:], expected)


if __name__ == "__main__":
    unittest.main()
