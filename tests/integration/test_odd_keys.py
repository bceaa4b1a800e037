# SPDX-License-Identifier: MIT
"""Keys that cannot be POSIX names are skipped with a warning each; every
other key (UTF-8, spaces, URL-special characters, 255-byte names) shows up
with the right content; nothing crashes."""

import os
import stat
import unittest

from tidefs_test import TidefsTestCase

ODD = ["a//b", "./x", "../x", "dir/./y", "dir/../z", "/lead", "e/..",
       "dir/.", "x" * 256, "long/" + "y" * 256 + "/f"]
GOOD = {
    "ok.txt": b"ok",
    "dir/ok2": b"ok2",
    "z" * 255: b"255",
    "h\u00e9llo w\u00f6rld.txt": b"utf8",
    "a+b c%d?e&f=g#h": b"special",
    "spaces in/name with space": b"sp",
    "sub/\u00fcn\u00ef/\u0192.txt": b"nested-utf8",
    "semi;colon,comma'quote\"dq": b"q",
    "star*tilde~bang!": b"s",
}


class OddKeys(TidefsTestCase):
    TEST_TIMEOUT = 90

    def test_odd_keys_skipped_others_visible(self):
        for k in ODD:
            self.put(k, b"odd:" + k.encode())
        for k, v in GOOD.items():
            self.put(k, v)
        m = self.mount(log_level="warn")
        self.assertIsNone(m.proc.poll(), "daemon died")
        # Every good key is there with its content.
        for k, v in GOOD.items():
            with self.subTest(key=k):
                with open(m.path(*k.split("/")), "rb") as f:
                    self.assertEqual(f.read(), v)
        # Nothing of an odd key leaks in as a file; at most empty
        # directories may exist for the components before the bad one.
        root = set(os.listdir(m.mountpoint)) - {".tidefs"}
        good_top = {k.split("/")[0] for k in GOOD}
        for extra in root - good_top:
            self.assertIn(extra, ("a", "e", "long"),
                          "unexpected entry %r at the root" % extra)
            p = m.path(extra)
            self.assertTrue(stat.S_ISDIR(os.lstat(p).st_mode), extra)
            self.assertEqual(os.listdir(p), [], "%s is not empty" % extra)
        self.assertEqual(sorted(os.listdir(m.path("dir"))), ["ok2"])
        for bad in ("x", "lead", "b", "y", "z", "x" * 256):
            self.assertNotIn(bad, root)
        # One warning per skipped key, naming it.
        log = m.log_text()
        for k in ODD:
            with self.subTest(warning=k):
                needle = k if len(k) < 200 else k[:40]
                self.assertTrue(any(needle in ln for ln in log.splitlines()),
                                "no log line names skipped key %r" % k)
        # A later listing is stable and the daemon is alive.
        self.assertEqual(set(os.listdir(m.mountpoint)) - {".tidefs"}, root)
        self.assertIsNone(m.proc.poll())
        self.assertEqual(m.unmount(), 0)

    def test_file_and_directory_with_the_same_name(self):
        self.put("d", b"file-d")
        self.put("d/f", b"file-d-f")
        self.put("d2/", b"")
        self.put("d2", b"file-d2")
        self.put("keep", b"keep")
        m = self.mount(log_level="warn")
        with open(m.path("keep"), "rb") as f:
            self.assertEqual(f.read(), b"keep")
        st = os.lstat(m.path("d"))
        if stat.S_ISDIR(st.st_mode):
            self.assertEqual(os.listdir(m.path("d")), ["f"])
            with open(m.path("d", "f"), "rb") as f:
                self.assertEqual(f.read(), b"file-d-f")
        else:
            self.assertTrue(stat.S_ISREG(st.st_mode))
            with open(m.path("d"), "rb") as f:
                self.assertEqual(f.read(), b"file-d")
        st = os.lstat(m.path("d2"))
        if stat.S_ISREG(st.st_mode):
            with open(m.path("d2"), "rb") as f:
                self.assertEqual(f.read(), b"file-d2")
        else:
            self.assertTrue(stat.S_ISDIR(st.st_mode))
        root = sorted(n for n in os.listdir(m.mountpoint) if n != ".tidefs")
        self.assertEqual(root, ["d", "d2", "keep"])
        self.assertTrue(any("d/f" in ln or "'d'" in ln or '"d"' in ln
                            for ln in m.log_text().splitlines()),
                        "no warning about the d / d/f conflict")

    def test_bucket_with_only_odd_keys_mounts_empty(self):
        for k in ("a//b", "../up", "/"):
            self.put(k, b"x")
        m = self.mount()
        for n in os.listdir(m.mountpoint):
            if n == ".tidefs":
                continue
            self.assertTrue(os.path.isdir(m.path(n)), n)
            self.assertEqual(os.listdir(m.path(n)), [])
        self.assertEqual(m.unmount(), 0)

    def test_empty_bucket(self):
        m = self.mount()
        self.assertEqual([n for n in os.listdir(m.mountpoint)
                          if n != ".tidefs"], [])
        st = m.stats()
        self.assertEqual(sum(st["states"].values()), 0)
        self.assertEqual(m.unmount(), 0)


if __name__ == "__main__":
    unittest.main()
