# SPDX-License-Identifier: MIT
"""The Docker volume plugin (tidefs-volume), driven over its unix socket the
way dockerd drives it: HTTP POSTs with JSON bodies to /Plugin.Activate and
/VolumeDriver.*, answers with "Err" set on failure.

Covers: activation and capabilities; create, two mounts with different IDs,
files visible at the mount point, one unmount keeping the mount, the last
unmount unmounting (and the daemon exiting), remove; plugin restarts in
between (volumes and mount counts survive; a mount that vanished while the
plugin was down is forgotten); a dead daemon's stale mount is replaced on the
next Mount; error answers (unknown volume, missing bucket, bad options and
names, remove while mounted, malformed requests, an unknown bucket at Mount).
"""

import json
import os
import signal
import socket
import subprocess
import time
import unittest

from tidefs_test import (REPO, TidefsTestCase, UnixHTTPConnection,
                         fusermount_unmount, is_mounted, kill_daemons_for,
                         pids_with_arg, tidefs_bin)

DOCKER_ACCEPT = "application/vnd.docker.plugins.v1.2+json"


def plugin_bin():
    b = os.environ.get("TIDEFS_VOLUME_BIN")
    if b:
        return b
    build = os.environ.get("TIDEFS_BUILD", os.path.join(REPO, "build"))
    return os.path.join(build, "api", "tidefs-volume")


class Plugin:
    """One tidefs-volume process on a socket in tmp, state in root."""

    def __init__(self, tmp, root):
        self.sock = os.path.join(tmp, "tidefs.sock")
        self.root = root
        self.log_path = os.path.join(tmp, "plugin.log")
        self.proc = None

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        argv = [plugin_bin(), "--socket", self.sock, "--root", self.root,
                "--tidefs", tidefs_bin(), "--log-level", "debug",
                "--mount-timeout", "60"]
        log.write(("\n=== %s\n" % " ".join(argv)).encode())
        log.flush()
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("tidefs-volume exited with %d:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("tidefs-volume did not listen on %s" % self.sock)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
            raise AssertionError("tidefs-volume ignored signal %d" % sig)
        finally:
            self.proc = None
        return rc

    def raw(self, path, body=None, method="POST"):
        """(status, parsed JSON or raw bytes) of one request, sent as dockerd
        sends it (a fresh connection each time is fine for the protocol)."""
        c = UnixHTTPConnection(self.sock, timeout=120)
        try:
            data = body if isinstance(body, (bytes, type(None))) \
                else json.dumps(body).encode()
            c.request(method, path, body=data,
                      headers={"Accept": DOCKER_ACCEPT,
                               "Content-Type": "application/json"})
            r = c.getresponse()
            payload = r.read()
            try:
                return r.status, json.loads(payload.decode())
            except ValueError:
                return r.status, payload
        finally:
            c.close()

    def call(self, endpoint, **body):
        status, reply = self.raw("/" + endpoint, body)
        if status != 200 or not isinstance(reply, dict):
            raise AssertionError("%s -> HTTP %d %r" % (endpoint, status,
                                                       reply))
        return reply

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-n:])


class VolumePluginCase(TidefsTestCase):
    TEST_TIMEOUT = 180

    def setUp(self):
        super().setUp()
        if not os.path.exists(plugin_bin()):
            self.fail("tidefs-volume not found at %s (set TIDEFS_BUILD)"
                      % plugin_bin())
        self.root = os.path.join(self.tmp, "root")
        self.plugin = Plugin(self.tmp, self.root).start()
        self.addCleanup(self._plugin_cleanup)

    def _plugin_cleanup(self):
        self._plugin_log = self.plugin.log_tail()
        if self.plugin.proc is not None:
            try:
                self.plugin.stop()
            except AssertionError:
                pass
        vols = os.path.join(self.root, "volumes")
        for name in (os.listdir(vols) if os.path.isdir(vols) else []):
            mnt = os.path.join(vols, name, "mnt")
            if is_mounted(mnt):
                r = fusermount_unmount(mnt)
                if r.returncode != 0 or is_mounted(mnt):
                    fusermount_unmount(mnt, lazy=True)
            kill_daemons_for(mnt)

    def run(self, result=None):
        self._plugin_log = ""
        before = (len(result.failures) + len(result.errors)) if result else 0
        res = super().run(result)
        r = result if result is not None else res
        if r is not None and len(r.failures) + len(r.errors) > before:
            import sys
            sys.stderr.write("\n--- plugin log\n%s\n" % self._plugin_log)
        return res

    # helpers
    def opts(self, **extra):
        o = {"bucket": self.bucket, "endpoint_url": self.moto.url,
             "region": "us-east-1", "cache_size": "128M"}
        o.update(extra)
        return o

    def mnt(self, name):
        return os.path.join(os.path.realpath(self.root), "volumes", name,
                            "mnt")

    def assertOk(self, reply):
        self.assertEqual(reply.get("Err"), "", reply)
        return reply

    def assertErr(self, reply, *words):
        err = reply.get("Err")
        self.assertTrue(err, "expected an Err, got %r" % reply)
        for w in words:
            self.assertIn(w.lower(), err.lower(), reply)
        return err

    def wait_daemon_gone(self, mnt, timeout=20):
        deadline = time.monotonic() + timeout
        while pids_with_arg(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(pids_with_arg(mnt), [],
                         "tidefs for %s still running" % mnt)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()


class Protocol(VolumePluginCase):
    def test_activate_capabilities_empty_list(self):
        p = self.plugin
        self.assertEqual(p.call("Plugin.Activate"),
                         {"Implements": ["VolumeDriver"]})
        self.assertEqual(p.call("VolumeDriver.Capabilities"),
                         {"Capabilities": {"Scope": "local"}})
        self.assertEqual(p.call("VolumeDriver.List"),
                         {"Volumes": [], "Err": ""})
        # dockerd may send no body at all, or "null", for these.
        st, r = p.raw("/Plugin.Activate", b"")
        self.assertEqual((st, r), (200, {"Implements": ["VolumeDriver"]}))
        st, r = p.raw("/VolumeDriver.List", b"null")
        self.assertEqual((st, r), (200, {"Volumes": [], "Err": ""}))

    def test_lifecycle_two_mounts_with_restarts(self):
        p = self.plugin
        self.put("data/hello.txt", b"hello tidefs")
        self.put("data/sub/deep.bin", b"\x01" * 3000)
        self.put("other/not-here", b"x")
        self.assertOk(p.call("VolumeDriver.Create", Name="vol1",
                             Opts=self.opts(prefix="data")))
        mnt = self.mnt("vol1")

        g = self.assertOk(p.call("VolumeDriver.Get", Name="vol1"))
        self.assertEqual(g["Volume"]["Name"], "vol1")
        self.assertEqual(g["Volume"]["Mountpoint"], "")
        self.assertEqual(g["Volume"]["Status"]["Mounts"], 0)
        self.assertEqual(p.call("VolumeDriver.Path", Name="vol1"),
                         {"Mountpoint": "", "Err": ""})
        self.assertFalse(is_mounted(mnt))

        r = self.assertOk(p.call("VolumeDriver.Mount", Name="vol1", ID="c1"))
        self.assertEqual(r["Mountpoint"], mnt)
        self.assertTrue(is_mounted(mnt))
        r = self.assertOk(p.call("VolumeDriver.Mount", Name="vol1", ID="c2"))
        self.assertEqual(r["Mountpoint"], mnt)
        path = self.assertOk(p.call("VolumeDriver.Path", Name="vol1"))
        self.assertEqual(path["Mountpoint"], mnt)
        self.assertEqual(sorted(n for n in os.listdir(mnt)
                                if n != ".tidefs"), ["hello.txt", "sub"])
        self.assertEqual(self.read(os.path.join(mnt, "hello.txt")),
                         b"hello tidefs")
        self.assertEqual(self.read(os.path.join(mnt, "sub", "deep.bin")),
                         b"\x01" * 3000)
        lst = self.assertOk(p.call("VolumeDriver.List"))
        self.assertEqual([(v["Name"], v["Mountpoint"])
                          for v in lst["Volumes"]], [("vol1", mnt)])

        # Restart: the volume and its two mounts survive; nothing unmounts.
        self.assertEqual(p.stop(), 0)
        self.assertTrue(is_mounted(mnt), "plugin stop unmounted the volume")
        self.assertEqual(self.read(os.path.join(mnt, "hello.txt")),
                         b"hello tidefs")
        p.start()
        g = self.assertOk(p.call("VolumeDriver.Get", Name="vol1"))
        self.assertEqual(g["Volume"]["Mountpoint"], mnt)
        self.assertEqual(g["Volume"]["Status"]["Mounts"], 2)
        self.assertEqual(g["Volume"]["Status"]["Options"]["prefix"], "data")

        self.assertOk(p.call("VolumeDriver.Unmount", Name="vol1", ID="c1"))
        self.assertTrue(is_mounted(mnt), "first of two unmounts unmounted")
        self.assertEqual(self.read(os.path.join(mnt, "hello.txt")),
                         b"hello tidefs")
        self.assertErr(p.call("VolumeDriver.Remove", Name="vol1"), "vol1",
                       "in use")

        self.assertEqual(p.stop(), 0)
        p.start()
        g = self.assertOk(p.call("VolumeDriver.Get", Name="vol1"))
        self.assertEqual(g["Volume"]["Status"]["Mounts"], 1)

        self.assertOk(p.call("VolumeDriver.Unmount", Name="vol1", ID="c2"))
        self.assertFalse(is_mounted(mnt), "last unmount left the mount")
        self.wait_daemon_gone(mnt)
        self.assertEqual(p.call("VolumeDriver.Path", Name="vol1"),
                         {"Mountpoint": "", "Err": ""})

        # Mount again: the cache is reused (a remount, no new import).
        r = self.assertOk(p.call("VolumeDriver.Mount", Name="vol1", ID="c3"))
        self.assertEqual(self.read(os.path.join(mnt, "hello.txt")),
                         b"hello tidefs")
        self.assertOk(p.call("VolumeDriver.Unmount", Name="vol1", ID="c3"))
        self.assertFalse(is_mounted(mnt))
        self.wait_daemon_gone(mnt)

        self.assertOk(p.call("VolumeDriver.Remove", Name="vol1"))
        self.assertEqual(p.call("VolumeDriver.List"),
                         {"Volumes": [], "Err": ""})
        self.assertFalse(os.path.exists(os.path.dirname(mnt)))
        with open(os.path.join(self.root, "state.json")) as f:
            self.assertEqual(json.load(f)["volumes"], {})

    def test_two_volumes_own_mounts_and_caches(self):
        p = self.plugin
        self.put("a/f", b"AAA")
        self.put("b/f", b"BBB")
        self.assertOk(p.call("VolumeDriver.Create", Name="va",
                             Opts=self.opts(prefix="a")))
        self.assertOk(p.call("VolumeDriver.Create", Name="vb",
                             Opts=self.opts(prefix="b", o="ro")))
        ma = self.assertOk(p.call("VolumeDriver.Mount", Name="va",
                                  ID="x"))["Mountpoint"]
        mb = self.assertOk(p.call("VolumeDriver.Mount", Name="vb",
                                  ID="x"))["Mountpoint"]
        self.assertNotEqual(ma, mb)
        self.assertEqual(self.read(os.path.join(ma, "f")), b"AAA")
        self.assertEqual(self.read(os.path.join(mb, "f")), b"BBB")
        ga = p.call("VolumeDriver.Get", Name="va")["Volume"]["Status"]
        gb = p.call("VolumeDriver.Get", Name="vb")["Volume"]["Status"]
        self.assertNotEqual(ga["CacheDir"], gb["CacheDir"])
        self.assertTrue(os.path.isdir(os.path.join(ga["CacheDir"], "meta")))
        names = sorted(v["Name"] for v in
                       p.call("VolumeDriver.List")["Volumes"])
        self.assertEqual(names, ["va", "vb"])
        # -o ro reached FUSE; allow_other is on by default.
        with open("/proc/self/mountinfo") as f:
            lines = {ln.split()[4]: ln for ln in f}
        self.assertIn("allow_other", lines[mb])
        self.assertIn(" ro,", lines[mb])
        self.assertOk(p.call("VolumeDriver.Unmount", Name="va", ID="x"))
        self.assertOk(p.call("VolumeDriver.Unmount", Name="vb", ID="x"))
        self.assertFalse(is_mounted(ma) or is_mounted(mb))

    def test_create_is_idempotent(self):
        p = self.plugin
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        # Same options again, and the empty Opts of `docker run -v v:/x`.
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        self.assertOk(p.call("VolumeDriver.Create", Name="v", Opts={}))
        self.assertOk(p.call("VolumeDriver.Create", Name="v"))
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=self.opts(prefix="elsewhere")),
                       "already exists")
        self.assertEqual(len(p.call("VolumeDriver.List")["Volumes"]), 1)


class Recovery(VolumePluginCase):
    def test_restart_forgets_a_mount_that_went_away(self):
        p = self.plugin
        self.put("f", b"data")
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        mnt = self.assertOk(p.call("VolumeDriver.Mount", Name="v",
                                   ID="c1"))["Mountpoint"]
        self.assertEqual(p.stop(), 0)
        self.assertEqual(fusermount_unmount(mnt).returncode, 0)
        self.wait_daemon_gone(mnt)
        p.start()
        g = self.assertOk(p.call("VolumeDriver.Get", Name="v"))["Volume"]
        self.assertEqual(g["Mountpoint"], "")
        self.assertEqual(g["Status"]["Mounts"], 0)
        self.assertOk(p.call("VolumeDriver.Mount", Name="v", ID="c2"))
        self.assertEqual(self.read(os.path.join(mnt, "f")), b"data")
        # Docker's late Unmount for the forgotten ID does no harm.
        self.assertOk(p.call("VolumeDriver.Unmount", Name="v", ID="c1"))
        self.assertTrue(is_mounted(mnt))
        self.assertOk(p.call("VolumeDriver.Unmount", Name="v", ID="c2"))
        self.assertFalse(is_mounted(mnt))

    def test_dead_daemon_is_replaced_on_next_mount(self):
        p = self.plugin
        self.put("f", b"data")
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        mnt = self.assertOk(p.call("VolumeDriver.Mount", Name="v",
                                   ID="c1"))["Mountpoint"]
        self.assertEqual(self.read(os.path.join(mnt, "f")), b"data")
        for pid in pids_with_arg(mnt):
            os.kill(pid, signal.SIGKILL)
        self.wait_daemon_gone(mnt)
        self.assertTrue(is_mounted(mnt))  # stale: ENOTCONN
        self.assertOk(p.call("VolumeDriver.Mount", Name="v", ID="c2"))
        self.assertEqual(self.read(os.path.join(mnt, "f")), b"data")
        self.assertOk(p.call("VolumeDriver.Unmount", Name="v", ID="c1"))
        self.assertOk(p.call("VolumeDriver.Unmount", Name="v", ID="c2"))
        self.assertFalse(is_mounted(mnt))

    def test_second_plugin_on_same_root_refused(self):
        other = Plugin(os.path.join(self.tmp), self.root)
        other.sock = os.path.join(self.tmp, "other.sock")
        with self.assertRaises(AssertionError) as cm:
            other.start()
        self.assertIn("in use", str(cm.exception))


class Errors(VolumePluginCase):
    def test_unknown_volume(self):
        p = self.plugin
        for ep, extra in (("Mount", {"ID": "c"}), ("Unmount", {"ID": "c"}),
                          ("Path", {}), ("Get", {}), ("Remove", {})):
            self.assertErr(p.call("VolumeDriver." + ep, Name="nope",
                                  **extra), "nope")

    def test_create_validation(self):
        p = self.plugin
        o = self.opts()
        del o["bucket"]
        self.assertErr(p.call("VolumeDriver.Create", Name="v", Opts=o),
                       "bucket")
        self.assertErr(p.call("VolumeDriver.Create", Name="v"), "bucket")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=self.opts(colour="blue")),
                       "unknown option", "colour")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=self.opts(cache_size="lots")),
                       "cache_size")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=self.opts(endpoint_url="ftp://x")),
                       "endpoint_url")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=self.opts(o="-f,allow_other")), "'o'")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts={"bucket": 7}), "bucket")
        self.assertErr(p.call("VolumeDriver.Create", Name="v",
                              Opts=["bucket"]), "Opts")
        for bad in ("../x", "a/b", "", ".hidden", "x" * 200, "sp ace"):
            self.assertErr(p.call("VolumeDriver.Create", Name=bad,
                                  Opts=self.opts()), "name")
        self.assertEqual(p.call("VolumeDriver.List")["Volumes"], [])
        self.assertEqual(os.listdir(os.path.join(self.root, "volumes")), [])

    def test_remove_while_mounted(self):
        p = self.plugin
        self.put("f", b"x")
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        mnt = self.assertOk(p.call("VolumeDriver.Mount", Name="v",
                                   ID="c"))["Mountpoint"]
        self.assertErr(p.call("VolumeDriver.Remove", Name="v"), "in use")
        self.assertTrue(is_mounted(mnt))
        self.assertEqual(self.read(os.path.join(mnt, "f")), b"x")
        self.assertEqual(len(p.call("VolumeDriver.List")["Volumes"]), 1)
        self.assertOk(p.call("VolumeDriver.Unmount", Name="v", ID="c"))
        self.assertOk(p.call("VolumeDriver.Remove", Name="v"))

    def test_mount_of_unknown_bucket_fails_cleanly(self):
        p = self.plugin
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts(bucket="no-such-bucket-here",
                                            retry_timeout="2")))
        err = self.assertErr(p.call("VolumeDriver.Mount", Name="v", ID="c"),
                             "tidefs:")
        self.assertIn("no-such-bucket-here", err)
        self.assertFalse(is_mounted(self.mnt("v")))
        g = self.assertOk(p.call("VolumeDriver.Get", Name="v"))["Volume"]
        self.assertEqual(g["Status"]["Mounts"], 0)
        self.assertOk(p.call("VolumeDriver.Remove", Name="v"))

    def test_bad_requests(self):
        p = self.plugin
        st, r = p.raw("/VolumeDriver.Create", b"{not json")
        self.assertEqual(st, 400)
        self.assertTrue(r["Err"])
        st, r = p.raw("/VolumeDriver.Create", b"[1, 2]")
        self.assertEqual(st, 400)
        st, r = p.raw("/VolumeDriver.Explode", {})
        self.assertEqual(st, 404)
        self.assertTrue(r["Err"])
        st, r = p.raw("/VolumeDriver.List", None, method="GET")
        self.assertEqual(st, 405)
        st, r = p.raw("/VolumeDriver.Create", b"x" * (2 << 20))
        self.assertEqual(st, 413)
        self.assertErr(p.call("VolumeDriver.Mount", Name="v"), "volume")
        self.assertOk(p.call("VolumeDriver.Create", Name="v",
                             Opts=self.opts()))
        self.assertErr(p.call("VolumeDriver.Mount", Name="v"), "ID")
        self.assertErr(p.call("VolumeDriver.Get"), "Name")
        # Still alive and answering.
        self.assertEqual(p.call("Plugin.Activate"),
                         {"Implements": ["VolumeDriver"]})


if __name__ == "__main__":
    unittest.main()
