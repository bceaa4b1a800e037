# SPDX-License-Identifier: MIT
"""Signals, as a container runtime sends them: `docker stop` is SIGTERM
(then SIGKILL after a grace period), Ctrl-C in `docker run -it` is SIGINT.

Contract (issue 6, "Containers"): tidefs -f ends on SIGTERM or SIGINT by
unmounting cleanly within a few seconds and exits 0; nothing stays mounted,
the cache dir's lock is released, and the next mount of the cache dir sees
everything that was written and closed before the signal, and no torn or
foreign bytes in a file that was being written. The same holds for a file
held open, a shell-like process with its cwd in the mount, and a daemonized
(no -f) tidefs.
"""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

from tidefs_test import (SETTLE_TIMEOUT, MiB, TidefsTestCase, child_read, md5,
                         pattern_bytes, pids_blocked_on, pids_with_arg,
                         wait_until)

# How long the daemon may take from the signal to its exit.
EXIT_BOUND = 10


def lock_is_free(cache_dir):
    path = os.path.join(cache_dir, "lock")
    if not os.path.exists(path):
        return True
    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


WRITER = r"""
import os, sys
root, progress, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from tidefs_test import pattern_bytes
# Files are created relative to a descriptor of the mount's root (like a
# process whose cwd is in the mount): after the daemon's lazy unmount the
# path names the directory underneath, the descriptor the dead mount.
root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
i = 0
with open(progress, "a", buffering=1) as p:
    while True:
        data = pattern_bytes(size, i)
        try:
            fd = os.open("f%05d" % i, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o644, dir_fd=root_fd)
            for off in range(0, size, 65536):
                os.pwrite(fd, data[off:off + 65536], off)
            os.fsync(fd)
            os.close(fd)
        except OSError as e:
            p.write("stop %d %s\n" % (i, e.errno)); break
        p.write("done %d\n" % i)
        i += 1
"""


class Signals(TidefsTestCase):
    TEST_TIMEOUT = 120

    def stop_with(self, m, sig):
        """Send sig to the foreground daemon; returns (exit code, seconds)."""
        t0 = time.monotonic()
        os.kill(m.proc.pid, sig)
        try:
            rc = m.proc.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            self.fail("tidefs did not exit within %ds of signal %d:\n%s"
                      % (EXIT_BOUND, sig, m.log_tail()))
        el = time.monotonic() - t0
        m.returncode = rc
        sys.stderr.write("[%s: exit %d after %.2fs] " % (
            signal.Signals(sig).name, rc, el))
        return rc, el

    def assertCleanlyGone(self, m):
        self.assertFalse(m.is_mounted(), "the mount outlived the daemon")
        self.assertTrue(lock_is_free(m.cache_dir),
                        "cache dir lock still held")
        self.assertEqual(pids_with_arg(m.mountpoint), [])

    def check_signal(self, sig):
        body = pattern_bytes(3 * MiB + 17, 1)
        self.put("d/file", body)
        m = self.mount()
        with open(m.path("d", "file"), "rb") as f:
            self.assertEqual(md5(f.read()), md5(body))
        with open(m.path("written"), "wb") as f:
            f.write(b"local bytes")
        rc, _ = self.stop_with(m, sig)
        self.assertEqual(rc, 0, "exit code %d after %s:\n%s" % (
            rc, signal.Signals(sig).name, m.log_tail()))
        self.assertCleanlyGone(m)
        self.assertIn("unmounting", m.log_text())
        # The cache dir mounts again: cached data and the new file are
        # there, and nothing is fetched again.
        m2 = self.mount(cache_dir=m.cache_dir)
        before = m2.stats()["bytes_fetched"]
        with open(m2.path("d", "file"), "rb") as f:
            self.assertEqual(md5(f.read()), md5(body))
        with open(m2.path("written"), "rb") as f:
            self.assertEqual(f.read(), b"local bytes")
        self.assertEqual(m2.stats()["bytes_fetched"], before)
        self.assertEqual(m2.unmount(), 0)

    def test_sigterm(self):
        self.check_signal(signal.SIGTERM)

    def test_sigint(self):
        self.check_signal(signal.SIGINT)

    def test_sigterm_with_open_file_and_cwd_inside(self):
        self.put("a", b"x" * 100)
        m = self.mount()
        f = open(m.path("a"), "rb")
        shell = subprocess.Popen(["sleep", "60"], cwd=m.mountpoint)
        try:
            rc, _ = self.stop_with(m, signal.SIGTERM)
            self.assertEqual(rc, 0, m.log_tail())
            self.assertCleanlyGone(m)
            with self.assertRaises(OSError):
                f.read()
        finally:
            try:
                f.close()
            except OSError:
                pass  # ENOTCONN: the mount is gone
            shell.kill()
            shell.wait()

    def test_sigterm_during_heavy_writes(self):
        m = self.mount()
        progress = os.path.join(self.tmp, "progress")
        size = 2 * MiB + 4097
        open(progress, "w").close()
        with open(os.path.join(self.tmp, "writer.err"), "wb") as err:
            w = subprocess.Popen([sys.executable, "-c", WRITER,
                                  m.mountpoint, progress, str(size),
                                  os.path.dirname(os.path.abspath(__file__))],
                                 stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 2 * SETTLE_TIMEOUT
        done = 0
        while time.monotonic() < deadline and done < 5:
            time.sleep(0.1)
            with open(progress) as p:
                done = sum(1 for ln in p if ln.startswith("done"))
        self.assertGreaterEqual(done, 5, "writer made no progress")
        rc, _ = self.stop_with(m, signal.SIGTERM)
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
            self.fail("writer hung after the daemon exited")
        self.assertEqual(rc, 0, m.log_tail())
        self.assertCleanlyGone(m)
        with open(progress) as p:
            lines = p.read().split("\n")
        completed = [int(ln.split()[1]) for ln in lines
                     if ln.startswith("done")]
        self.assertEqual(completed, list(range(len(completed))))
        m2 = self.mount(cache_dir=m.cache_dir)
        for i in completed:
            path = m2.path("f%05d" % i)
            with open(path, "rb") as f:
                self.assertEqual(md5(f.read()), md5(pattern_bytes(size, i)),
                                 "f%05d lost or changed" % i)
            self.assertIn(m2.state("f%05d" % i), ("new", "dirty"))
        # The file being written: a prefix of its bytes, never others.
        torn = m2.path("f%05d" % len(completed))
        if os.path.exists(torn):
            with open(torn, "rb") as f:
                data = f.read()
            self.assertLessEqual(len(data), size)
            want = pattern_bytes(size, len(completed))[:len(data)]
            self.assertTrue(data == want or data.strip(b"\0") == b"" or
                            all(data[k] in (0, want[k])
                                for k in range(len(data))),
                            "torn file holds foreign bytes")
        self.assertEqual(m2.unmount(), 0)

    def test_sigterm_background_daemon(self):
        self.put("a", b"y")
        m = self.mount(foreground=False)
        self.assertTrue(m.is_mounted())
        pids = m.daemon_pids()
        self.assertEqual(len(pids), 1, pids)
        t0 = time.monotonic()
        os.kill(pids[0], signal.SIGTERM)
        while os.path.exists("/proc/%d" % pids[0]) and \
                time.monotonic() - t0 < EXIT_BOUND:
            time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % pids[0]),
                         "daemon still running %ds after SIGTERM"
                         % EXIT_BOUND)
        self.assertCleanlyGone(m)


class SignalsWithStalledS3(Signals):
    """SIGTERM while a read waits on an endpoint that accepts connections
    and never answers (moto stopped with SIGSTOP)."""
    OWN_MOTO_PER_TEST = True

    # Only this test here; the inherited ones run in Signals.
    test_sigterm = test_sigint = None
    test_sigterm_with_open_file_and_cwd_inside = None
    test_sigterm_during_heavy_writes = None
    test_sigterm_background_daemon = None

    def stalled_read_then_sigterm(self, retry_timeout):
        self.put("big", pattern_bytes(4 * MiB, 3))
        m = self.mount(retry_timeout=retry_timeout)
        # The lookup completes the file's metadata (HeadObject) while the
        # endpoint still answers: the stall is to hit the data fetch.
        self.assertEqual(os.stat(m.path("big")).st_size, 4 * MiB)
        self.moto.freeze()
        res = {}

        def reader():
            try:
                res["r"] = child_read(m.path("big"), 0, 1 << 20, timeout=60)
            except Exception as e:  # e.g. two results: read, then close
                res["exc"] = e
        t = threading.Thread(target=reader)
        t.start()
        # Only once the reader waits for the daemon is the fetch in flight
        # (starting the child alone can take seconds on a loaded machine).
        self.assertTrue(wait_until(lambda: pids_blocked_on(m.path("big")),
                                   SETTLE_TIMEOUT),
                        "the reader never blocked on the stalled read")
        try:
            rc, el = self.stop_with(m, signal.SIGTERM)
        finally:
            self.moto.thaw()
            t.join(65)
        self.assertEqual(rc, 0, m.log_tail())
        self.assertCleanlyGone(m)
        r = res.get("r")
        self.assertIsNotNone(r, res.get("exc"))
        self.assertFalse(r[2], "the reader hung after the daemon exited")
        self.assertFalse(r[0]["ok"], "a read got data with S3 stalled")
        return el

    def test_sigterm_during_stalled_fetch_short_retry(self):
        """With --retry-timeout 5 the exit comes within the bound."""
        self.stalled_read_then_sigterm(5)

    def test_sigterm_during_stalled_fetch_default_retry(self):
        """With the default --retry-timeout (20 s) the exit must still come
        within EXIT_BOUND, inside Docker's 10 s stop grace period.

        Fails today (daemon gap, issue 6 "SIGTERM ... within a bounded
        time"): shutdown waits for the in-flight range GET to give up after
        --retry-timeout instead of cancelling it. Do not weaken this test;
        fix the daemon."""
        self.stalled_read_then_sigterm(None)

if __name__ == "__main__":
    unittest.main()
