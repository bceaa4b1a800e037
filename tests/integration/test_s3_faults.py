# SPDX-License-Identifier: MIT
"""S3 faults injected by a proxy between tidefs and moto_server: 5xx,
throttling and connection resets are retried within --retry-timeout; 4xx
are not retried; a failing endpoint never makes a file "lost"; import
survives transient HEAD/LIST errors."""

import errno
import http.client
import os
import socket
import struct
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tidefs_test import (MiB, MountError, TidefsTestCase, child_read,
                         file_md5, md5,
                         posix_meta, random_bytes)

ERR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
           '<Message>injected by the test proxy</Message>'
           '<RequestId>0</RequestId></Error>')


class Rule:
    """Match method (and optionally only ranged GETs, a key substring or a
    query substring); act count times (None: forever)."""

    def __init__(self, method, action, count=None, ranged=None, key=None,
                 query=None):
        self.method, self.action, self.count = method, action, count
        self.ranged, self.key, self.query = ranged, key, query
        self.hits = 0

    def matches(self, method, path, headers):
        if self.method != method:
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        p, _, q = path.partition("?")
        if self.ranged is not None and (("Range" in headers) !=
                                        self.ranged):
            return False
        if self.key is not None and self.key not in p:
            return False
        if self.query is not None and self.query not in q:
            return False
        return True


class FaultProxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.rules = []
        self.lock = threading.Lock()
        self.requests = []  # (time, method, path, range, outcome)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                rule = None
                with proxy.lock:
                    for r in proxy.rules:
                        if r.matches(self.command, self.path, self.headers):
                            r.hits += 1
                            rule = r
                            break
                    proxy.requests.append((time.monotonic(), self.command,
                                           self.path,
                                           self.headers.get("Range"),
                                           rule.action if rule else "pass"))
                if rule is not None:
                    kind = rule.action[0]
                    if kind == "status":
                        code, s3code = rule.action[1], rule.action[2]
                        data = (ERR_XML % s3code).encode()
                        self.send_response(code)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length",
                                         "0" if self.command == "HEAD"
                                         else str(len(data)))
                        self.end_headers()
                        if self.command != "HEAD":
                            self.wfile.write(data)
                        return
                    if kind == "reset":
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
                        self.close_connection = True
                        self.connection.close()
                        return
                    if kind == "delay":
                        time.sleep(rule.action[1])
                    if kind == "hold":  # until the test sets the event
                        rule.action[1].wait(120)
                self.forward(body)

            def forward(self, body):
                c = http.client.HTTPConnection("127.0.0.1",
                                               proxy.upstream_port,
                                               timeout=60)
                try:
                    hdrs = {k: v for k, v in self.headers.items()}
                    c.request(self.command, self.path, body=body or None,
                              headers=hdrs)
                    r = c.getresponse()
                    data = r.read()
                    self.send_response(r.status, r.reason)
                    for k, v in r.getheaders():
                        if k.lower() in ("transfer-encoding", "connection",
                                         "content-length", "date",
                                         "server"):
                            continue
                        self.send_header(k, v)
                    if self.command == "HEAD":
                        self.send_header("Content-Length",
                                         r.getheader("Content-Length", "0"))
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    c.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def add(self, *a, **kw):
        r = Rule(*a, **kw)
        with self.lock:
            self.rules.append(r)
        return r

    def clear(self):
        with self.lock:
            self.rules = []

    def gets(self, key):
        with self.lock:
            return [r for r in self.requests
                    if r[1] == "GET" and r[2].split("?")[0].endswith(key)
                    and r[3]]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Faults(TidefsTestCase):
    TEST_TIMEOUT = 90

    def setUp(self):
        super().setUp()
        self.proxy = FaultProxy(self.moto.port)
        self.addCleanup(self.proxy.stop)

    def mount_via_proxy(self, **kw):
        # Mount.endpoint is what --endpoint-url gets.
        m = self.mount(start=False, retry_timeout=2, **kw)
        m.endpoint = self.proxy.url
        m.start()
        return m

    def test_5xx_and_throttling_are_retried(self):
        body = random_bytes(2 * MiB + 1)
        self.put("f.bin", body)
        m = self.mount_via_proxy()
        r1 = self.proxy.add("GET", ("status", 503, "SlowDown"), count=2,
                            ranged=True)
        r2 = self.proxy.add("GET", ("status", 500, "InternalError"),
                            count=1, ranged=True)
        r3 = self.proxy.add("GET", ("status", 429, "TooManyRequests"),
                            count=1, ranged=True)
        self.assertEqual(file_md5(m.path("f.bin")), md5(body))
        self.assertEqual((r1.hits, r2.hits, r3.hits), (2, 1, 1))
        self.assertEqual(m.state("f.bin"), "archived")

    def test_connection_resets_are_retried(self):
        body = random_bytes(MiB + 17)
        self.put("r.bin", body)
        m = self.mount_via_proxy()
        rule = self.proxy.add("GET", ("reset",), count=2, ranged=True)
        self.assertEqual(file_md5(m.path("r.bin")), md5(body))
        self.assertEqual(rule.hits, 2)

    def test_persistent_5xx_gives_eio_within_budget(self):
        body = random_bytes(MiB + 1)
        self.put("p.bin", body)
        m = self.mount_via_proxy()
        self.proxy.add("GET", ("status", 500, "InternalError"), ranged=True)
        r, el, to = child_read(m.path("p.bin"), timeout=40)
        self.assertFalse(to, "read hung under persistent 500s")
        self.assertEqual(r.get("errno"), errno.EIO, r)
        self.assertLess(el, 15, "EIO after %.1fs with --retry-timeout 2"
                        % el)
        self.assertGreaterEqual(len(self.proxy.gets("p.bin")), 2,
                                "a 500 was not retried")
        self.assertEqual(m.state("p.bin"), "released",
                         "a failing endpoint must not make a file lost")
        # Recovery: the same file reads once the endpoint behaves.
        self.proxy.clear()
        r, el, to = child_read(m.path("p.bin"), timeout=40)
        self.assertFalse(to)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["md5"], md5(body))

    def test_4xx_is_not_retried(self):
        self.put("d.bin", random_bytes(MiB + 1))
        m = self.mount_via_proxy()
        self.proxy.add("GET", ("status", 403, "AccessDenied"), ranged=True)
        r, el, to = child_read(m.path("d.bin"), 0, 4096, timeout=40)
        self.assertFalse(to)
        self.assertEqual(r.get("errno"), errno.EIO, r)
        # The attempt count below is the real check; the time bound only
        # catches a retry loop (generous for loaded CI machines).
        self.assertLess(el, 8, "a 403 took %.1fs: retried?" % el)
        per_range = {}
        for req in self.proxy.gets("d.bin"):
            per_range[req[3]] = per_range.get(req[3], 0) + 1
        self.assertTrue(per_range, "no ranged GET reached the proxy")
        self.assertLessEqual(max(per_range.values()), 2,
                             "403 retried: %r" % per_range)
        self.assertNotEqual(m.state("d.bin"), "lost")

    def test_bad_credentials_fail_startup(self):
        """moto accepts any key, so the proxy plays a real S3 refusing
        them: one clear line, non-zero exit, nothing mounted."""
        self.put("x", b"x")
        for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            with self.subTest(code=code):
                self.proxy.clear()
                for method in ("GET", "HEAD"):
                    self.proxy.add(method, ("status", 403, code))
                m = self.mount(start=False, retry_timeout=2,
                               foreground=False, log_level=None)
                m.endpoint = self.proxy.url
                t0 = time.monotonic()
                with self.assertRaises(MountError):
                    m.start(timeout=45)
                el = time.monotonic() - t0
                if os.environ.get("TIDEFS_IT_TIMING"):
                    print("%s: %.1fs %r" % (code, el, m.start_stderr))
                self.assertLess(el, 15,
                                "a 403 at startup was retried")
                self.assertNotEqual(m.returncode, 0)
                lines = [ln for ln in m.start_stderr.splitlines()
                         if ln.strip()]
                self.assertEqual(len(lines), 1, m.start_stderr)
                self.assertTrue(lines[0].startswith("tidefs: "), lines[0])
                low = lines[0].lower()
                self.assertTrue(any(w in low for w in (
                    "credential", "access", "signature", "denied",
                    "403", code.lower())), lines[0])
                self.assertFalse(m.is_mounted())

    def test_requests_are_served_while_many_reads_wait_on_s3(self):
        """The session loop keeps only a few workers reading /dev/fuse and
        wakes or starts another when a request leaves none reading: with
        24 reads stuck on S3 at once (each holds a worker), listing,
        stat, create, write and read of a cached file still answer, and
        the stuck reads finish correctly once S3 answers."""
        bodies = {"h%02d.bin" % i: random_bytes(MiB + i) for i in range(24)}
        for k, b in bodies.items():
            self.put(k, b)
        m = self.mount(start=False, retry_timeout=60)
        m.endpoint = self.proxy.url
        m.start()
        release = threading.Event()
        self.addCleanup(release.set)
        held = self.proxy.add("GET", ("hold", release), ranged=True)
        got = {}

        def read(name):
            try:
                got[name] = file_md5(m.path(name))
            except OSError as e:
                got[name] = e

        readers = [threading.Thread(target=read, args=(k,), daemon=True)
                   for k in sorted(bodies)]
        for t in readers:
            t.start()
        deadline = time.monotonic() + 30
        while held.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(held.hits, 0)
        time.sleep(1)
        self.assertEqual(sum(t.is_alive() for t in readers), len(readers))
        t0 = time.monotonic()
        self.assertLessEqual(set(bodies), set(os.listdir(m.path())))
        self.assertEqual(os.stat(m.path("h03.bin")).st_size, MiB + 3)
        with open(m.path("new.txt"), "wb") as f:
            f.write(b"written while reads wait")
        with open(m.path("new.txt"), "rb") as f:
            self.assertEqual(f.read(), b"written while reads wait")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(sum(t.is_alive() for t in readers), len(readers))
        release.set()
        for t in readers:
            t.join(60)
        self.assertEqual(got, {k: md5(b) for k, b in bodies.items()})

    def test_import_survives_transient_head_and_list_errors(self):
        meta = posix_meta(0o100640, 321, 654, None, 1500000000 * 10 ** 9)
        for i in range(5):
            self.put("imp/f%d" % i, b"%d" % i, meta)
        heads = self.proxy.add("HEAD", ("status", 503, "SlowDown"), count=3)
        lists = self.proxy.add("GET", ("status", 500, "InternalError"),
                               count=1, query="list-type=2")
        m = self.mount_via_proxy()
        self.assertEqual(lists.hits, 1, "the LIST error was not met")
        # The HEADs come after the mount is live (lazy metadata); the
        # listing below waits for them.
        self.assertEqual(sorted(os.listdir(m.path("imp"))),
                         ["f%d" % i for i in range(5)])
        self.assertEqual(heads.hits, 3, "the HEAD errors were not all met")
        for i in range(5):
            st = os.lstat(m.path("imp", "f%d" % i))
            self.assertEqual(st.st_mode, 0o100640)
            self.assertEqual((st.st_uid, st.st_gid), (321, 654))
            self.assertEqual(st.st_mtime_ns, 1500000000 * 10 ** 9)
        with open(m.path("imp", "f3"), "rb") as f:
            self.assertEqual(f.read(), b"3")


if __name__ == "__main__":
    unittest.main()
