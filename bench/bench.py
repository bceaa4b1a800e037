#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tidefs benchmark harness.

Runs the read-path workloads of issue 2 and the write-path workloads of
issue 3 on the native disk, s3fs-fuse, rclone mount and tidefs against one
local s3rver endpoint in one run, and writes bench/results.json and
bench/RESULTS.md.  See bench/README.md.

Must run as root (drop_caches, FUSE mounts).  Not part of ctest.
"""

import argparse
import atexit
import ctypes
import datetime
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MiB = 1 << 20
GiB = 1 << 30
BUCKET = "bench"
AK = SK = "S3RVER"  # s3rver's built-in account
SYSTEMS = ["native", "s3fs", "rclone", "tidefs"]

# --------------------------------------------------------------------------
# logging


LOGF = None
T_START = time.monotonic()


def log(msg):
    line = "[%7.1fs] %s" % (time.monotonic() - T_START, msg)
    print(line, file=sys.stderr, flush=True)
    if LOGF:
        LOGF.write(line + "\n")
        LOGF.flush()


# --------------------------------------------------------------------------
# cleanup registry: everything we start or mount is undone on exit


class Registry:
    def __init__(self):
        self.mounts = []  # mount points
        self.disks = []  # the loop-mounted bench disk (umount, not fusermount3)
        self.procs = []  # (pid, pgid or None, name)
        self.pidfile = None
        self.lock = threading.Lock()

    def _write(self):
        if not self.pidfile:
            return
        with open(self.pidfile, "w") as f:
            for pid, _pg, name in self.procs:
                f.write("%d %s\n" % (pid, name))
            for m in self.mounts:
                f.write("mount %s\n" % m)

    def add_proc(self, pid, name, pgid=None):
        with self.lock:
            self.procs.append((pid, pgid, name))
            self._write()

    def drop_proc(self, pid):
        with self.lock:
            self.procs = [p for p in self.procs if p[0] != pid]
            self._write()

    def add_mount(self, mnt):
        with self.lock:
            if mnt not in self.mounts:
                self.mounts.append(mnt)
            self._write()

    def drop_mount(self, mnt):
        with self.lock:
            self.mounts = [m for m in self.mounts if m != mnt]
            self._write()

    def cleanup(self):
        for m in list(self.mounts):
            if is_mounted(m):
                subprocess.run(["fusermount3", "-u", m], capture_output=True, timeout=30)
            if is_mounted(m):
                subprocess.run(["fusermount3", "-uz", m], capture_output=True, timeout=30)
            self.drop_mount(m)
        for pid, pgid, name in list(self.procs):
            stop_pid(pid, pgid)
            self.drop_proc(pid)
        # the bench disk last: the FUSE daemons above kept their caches on it
        for m in list(self.disks):
            if is_mounted(m):
                subprocess.run(["umount", m], capture_output=True, timeout=120)
            if is_mounted(m):
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
            self.disks.remove(m)


REG = Registry()


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st != "Z"
    except OSError:
        return False


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def stop_pid(pid, pgid=None, grace=10.0):
    """SIGTERM, then SIGKILL, one process (or the process group we created)."""
    def sig(s):
        try:
            if pgid:
                os.killpg(pgid, s)
            else:
                os.kill(pid, s)
        except ProcessLookupError:
            pass
    if not pid_alive(pid):
        reap(pid)
        return
    sig(signal.SIGTERM)
    t = time.monotonic()
    while time.monotonic() - t < grace:
        reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    sig(signal.SIGKILL)
    time.sleep(0.2)
    reap(pid)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# helpers


def is_mounted(path):
    """Checks /proc/self/mountinfo; never touches the (maybe hung) mount."""
    path = os.path.realpath(path)
    esc = path.replace("\\", "\\134").replace(" ", "\\040")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == esc:
                return True
    return False


def wait_mounted(path, timeout, proc=None):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if is_mounted(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def fresh_dir(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == real or mp.startswith(real + "/"):
                raise RuntimeError("refusing to wipe %s: %s is mounted" % (path, mp))
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def vm_hwm_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cmd_out(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return "unavailable (%s)" % e


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def repeat(fn, reps, budget_s):
    """Run fn() up to reps times; stop early (keeping >= 1 run) once the
    runs so far took more than budget_s seconds in total."""
    out = []
    t = time.monotonic()
    for i in range(reps):
        out.append(fn(i))
        if time.monotonic() - t > budget_s and i + 1 < reps:
            log("    (stopping after %d run(s): over the %ds budget)" % (i + 1, budget_s))
            break
    return out


# --------------------------------------------------------------------------
# child-process workers: anything that touches a FUSE mount runs in a child
# with a timeout, so a hung daemon cannot hang the harness.


def run_worker(args, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "_worker"] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        raise RuntimeError(err)
    return json.loads(r.stdout)


def libc_syncfs(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def worker_main(argv):
    op = argv[0]
    if op == "small":  # DIR N SIZE: create+write+close N files, then syncfs
        d, n, size = argv[1], int(argv[2]), int(argv[3])
        os.makedirs(d)
        data = os.urandom(size)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        t0 = time.perf_counter()
        for i in range(n):
            fd = os.open(os.path.join(d, "f%05d" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)
        libc_syncfs(dfd)
        dt = time.perf_counter() - t0
        os.close(dfd)
        print(json.dumps({"seconds": dt, "files_per_s": n / dt}))
    elif op == "bigwrite":  # FILE MIB: write MIB MiB in 1 MiB writes, fsync, close
        path, mib = argv[1], int(argv[2])
        buf = os.urandom(MiB)
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(mib):
            os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        dt = time.perf_counter() - t0
        print(json.dumps({"seconds": dt, "mib_per_s": mib / dt}))
    elif op == "mktree":  # ROOT NDIRS FILES_PER_DIR (untimed setup, 4 threads)
        root, nd, nf = argv[1], int(argv[2]), int(argv[3])
        t0 = time.perf_counter()
        os.makedirs(root)

        def mkdir_fill(i):
            d = os.path.join(root, "d%03d" % i)
            os.mkdir(d)
            for j in range(nf):
                os.close(os.open(os.path.join(d, "f%04d" % j), os.O_WRONLY | os.O_CREAT, 0o644))
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(mkdir_fill, range(nd)))
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        libc_syncfs(dfd)
        os.close(dfd)
        dt = time.perf_counter() - t0
        print(json.dumps({"seconds": dt, "entries": nd * (nf + 1)}))
    elif op == "rename":  # SRC DST
        t0 = time.perf_counter()
        os.rename(argv[1], argv[2])
        dt = time.perf_counter() - t0
        print(json.dumps({"seconds": dt}))
    elif op == "check":  # FILE REFERENCE: compare size and 16 sampled MiB blocks
        a, b = argv[1], argv[2]
        sa, sb = os.stat(a).st_size, os.stat(b).st_size
        ok = sa == sb
        rnd = random.Random(42)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            offs = [0, max(0, sb - MiB)] + [rnd.randrange(0, max(1, sb - MiB)) for _ in range(14)]
            for o in offs:
                fa.seek(o)
                fb.seek(o)
                if fa.read(MiB) != fb.read(MiB):
                    ok = False
        print(json.dumps({"ok": ok}))
    elif op == "probe_write":  # DIR: can we create a directory here?
        try:
            os.mkdir(os.path.join(argv[1], ".bench-probe"))
            os.rmdir(os.path.join(argv[1], ".bench-probe"))
            print(json.dumps({"writable": True}))
        except OSError as e:
            print(json.dumps({"writable": False, "errno": e.errno, "error": e.strerror}))
    elif op == "statmeta":  # FILE: mode/uid/gid/mtime of one file
        st = os.stat(argv[1])
        print(json.dumps({"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                          "mtime_ns": st.st_mtime_ns}))
    else:
        raise SystemExit("unknown worker op " + op)


# --------------------------------------------------------------------------
# s3rver endpoint


class Endpoint:
    def __init__(self, workdir):
        self.dir = fresh_dir(os.path.join(workdir, "s3rver"))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None

    def start(self):
        js = os.path.join(HERE, "node_modules", "s3rver", "bin", "s3rver.js")
        if not os.path.exists(js):
            raise SystemExit("bench: s3rver missing; run: npm ci --prefix bench")
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.logf = open(os.path.join(os.path.dirname(self.dir), "s3rver.log"), "w")
        self.proc = subprocess.Popen(
            ["node", js, "-d", os.path.join(self.dir, "data"), "-a", "127.0.0.1",
             "-p", str(self.port), "-s"],
            env=env, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        REG.add_proc(self.proc.pid, "s3rver", pgid=self.proc.pid)
        t = time.monotonic()
        while time.monotonic() - t < 30:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit("bench: s3rver exited; see s3rver.log")
                time.sleep(0.1)
        self.s3 = boto3_client(self.url)
        self.s3.create_bucket(Bucket=BUCKET)
        log("s3rver listening on %s (data in %s)" % (self.url, self.dir))

    def cpu(self):
        """CPU seconds s3rver (one node process, all its threads) has used."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc:
            stop_pid(self.proc.pid, self.proc.pid)
            REG.drop_proc(self.proc.pid)
            self.proc = None


def boto3_client(url):
    import boto3
    import botocore.config
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=AK, aws_secret_access_key=SK,
                        region_name="us-east-1",
                        config=botocore.config.Config(max_pool_connections=32,
                                                      s3={"addressing_style": "path"}))


def put_many(ep, keys, body, headers, threads=16):
    """Fast bulk PUT over keep-alive connections (s3rver accepts unsigned
    requests); boto3 manages ~190 PUT/s here, this ~600."""
    tl = threading.local()

    def put(key):
        c = getattr(tl, "c", None)
        if c is None:
            c = tl.c = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=60)
        c.request("PUT", "/%s/%s" % (BUCKET, key), body=body, headers=headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("PUT %s: HTTP %d" % (key, r.status))

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(put, keys))


def meta_headers(i):
    return {"Content-Type": "application/octet-stream",
            "x-amz-meta-file-permissions": "0100604",
            "x-amz-meta-file-owner": "1234",
            "x-amz-meta-file-group": "2345",
            "x-amz-meta-file-mtime": "%dns" % (1600000000000000000 + i * 1000000007),
            "x-amz-meta-file-atime": "%dns" % (1600000000000000000 + i * 1000000007)}


def populate(ep, cfg, data_file):
    from boto3.s3.transfer import TransferConfig
    t = time.monotonic()
    ep.s3.upload_file(data_file, BUCKET, "big/data.bin",
                      Config=TransferConfig(multipart_threshold=64 * MiB,
                                            multipart_chunksize=64 * MiB, max_concurrency=4))
    log("uploaded big/data.bin (%d MiB) in %.1fs" % (cfg.big_mib, time.monotonic() - t))
    t = time.monotonic()
    tl = threading.local()
    body = b"m" * cfg.meta_size

    def put(i):
        c = getattr(tl, "c", None)
        if c is None:
            c = tl.c = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=60)
        c.request("PUT", "/%s/meta/f%05d" % (BUCKET, i), body=body, headers=meta_headers(i))
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("PUT meta/f%05d: HTTP %d" % (i, r.status))

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(put, range(cfg.meta_n)))
    log("uploaded %d objects with x-amz-meta-file-* under meta/ in %.1fs"
        % (cfg.meta_n, time.monotonic() - t))


# --------------------------------------------------------------------------
# systems under test


class System:
    name = "?"
    lazy_mount = True  # no metadata import at mount

    def __init__(self, h):
        self.h = h
        self.mnt = None
        self.pid = None
        self.proc = None

    def root(self):
        return self.mnt

    def wipe_cache(self):
        """Empty this system's cache dir now (a later mount(fresh=False)
        starts on it); native has none."""
        if self.name != "native":
            fresh_dir(os.path.join(self.h.cache_root, self.name))

    def unmount(self):
        if self.mnt is None:
            return
        m = self.mnt
        for i in range(20):
            if not is_mounted(m):
                break
            r = subprocess.run(["fusermount3", "-u", m], capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                break
            time.sleep(0.25)
        if is_mounted(m):
            log("  %s: unmount busy; killing daemon and lazy-unmounting" % self.name)
            if self.pid:
                stop_pid(self.pid, grace=3)
            subprocess.run(["fusermount3", "-uz", m], capture_output=True, timeout=30)
        REG.drop_mount(m)
        if self.pid:
            t = time.monotonic()
            while pid_alive(self.pid) and time.monotonic() - t < 15:
                reap(self.pid)
                time.sleep(0.05)
            if pid_alive(self.pid):
                log("  %s: daemon %d still alive after unmount; stopping it" % (self.name, self.pid))
                stop_pid(self.pid)
            reap(self.pid)
            REG.drop_proc(self.pid)
        self.mnt = self.pid = self.proc = None

    def wait_idle(self):
        pass

    def rss(self):
        return vm_hwm_mib(self.pid) if self.pid else None


class Native(System):
    name = "native"

    def mount(self, prefix, fresh=True):
        self.mnt = os.path.join(self.h.native_root, prefix)
        os.makedirs(self.mnt, exist_ok=True)
        return 0.0

    def unmount(self):
        self.mnt = None


class FuseDaemon(System):
    def _start(self, argv, env, prefix, timeout=120):
        self.mnt = fresh_dir(os.path.join(self.h.workdir, "mnt", self.name))
        logp = os.path.join(self.h.workdir, "logs", "%s-%s-%d.log" % (self.name, prefix, self.h.seq()))
        self.logf = open(logp, "w")
        REG.add_mount(self.mnt)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        REG.add_proc(self.pid, self.name)
        ok = wait_mounted(self.mnt, timeout, self.proc)
        dt = time.perf_counter() - t0
        if not ok:
            self.unmount()
            raise RuntimeError("%s did not mount (see %s): %s" % (self.name, logp, tail(logp)))
        return dt


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


class S3fs(FuseDaemon):
    name = "s3fs"

    def mount(self, prefix, fresh=True):
        cache = os.path.join(self.h.cache_root, self.name)
        if fresh:
            fresh_dir(cache)
        pw = os.path.join(self.h.workdir, "s3fs.passwd")
        with open(pw, "w") as f:
            f.write("%s:%s\n" % (AK, SK))
        os.chmod(pw, 0o600)
        mnt = os.path.join(self.h.workdir, "mnt", self.name)
        argv = ["s3fs", "%s:/%s" % (BUCKET, prefix), mnt, "-f",
                "-o", "use_cache=%s,url=%s,use_path_request_style,passwd_file=%s,endpoint=us-east-1"
                % (cache, self.h.ep.url, pw)]
        return self._start(argv, dict(os.environ), prefix)


class Rclone(FuseDaemon):
    name = "rclone"

    def mount(self, prefix, fresh=True):
        cache = os.path.join(self.h.cache_root, self.name)
        if fresh:
            fresh_dir(cache)
        conf = os.path.join(self.h.workdir, "rclone.conf")
        with open(conf, "w") as f:
            f.write("[bench]\ntype = s3\nprovider = Other\naccess_key_id = %s\n"
                    "secret_access_key = %s\nendpoint = %s\nregion = us-east-1\n"
                    "force_path_style = true\n" % (AK, SK, self.h.ep.url))
        self.rc_port = free_port()
        mnt = os.path.join(self.h.workdir, "mnt", self.name)
        env = dict(os.environ, RCLONE_CONFIG=conf)
        # An AWS_CA_BUNDLE in the environment makes rclone's S3 backend fail
        # ("unsupported transport"); the endpoint is plain http anyway.
        env.pop("AWS_CA_BUNDLE", None)
        argv = ["rclone", "mount", "bench:%s/%s" % (BUCKET, prefix), mnt,
                "--vfs-cache-mode", "full", "--cache-dir", cache,
                "--rc", "--rc-addr", "127.0.0.1:%d" % self.rc_port, "--rc-no-auth"]
        return self._start(argv, env, prefix)

    def vfs_stats(self):
        req = urllib.request.Request("http://127.0.0.1:%d/vfs/stats" % self.rc_port, data=b"{}",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def wait_idle(self, timeout=600):
        """rclone uploads after close (--vfs-write-back 5s); let it finish so
        the uploads do not run into the next measurement."""
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            try:
                dc = self.vfs_stats()["diskCache"]
                if dc.get("uploadsInProgress", 0) + dc.get("uploadsQueued", 0) == 0:
                    return time.monotonic() - t
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.5)
        log("  rclone: uploads still pending after %ds" % timeout)
        return None


class Tidefs(FuseDaemon):
    name = "tidefs"
    lazy_mount = False
    # The first mount is live once the listing is stored; HeadObject
    # metadata follows in the background (.tidefs/stats metadata_pending).
    lazy_metadata = True
    mount_t0 = None

    def wait_metadata(self, timeout=900):
        """Seconds from the start of the mount command until
        .tidefs/stats says no metadata is pending (polled every 20 ms)."""
        path = os.path.join(self.mnt, ".tidefs", "stats")
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with open(path) as f:
                if json.load(f).get("metadata_pending", 0) == 0:
                    return time.perf_counter() - self.mount_t0
            time.sleep(0.02)
        raise RuntimeError("tidefs: metadata still pending after %d s" % timeout)

    def mount(self, prefix, fresh=True):
        cache = os.path.join(self.h.cache_root, self.name)
        if fresh:
            fresh_dir(cache)
        mnt = fresh_dir(os.path.join(self.h.workdir, "mnt", self.name))
        self.mnt = mnt
        logp = os.path.join(self.h.workdir, "logs", "%s-%s-%d.log" % (self.name, prefix, self.h.seq()))
        env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        argv = [self.h.tidefs_bin, "s3://%s/%s" % (BUCKET, prefix), mnt, "--cache-dir", cache,
                "--cache-size", self.h.cfg.tidefs_cache_size, "--endpoint-url", self.h.ep.url,
                "--region", "us-east-1"]
        REG.add_mount(mnt)
        # Without -f the command returns once the mount is live (on a first
        # mount: once the listing is stored; HEADs follow, see
        # wait_metadata): that is the time until live.
        with open(logp, "w") as lf:
            t0 = time.perf_counter()
            self.mount_t0 = t0
            try:
                r = subprocess.run(argv, env=env, stdout=lf, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=600)
                rc = r.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            dt = time.perf_counter() - t0
        self.pid = self.find_daemon(mnt)
        if self.pid:
            REG.add_proc(self.pid, self.name)
        if rc != 0 or not is_mounted(mnt):
            self.unmount()
            raise RuntimeError("tidefs did not mount (exit %s): %s" % (rc, tail(logp)))
        return dt

    @staticmethod
    def find_daemon(mnt):
        """The daemonized tidefs process serving mnt (by its command line)."""
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            except OSError:
                continue
            if args and os.path.basename(args[0]) == "tidefs" and mnt in args:
                return int(p)
        return None


# --------------------------------------------------------------------------
# workloads


def dd_read(path, timeout=900):
    r = subprocess.run(["dd", "if=" + path, "of=/dev/null", "bs=1M"], capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("dd: " + r.stderr.strip().splitlines()[-1])
    m = re.search(r"^(\d+) bytes .* copied, ([0-9.]+) s", r.stderr, re.M)
    nbytes, secs = int(m.group(1)), float(m.group(2))
    return {"bytes": nbytes, "seconds": secs, "mib_per_s": nbytes / MiB / secs}


def fio_randread(path, size, runtime, timeout=600):
    r = subprocess.run(["fio", "--name=randread", "--filename=" + path, "--readonly",
                        "--rw=randread", "--bs=4k", "--ioengine=psync", "--numjobs=1",
                        "--size=%d" % size, "--runtime=%d" % runtime, "--direct=0",
                        "--invalidate=1", "--output-format=json"],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("fio: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    j = json.loads(r.stdout[r.stdout.index("{"):])
    rd = j["jobs"][0]["read"]
    return {"iops": rd["iops"], "ios": rd["total_ios"], "runtime_ms": rd["runtime"],
            "lat_us_mean": rd["clat_ns"]["mean"] / 1000.0}


def timed_ls(path, expect, timeout=900):
    t0 = time.perf_counter()
    r = subprocess.run(["ls", "-l", path], capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("ls: " + r.stderr.strip()[:200])
    n = len(r.stdout.splitlines()) - 1  # "total N"
    if n != expect:
        raise RuntimeError("ls -l listed %d entries, expected %d" % (n, expect))
    return {"seconds": dt, "entries": n}


class LoadMonitor(threading.Thread):
    """Samples the 1-minute load average: the machine may be shared."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop.wait(5)

    def summary(self):
        xs = self.samples or [os.getloadavg()[0]]
        return {"mean": round(statistics.mean(xs), 2), "max": round(max(xs), 2),
                "samples": len(xs)}


def wait_quiet(limit, timeout):
    """Wait (up to timeout s) until the 1-min load average is below limit."""
    if timeout <= 0:
        return
    t = time.monotonic()
    la = os.getloadavg()[0]
    if la < limit:
        return
    log("load average %.2f >= %.2f: waiting up to %ds for a quieter machine" % (la, limit, timeout))
    while time.monotonic() - t < timeout:
        time.sleep(5)
        la = os.getloadavg()[0]
        if la < limit:
            log("load average %.2f: starting" % la)
            return
    log("load average still %.2f after %ds: running anyway (results are noisier)" % (la, timeout))


class Harness:
    def __init__(self, cfg):
        self.cfg = cfg
        self.workdir = cfg.workdir
        self._seq = 0
        self.results = {}
        self.notes = {}
        self.ref_runs = []

    def seq(self):
        self._seq += 1
        return self._seq

    def rec(self, system, workload, runs, key, unit, note=None):
        vals = [r.get(key) if isinstance(r, dict) else r for r in runs]
        ent = {"unit": unit, "runs": runs, "values": vals, "median": median(vals)}
        if note:
            ent["note"] = note
        self.results.setdefault(system, {})[workload] = ent
        log("  %-8s %-14s median %s %s  (runs: %s)" % (
            system, workload, fmt(ent["median"]), unit,
            ", ".join(fmt(v) for v in vals)))

    def na(self, system, workload, why):
        self.results.setdefault(system, {})[workload] = {"na": why}
        log("  %-8s %-14s n/a (%s)" % (system, workload, why))

    # -- setup --------------------------------------------------------------
    def setup_disk(self):
        """Where the caches and the native dir live.  --disk image (the
        default): a fresh ext4 file system made with mkfs's defaults (so
        with a journal) in a sparse image under the workdir, loop-mounted
        for this run and removed after it.  --disk workdir: the workdir's
        own file system as it is (this VM's root ext4 has no journal; see
        bench/README.md)."""
        cfg = self.cfg
        if cfg.disk == "workdir":
            self.disk_root = self.workdir
            self.disk_desc = "the workdir's file system as it is"
        else:
            img = os.path.join(self.workdir, "disk.img")
            mnt = os.path.join(self.workdir, "disk")
            if is_mounted(mnt):
                raise RuntimeError("%s is still mounted (an earlier run?): umount it" % mnt)
            if os.path.exists(img):
                os.unlink(img)
            st = os.statvfs(self.workdir)
            free = st.f_bavail * st.f_frsize
            size = min(cfg.disk_gib * GiB, free * 8 // 10)
            if size < cfg.disk_min_gib * GiB:
                raise RuntimeError("bench disk: %.1f GiB free under %s, need %d GiB for the image "
                                   "(or --disk workdir)" % (free / GiB, self.workdir,
                                                            cfg.disk_min_gib * 10 // 8))
            with open(img, "wb") as f:
                f.truncate(size)
            t = time.monotonic()
            # inode tables and journal written now, not by ext4lazyinit
            # in the background during the measurements
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img],
                           check=True, capture_output=True, timeout=600)
            os.makedirs(mnt, exist_ok=True)
            # direct I/O: the loop device reads and writes the image
            # without a second page cache, as a disk would
            dev = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", img], check=True,
                                 capture_output=True, text=True, timeout=60).stdout.strip()
            REG.disks.append(mnt)
            try:
                subprocess.run(["mount", dev, mnt], check=True, capture_output=True, timeout=120)
            finally:
                # detached now if the mount failed, else at its unmount
                subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)
            # the image's blocks are allocated as they are written; it goes
            # away with the loop device
            os.unlink(img)
            self.disk_root = mnt
            self.disk_desc = "a fresh %d GiB ext4 (mkfs defaults, journaled) on a loop device (direct I/O) " \
                "over an image on the workdir's file system, made in %.1f s" % (size // GiB, time.monotonic() - t)
            log("bench disk: %s" % self.disk_desc)
        self.cache_root = os.path.join(self.disk_root, "cache")
        fresh_dir(self.cache_root)

    def setup_native(self):
        cfg = self.cfg
        self.native_root = os.path.join(self.disk_root, "native")
        os.makedirs(self.native_root, exist_ok=True)
        big = os.path.join(self.native_root, "big", "data.bin")
        os.makedirs(os.path.dirname(big), exist_ok=True)
        if not (os.path.exists(big) and os.path.getsize(big) == cfg.big_mib * MiB):
            t = time.monotonic()
            with open(big, "wb") as f:
                for _ in range(cfg.big_mib):
                    f.write(os.urandom(MiB))
            log("generated %s (%d MiB random) in %.1fs" % (big, cfg.big_mib, time.monotonic() - t))
        self.data_file = big
        meta = os.path.join(self.native_root, "meta")
        if not (os.path.isdir(meta) and len(os.listdir(meta)) == cfg.meta_n):
            if os.path.exists(meta):
                shutil.rmtree(meta)
            os.makedirs(meta)
            body = b"m" * cfg.meta_size
            for i in range(cfg.meta_n):
                with open(os.path.join(meta, "f%05d" % i), "wb") as f:
                    f.write(body)
            log("created %d native files in %s" % (cfg.meta_n, meta))
        fresh_dir(os.path.join(self.native_root, "w-native"))

    # -- reference: parallel range GETs from the endpoint ---------------------
    def reference(self, rep=0):
        """curl range GETs straight from the endpoint; one rep per read rep."""
        size = self.cfg.big_mib * MiB
        url = "%s/%s/big/data.bin" % (self.ep.url, BUCKET)

        def gets(n, drop):
            if drop:
                drop_caches()
            part = size // n
            c0 = self.ep.cpu()
            t0 = time.perf_counter()
            procs = []
            for i in range(n):
                a = i * part
                b = size - 1 if i == n - 1 else a + part - 1
                procs.append(subprocess.Popen(
                    ["curl", "-sS", "-f", "-o", "/dev/null", "--aws-sigv4", "aws:amz:us-east-1:s3",
                     "--user", "%s:%s" % (AK, SK), "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                     "-r", "%d-%d" % (a, b), "-w", "%{size_download}", url],
                    stdout=subprocess.PIPE, text=True))
            got = 0
            for p in procs:
                out, _ = p.communicate(timeout=600)
                if p.returncode != 0:
                    raise RuntimeError("curl range GET failed (exit %d)" % p.returncode)
                got += int(out)
            dt = time.perf_counter() - t0
            if got != size:
                raise RuntimeError("range GETs returned %d bytes, expected %d" % (got, size))
            return {"seconds": dt, "mib_per_s": size / MiB / dt,
                    "endpoint_cores": (self.ep.cpu() - c0) / dt}

        self.ref_runs.append({"8cold": gets(8, True), "8hot": gets(8, False), "1cold": gets(1, True)})
        r = self.ref_runs[-1]
        log("  endpoint reference rep %d: 8 GETs cold %.0f, hot %.0f, 1 GET cold %.0f MiB/s" % (
            len(self.ref_runs), r["8cold"]["mib_per_s"], r["8hot"]["mib_per_s"], r["1cold"]["mib_per_s"]))

    def meta_reference(self, rep=0):
        """What the endpoint itself needs for an import of meta/: a paginated
        ListObjectsV2 and one HeadObject per key, 32 in parallel (Python,
        unsigned requests).  Once per run: a floor for any first mount."""
        if rep != 0:
            return
        c0 = self.ep.cpu()
        t0 = time.perf_counter()
        keys = []
        for page in self.ep.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="meta/"):
            keys += [o["Key"] for o in page.get("Contents", [])]
        t_list = time.perf_counter() - t0
        c_list = self.ep.cpu() - c0
        tl = threading.local()

        def head(key):
            c = getattr(tl, "c", None)
            if c is None:
                c = tl.c = http.client.HTTPConnection("127.0.0.1", self.ep.port, timeout=60)
            c.request("HEAD", "/%s/%s" % (BUCKET, key))
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError("HEAD %s: HTTP %d" % (key, r.status))

        c0 = self.ep.cpu()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(32) as ex:
            list(ex.map(head, keys))
        t_head = time.perf_counter() - t0
        c_head = self.ep.cpu() - c0
        self.rec("endpoint", "ref_list", [{"seconds": t_list, "keys": len(keys), "endpoint_cpu_s": c_list}], "seconds", "s",
                 "ListObjectsV2 of meta/ (boto3, 1,000 keys a page)")
        self.rec("endpoint", "ref_head", [{"seconds": t_head, "per_s": len(keys) / t_head,
                                              "endpoint_cpu_s": c_head}], "seconds", "s",
                 "HeadObject of every key under meta/, 32 in parallel")

    def reference_finish(self):
        if not self.ref_runs:
            return
        col = lambda k: [r[k] for r in self.ref_runs]  # noqa: E731
        self.rec("endpoint", "ref_8get_cold", col("8cold"), "mib_per_s", "MiB/s",
                 "8 parallel range GETs, page cache dropped first")
        self.rec("endpoint", "ref_8get_hot", col("8hot"), "mib_per_s", "MiB/s",
                 "8 parallel range GETs, s3rver's files in page cache")
        self.rec("endpoint", "ref_1get_cold", col("1cold"), "mib_per_s", "MiB/s",
                 "1 GET of the whole object, page cache dropped first")

    # The read and metadata workloads run rep by rep, each rep over all
    # systems in a rotating order, so that drift in the machine's load (it
    # may be shared) hits every system alike.
    def interleaved(self, systems, session, finish, label, pre=None):
        runs = {s.name: [] for s in systems}
        failed = {}
        for rep in range(self.cfg.reps):
            if pre:
                pre(rep)
            k = rep % len(systems) if systems else 0
            for s in systems[k:] + systems[:k]:
                if s.name in failed:
                    continue
                try:
                    runs[s.name].append(session(s, rep))
                except Exception as e:  # noqa: BLE001
                    s.unmount()
                    failed[s.name] = str(e)
                    log("  %s %s workloads FAILED: %s" % (s.name, label, e))
                    self.results.setdefault(s.name, {})["%s_error" % label] = {"error": str(e)}
                    self.notes.setdefault(s.name, []).append("%s workloads failed: %s" % (label, e))
        for s in systems:
            if runs[s.name]:
                finish(s, runs[s.name])

    def read_session(self, s, rep):
        cfg = self.cfg
        r = {}
        s.mount("big")
        try:
            f = os.path.join(s.root(), "data.bin")
            drop_caches()
            c0 = self.ep.cpu()
            r["cold"] = dd_read(f)
            # How busy the endpoint was: near 1 core or more, it set the pace.
            r["cold"]["endpoint_cores"] = (self.ep.cpu() - c0) / r["cold"]["seconds"]
            # The cold read just wrote 1 GiB into the tool's cache; reads
            # right after a large write run at a third of the disk's speed
            # on this VM (the host is still writing it out, unseen from
            # here). Give every system the same pause before the warm read.
            drop_caches()
            time.sleep(cfg.settle)
            r["warm"] = dd_read(f)
            r["hot"] = dd_read(f)
            if rep == 0:
                ok = run_worker(["check", f, self.data_file], 600)["ok"]
                self.notes.setdefault(s.name, []).append(
                    "content check of data.bin: %s" % ("ok" if ok else "MISMATCH"))
                if not ok:
                    log("  %s: CONTENT MISMATCH on data.bin" % s.name)
            drop_caches()
            r["randread"] = fio_randread(f, cfg.big_mib * MiB, cfg.fio_runtime)
            r["rss"] = s.rss()
        finally:
            s.unmount()
        log("  %-8s read rep %d: cold %.0f warm %.0f hot %.0f MiB/s, %.0f IOPS" % (
            s.name, rep + 1, r["cold"]["mib_per_s"], r["warm"]["mib_per_s"],
            r["hot"]["mib_per_s"], r["randread"]["iops"]))
        return r

    def read_finish(self, s, runs):
        col = lambda k: [r[k] for r in runs]  # noqa: E731
        self.rec(s.name, "cold_read", col("cold"), "mib_per_s", "MiB/s")
        self.rec(s.name, "warm_read", col("warm"), "mib_per_s", "MiB/s")
        self.rec(s.name, "hot_read", col("hot"), "mib_per_s", "MiB/s")
        self.rec(s.name, "randread_4k", col("randread"), "iops", "IOPS")
        if s.name != "native":
            self.rec(s.name, "rss_read", col("rss"), None, "MiB")

    def meta_session(self, s, rep):
        lazy_meta = getattr(s, "lazy_metadata", False)
        c0 = self.ep.cpu()
        r = {"mount": s.mount("meta")}
        if s.name == "native":
            drop_caches()
        try:
            if lazy_meta:
                # Untouched until every object's metadata is in: the
                # time a first mount takes "with metadata".
                r["complete"] = s.wait_metadata()
                r["complete_endpoint_cpu"] = self.ep.cpu() - c0
            r["ls"] = timed_ls(s.root(), self.cfg.meta_n)
            if rep == 0:
                r["stat"] = run_worker(["statmeta", os.path.join(s.root(), "f00001")], 120)
            r["rss"] = s.rss()
        finally:
            s.unmount()
        extra = ""
        if lazy_meta:
            # A second fresh first mount: ls -l as soon as it is live, so
            # the listing waits for (and hurries) the HEADs still to come.
            s.mount("meta")
            try:
                r["ls_live"] = timed_ls(s.root(), self.cfg.meta_n)
            finally:
                s.unmount()
            extra = " (metadata complete %.2f s); ls -l right after live %.3f s" % (
                r["complete"], r["ls_live"]["seconds"])
        log("  %-8s meta rep %d: mount %.2f s, ls -l %.3f s%s" % (
            s.name, rep + 1, r["mount"], r["ls"]["seconds"], extra))
        return r

    def meta_finish(self, s, runs):
        self.rec(s.name, "ls_l", [r["ls"] for r in runs], "seconds", "s",
                 "page cache dropped before" if s.name == "native" else "first ls -l after a fresh mount")
        if s.name != "native":
            self.rec(s.name, "first_mount", [{"seconds": r["mount"]} for r in runs], "seconds", "s",
                     None if not s.lazy_mount else "lazy mount: no metadata import, time until mounted")
        if getattr(s, "lazy_metadata", False):
            self.rec(s.name, "first_mount_complete",
                     [{"seconds": r["complete"], "endpoint_cpu_s": r["complete_endpoint_cpu"]}
                      for r in runs],
                     "seconds", "s", "until .tidefs/stats metadata_pending is 0; endpoint_cpu_s: "
                     "CPU seconds s3rver used from the mount command until then")
            self.rec(s.name, "ls_l_live", [r["ls_live"] for r in runs], "seconds", "s",
                     "first ls -l started as soon as a fresh first mount is live")
            self.rec(s.name, "rss_meta", [r["rss"] for r in runs], None, "MiB")
        meta_seen = runs[0].get("stat")
        if meta_seen:
            want_mode, want_mtime = "0o100604", 1600000000000000000 + 1 * 1000000007
            ok = (meta_seen["mode"] == want_mode and meta_seen["uid"] == 1234
                  and meta_seen["gid"] == 2345 and meta_seen["mtime_ns"] == want_mtime)
            self.results[s.name]["ls_l"]["stat_f00001"] = meta_seen
            if s.name != "native":
                self.notes.setdefault(s.name, []).append(
                    "x-amz-meta-file-* applied (mode/uid/gid/mtime of meta/f00001): %s (saw %s uid %d gid %d)"
                    % ("yes" if ok else "no", meta_seen["mode"], meta_seen["uid"], meta_seen["gid"]))

    # -- write path (issue 3) -------------------------------------------------
    def write_workloads(self, s):
        cfg = self.cfg
        prefix = "w-" + s.name
        peer = s.name in ("s3fs", "rclone")
        tree_dirs, tree_files = (cfg.peer_tree_dirs, cfg.peer_tree_files) if peer else (cfg.tree_dirs, cfg.tree_files)
        tree_n = tree_dirs * (tree_files + 1)
        if s.name != "native":
            # s3fs needs the prefix to exist; a marker object does for all.
            self.ep.s3.put_object(Bucket=BUCKET, Key=prefix + "/", Body=b"")
        if peer:
            # Creating the tree through s3fs (~35 files/s) would take hours;
            # put it into the bucket directly (untimed) instead.
            t = time.monotonic()
            keys = ["%s/tree-a/" % prefix]
            for i in range(tree_dirs):
                keys.append("%s/tree-a/d%03d/" % (prefix, i))
                keys += ["%s/tree-a/d%03d/f%04d" % (prefix, i, j) for j in range(tree_files)]
            put_many(self.ep, keys, b"", {"Content-Type": "application/octet-stream"})
            log("  %s: put a %d-entry tree under %s/tree-a in %.1fs" % (s.name, tree_n, prefix, time.monotonic() - t))
        s.mount(prefix, fresh=False)  # main() wiped the cache before settling
        try:
            probe = run_worker(["probe_write", s.root()], 120)
            if not probe["writable"]:
                why = "EROFS" if probe["errno"] == 30 else probe["error"]
                for w in ("small_files", "big_write", "rename_tree"):
                    self.na(s.name, w, why)
                return

            def small(i):
                r = run_worker(["small", os.path.join(s.root(), "small-%d" % i), cfg.small_n, 4096], 1800)
                s.wait_idle()
                return r
            self.rec(s.name, "small_files", repeat(small, cfg.reps, 120), "files_per_s", "files/s",
                     "%d x 4 KiB: create+write+close each, then syncfs" % cfg.small_n)

            def big(i):
                p = os.path.join(s.root(), "big-%d.bin" % i)
                r = run_worker(["bigwrite", p, cfg.write_mib], 1800)
                s.wait_idle()
                os.unlink(p) if s.name == "native" else run_unlink(p)
                s.wait_idle()
                return r
            self.rec(s.name, "big_write", repeat(big, cfg.reps, 120), "mib_per_s", "MiB/s",
                     "%d MiB in 1 MiB writes + fsync + close" % cfg.write_mib)

            if not peer:
                mk = run_worker(["mktree", os.path.join(s.root(), "tree-a"), tree_dirs, tree_files], 1200)
                log("  %s: created a %d-entry tree in %.1fs (untimed setup)" % (s.name, tree_n, mk["seconds"]))
                s.wait_idle()
            names = ["tree-a", "tree-b"]

            def ren(i):
                a, b = names[i % 2], names[(i + 1) % 2]
                r = run_worker(["rename", os.path.join(s.root(), a), os.path.join(s.root(), b)], 3600)
                s.wait_idle()
                return r
            self.rec(s.name, "rename_tree", repeat(ren, cfg.reps, 120), "seconds", "s",
                     "rename of a directory with %d descendants" % tree_n)
            self.results[s.name]["rename_tree"]["descendants"] = tree_n
            self.results[s.name]["rss_write"] = {"unit": "MiB", "median": s.rss(), "values": [s.rss()]}
        finally:
            s.unmount()


def run_unlink(p):
    subprocess.run(["rm", "-f", p], timeout=600, check=True)


# --------------------------------------------------------------------------
# report


def fmt(v, digits=None):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    a = abs(v)
    if digits is None and a < 0.1:
        return "%.2g" % v
    if digits is None:
        digits = 0 if a >= 100 else (1 if a >= 10 else (2 if a >= 0.1 else 3))
    return "{:,.{d}f}".format(v, d=digits)


ROWS = [
    # key, label, higher_is_better
    ("cold_read", "cold sequential read, MiB/s", True),
    ("warm_read", "warm read, page cache dropped, MiB/s", True),
    ("hot_read", "hot re-read, page cache kept, MiB/s", True),
    ("randread_4k", "random 4 KiB reads, warm, 1 job, IOPS", True),
    ("ls_l", "`ls -l` of {meta_n:,} files after mount, s", False),
    ("ls_l_live", "`ls -l` of {meta_n:,} files as soon as a first mount is live, s", False),
    ("first_mount", "first mount of a {meta_n:,}-object prefix: until live, s", False),
    ("first_mount_complete", "first mount of a {meta_n:,}-object prefix with metadata (complete), s", False),
    ("rss", "daemon peak RSS (VmHWM, max over sessions), MiB", False),
    ("small_files", "{small_n:,} × 4 KiB files write + sync, files/s", True),
    ("big_write", "{write_mib:,} MiB write with fsync, MiB/s", True),
    ("rename_tree", "rename of a directory with {tree_n:,} descendants, s", False),
]


def targets(res, cfg):
    """tidefs targets of issues 2 and 3: {row: (text, met or None)}."""
    def med(sysn, w):
        return cell(res, sysn, w)[1]
    t = med("tidefs", "cold_read")
    s3 = med("s3fs", "cold_read")
    ref = med("endpoint", "ref_8get_cold")
    out = {}
    if t is not None and s3 and ref:
        out["cold_read"] = ("≥ 2× s3fs and ≥ 0.7× 8 range GETs (%s)" % fmt(ref), t >= 2 * s3 and t >= 0.7 * ref)
    else:
        out["cold_read"] = ("≥ 2× s3fs, ≥ 0.7× 8 range GETs" + (" (%s)" % fmt(ref) if ref else ""), None)
    nat = lambda w: med("native", w)  # noqa: E731

    def rel(w, f, text, higher=True):
        v, n = med("tidefs", w), nat(w)
        if v is None or not n:
            return (text, None)
        return (text, v >= f * n if higher else v <= f * n)

    def absol(w, lim, text, lt=False):
        v = med("tidefs", w)
        if v is None:
            return (text, None)
        return (text, v < lim if lt else v <= lim)
    out["warm_read"] = rel("warm_read", 0.8, "≥ 0.8× native")
    out["hot_read"] = rel("hot_read", 0.5, "≥ 0.5× native")
    out["randread_4k"] = rel("randread_4k", 1.0, "≥ native")
    out["ls_l"] = absol("ls_l", 0.3, "≤ 0.3")
    out["first_mount"] = absol("first_mount", 10, "≤ 10")
    out["first_mount_complete"] = absol("first_mount_complete", 10, "≤ 10")
    out["rss"] = absol("rss", 40, "≤ 40")
    v = med("tidefs", "small_files")
    out["small_files"] = ("≥ 5,000", None if v is None else v >= 5000)
    out["big_write"] = rel("big_write", 0.8, "≥ 0.8× native")
    out["rename_tree"] = absol("rename_tree", 1.0, "< 1", lt=True)
    return out


REPS = [3]


def cell(res, sysn, key):
    e = res.get(sysn)
    if e is None:
        return "not run", None
    if key == "rss":
        if sysn == "native":
            return "–", None
        vals = []
        for w in ("rss_read", "rss_meta", "rss_write"):
            vals += [v for v in e.get(w, {}).get("values", []) if v is not None]
        if not vals:
            return "–", None
        lo, hi = min(vals), max(vals)
        return ("%s" % fmt(hi) if fmt(lo) == fmt(hi) else "%s (%s–%s)" % (fmt(hi), fmt(lo), fmt(hi))), hi
    w = e.get(key)
    if w is None:
        if sysn == "native" and key == "first_mount":
            return "–", None
        return "–", None
    if "na" in w:
        return "n/a (%s)" % w["na"], None
    v = w["median"]
    txt = fmt(v)
    if key == "first_mount" and sysn in ("s3fs", "rclone"):
        txt += " (lazy)"
    if key == "rename_tree" and sysn in ("s3fs", "rclone"):
        txt += " (%s desc.)" % "{:,}".format(w.get("descendants", 0))
    n = len([x for x in w.get("values", []) if x is not None])
    if n and n < REPS[0]:
        txt += " [n=%d]" % n
    return txt, v


def endpoint_load(res):
    """Report lines on how busy s3rver was while it served the workloads
    that depend on it (its CPU seconds over the wall time)."""
    def med_of(ent, key):
        vals = [r.get(key) for r in (ent or {}).get("runs", []) if isinstance(r, dict)]
        vals = [v for v in vals if v is not None]
        return median(vals) if vals else None

    parts = []
    for name in ("tidefs", "s3fs", "rclone"):
        v = med_of(res.get(name, {}).get("cold_read"), "endpoint_cores")
        if v is not None:
            parts.append("%s %.2f" % (name, v))
    v = med_of(res.get("endpoint", {}).get("ref_8get_cold"), "endpoint_cores")
    if v is not None:
        parts.append("curl's 8 range GETs %.2f" % v)
    L = []
    if parts:
        L.append("Endpoint load during the cold reads (s3rver's CPU seconds ÷ wall seconds, median; "
                 "s3rver is one node process whose JavaScript runs on one thread, so near 1 it "
                 "sets the pace): %s.\n" % ", ".join(parts))
    fm = res.get("tidefs", {}).get("first_mount_complete")
    cpu, secs = med_of(fm, "endpoint_cpu_s"), med_of(fm, "seconds")
    ep = res.get("endpoint", {})
    rl, rh = med_of(ep.get("ref_list"), "endpoint_cpu_s"), med_of(ep.get("ref_head"), "endpoint_cpu_s")
    if cpu is not None and secs:
        ref = ""
        if rl is not None and rh is not None:
            ref = " (the reference listing used %.1f s of its CPU, the reference HEADs %.1f s)" % (rl, rh)
        L.append("Endpoint load during tidefs's first mount of `meta/`: s3rver used %.1f CPU seconds "
                 "in the %.1f s until the metadata was complete (%.2f cores)%s.\n" % (
                     cpu, secs, cpu / secs, ref))
    return L


def write_report(h, meta, path_md, path_json):
    res = h.results
    cfg = h.cfg
    REPS[0] = cfg.reps
    with open(path_json, "w") as f:
        json.dump({"meta": meta, "config": vars(cfg), "results": res, "notes": h.notes}, f, indent=2,
                  default=str)
    ctx = {"meta_n": cfg.meta_n, "small_n": cfg.small_n, "write_mib": cfg.write_mib,
           "tree_n": cfg.tree_dirs * (cfg.tree_files + 1)}
    tg = targets(res, cfg)
    L = []
    L.append("# tidefs benchmark results%s\n" % (" (QUICK smoke run — not representative)" if cfg.quick else ""))
    L.append("Generated by `bench/run.sh%s` on %s. Medians of %d run(s) per cell unless marked "
             "`[n=…]`. Raw numbers: `bench/results.json`; what each workload does: "
             "`bench/README.md`.\n" % (" --quick" if cfg.quick else "", meta["date"], cfg.reps))
    L.append("Endpoint: s3rver %s on 127.0.0.1 (a node process on the same machine). Object: %s MiB "
             "of random data.\n" % (meta["versions"]["s3rver"], "{:,}".format(cfg.big_mib)))
    hdr = "| workload | native | s3fs | rclone | tidefs | tidefs/s3fs | tidefs/rclone | tidefs/native | tidefs target | met |"
    L.append(hdr)
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for key, label, _hib in ROWS:
        cells = {}
        vals = {}
        for sname in SYSTEMS:
            cells[sname], vals[sname] = cell(res, sname, key)
        ratios = []
        for peer in ("s3fs", "rclone", "native"):
            t, p = vals["tidefs"], vals[peer]
            comparable = not (key == "rename_tree" and peer != "native") and key not in (
                "first_mount", "first_mount_complete", "ls_l_live")
            ratios.append("%.2f" % (t / p) if (t is not None and p and comparable) else "–")
        ttext, met = tg.get(key, ("", None))
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label.format(**ctx), cells["native"], cells["s3fs"], cells["rclone"], cells["tidefs"],
            ratios[0], ratios[1], ratios[2], ttext, {True: "yes", False: "**no**", None: "–"}[met]))
    L.append("")
    ep = res.get("endpoint", {})
    L.append("Endpoint reference (curl, SigV4, range GETs of the %s MiB object): "
             "8 parallel, page cache dropped: **%s MiB/s**; 8 parallel, s3rver's files cached: %s MiB/s; "
             "1 GET, page cache dropped: %s MiB/s.\n" % (
                 "{:,}".format(cfg.big_mib),
                 fmt(ep.get("ref_8get_cold", {}).get("median")),
                 fmt(ep.get("ref_8get_hot", {}).get("median")),
                 fmt(ep.get("ref_1get_cold", {}).get("median"))))
    if "ref_list" in ep:
        L.append("Endpoint metadata reference (once per run): ListObjectsV2 of the %s keys under "
                 "`meta/`: %s s; HeadObject of every key, 32 in parallel: %s s (%s HEAD/s). "
                 "Their sum is roughly the floor for a first mount that lists and HEADs every "
                 "object against this endpoint.\n" % (
                     "{:,}".format(cfg.meta_n), fmt(ep["ref_list"]["median"]),
                     fmt(ep["ref_head"]["median"]), fmt(ep["ref_head"]["runs"][0]["per_s"])))
    L += endpoint_load(res)
    L.append("Ratios are tidefs ÷ peer (for MiB/s, IOPS and files/s higher is better; for seconds "
             "and MiB lower is better). Ratios against s3fs/rclone are omitted for rows where "
             "the peers measured something different (lazy mount; smaller rename tree).\n")
    L.append("Notes:\n")
    la = meta["machine"].get("load average (1 min) during run", "")
    m = re.match(r"mean ([0-9.]+)", la)
    if m and float(m.group(1)) > 1.0:
        L.append("- **The machine was busy during this run** (1-min load average %s on %d CPUs: "
                 "other jobs were running). Absolute numbers are lower and noisier than on an idle "
                 "machine; the ratios between systems measured in the same run are the more "
                 "meaningful figures." % (la, os.cpu_count()))
    L.append("- s3fs and rclone mount lazily: their \"first mount\" is only the time until the "
             "mount point is live; their metadata cost shows up in `ls -l` (HeadObject per file).")
    L.append("- tidefs's first mount is live once the listing is stored; the HeadObject metadata "
             "(x-amz-meta-file-*) of every object follows in the background, and no file is shown "
             "before its metadata is in. \"With metadata (complete)\" is the time until "
             "`.tidefs/stats` reports `metadata_pending` 0. Its `ls -l after mount` row runs once "
             "the metadata is complete (the steady state); `as soon as a first mount is live` "
             "runs on a second fresh first mount right after it is live, so it includes waiting "
             "for the HEADs of the listed files.")
    L.append("- Rename for s3fs/rclone uses a %s-descendant tree put into the bucket directly "
             "(S3 has no rename: both copy and delete every object, so 100,000 would take hours "
             "and creating them through s3fs at ~35 files/s as well)." % "{:,}".format(
                 cfg.peer_tree_dirs * (cfg.peer_tree_files + 1)))
    L.append("- Cells marked `[n=1]` stopped repeating because the runs exceeded the per-workload "
             "time budget (120 s).")
    L.append("- Native `ls -l` runs after `drop_caches` (cold dentries/inodes), like a fresh mount.")
    L.append("- The warm read starts %d s after the cold read's data was synced (every system alike): on this VM, "
             "reads right after a large write run at a fraction of the disk's speed while the host writes "
             "the data out." % cfg.settle)
    L.append("- Caches and the native dir: %s. All four systems write to this one file system; "
             "the endpoint (s3rver) keeps its objects on the workdir's file system." % h.disk_desc)
    if cfg.settle_s:
        L.append("- Each system's write workloads start %d s after its cache dir was emptied and the disk "
                 "synced (every system alike): this VM's ext4 has no journal, and for 60 s after inodes "
                 "are freed (6 minutes while their inode table block is dirty, as it is again as soon as "
                 "new files are created next to them) it scans past them when it allocates new ones, "
                 "which makes creating files after removing a cache dir or a peer's renames (which delete "
                 "thousands of the endpoint's files) several times slower. The pause covers only the "
                 "first part: small-file rates still depend on what was deleted before." % cfg.settle_s)
    L.append("- Random 4 KiB reads: the caching systems read a cache file written by this session's cold read, "
             "native a file written at setup. The VM's host may still hold the recent file in its own cache, "
             "so their IOPS can exceed what the disk gives (a controlled run here: tidefs 19.4k IOPS vs "
             "native 20k with both files on disk).")
    for sname in SYSTEMS:
        for n in h.notes.get(sname, []):
            L.append("- %s: %s" % (sname, n))
    for sname in SYSTEMS:
        for w, e in res.get(sname, {}).items():
            if isinstance(e, dict) and "error" in e:
                L.append("- %s %s failed: %s" % (sname, w, e["error"]))
    L.append("")
    L.append("## Machine and versions\n")
    for k, v in meta["machine"].items():
        L.append("- %s: %s" % (k, v))
    for k, v in meta["versions"].items():
        L.append("- %s: %s" % (k, v))
    L.append("- duration of this run: %.0f s" % meta.get("duration_s", 0))
    L.append("")
    L.append("## Commands\n")
    L.append("- s3fs: `s3fs bench:/PREFIX MNT -f -o use_cache=DIR,url=http://127.0.0.1:PORT,"
             "use_path_request_style,passwd_file=FILE,endpoint=us-east-1`")
    L.append("- rclone: `rclone mount bench:bench/PREFIX MNT --vfs-cache-mode full --cache-dir DIR "
             "--rc …` (remote: type s3, provider Other, endpoint, force_path_style = true)")
    L.append("- tidefs: `tidefs s3://bench/PREFIX MNT --cache-dir DIR --cache-size %s "
             "--endpoint-url http://127.0.0.1:PORT --region us-east-1`" % cfg.tidefs_cache_size)
    L.append("")
    with open(path_md, "w") as f:
        f.write("\n".join(L))


def collect_meta(h):
    def first(s):
        return s.splitlines()[0] if s else s
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    s3rver_v = "?"
    try:
        with open(os.path.join(HERE, "node_modules", "s3rver", "package.json")) as f:
            s3rver_v = json.load(f)["version"]
    except OSError:
        pass
    rev = cmd_out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    fsinfo = cmd_out(["df", "-hT", h.workdir]).splitlines()[-1:]
    tver = cmd_out([h.tidefs_bin, "--version"]) if h.tidefs_bin and os.path.exists(h.tidefs_bin) else "not built"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": "%s × %d" % (cpu, os.cpu_count()),
            "memory": mem,
            "kernel": platform.release(),
            "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "workdir filesystem": " ".join(fsinfo[0].split()) if fsinfo else "?",
            "cache and native filesystem": getattr(h, "disk_desc", "?"),
            "benchmark priority": "nice %d%s" % (os.nice(0), ", ionice best-effort 0"
                                                 if os.environ.get("BENCH_NICE") else ""),
        },
        "versions": {
            "tidefs": "%s (git %s%s)" % (first(tver), rev, ", uncommitted changes" if dirty else ""),
            "s3fs": first(cmd_out(["s3fs", "--version"])),
            "rclone": first(cmd_out(["rclone", "version"])),
            "fio": cmd_out(["fio", "--version"]),
            "s3rver": s3rver_v,
            "node": cmd_out(["node", "--version"]),
            "fuse3": first(cmd_out(["fusermount3", "--version"])),
            "python": platform.python_version(),
        },
    }


# --------------------------------------------------------------------------


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run each: a smoke test")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma list of " + ",".join(SYSTEMS))
    ap.add_argument("--reps", type=int, help="runs per measurement (default 3; --quick 1)")
    ap.add_argument("--tidefs", help="tidefs binary (default: build-bench/fs/tidefs, then build/fs/tidefs)")
    ap.add_argument("--workdir", help="scratch dir (default bench/work, or bench/work/quick)")
    ap.add_argument("--out", help="directory for RESULTS.md/results.json (default bench/, "
                    "bench/work/quick with --quick)")
    ap.add_argument("--wait-quiet", type=int, default=None,
                    help="wait up to this many seconds for load average < --quiet-load "
                    "before starting (default 300; 0 with --quick)")
    ap.add_argument("--quiet-load", type=float, default=1.0)
    ap.add_argument("--settle", type=int, dest="settle_s", default=None,
                    help="seconds to wait (after a sync) before each system's write "
                    "workloads (default 0; 65 with --disk workdir unless --quick)")
    ap.add_argument("--disk", choices=("image", "workdir"), default="image",
                    help="where caches and the native dir live: a fresh journaled ext4 "
                    "loop-mounted for the run (default), or the workdir's own file system")
    ap.add_argument("--big-mib", type=int)
    ap.add_argument("--meta-n", type=int)
    cfg = ap.parse_args()
    q = cfg.quick
    cfg.reps = cfg.reps or (1 if q else 3)
    if cfg.settle_s is None:
        cfg.settle_s = 0 if q or cfg.disk == "image" else 65
    cfg.disk_gib, cfg.disk_min_gib = (8, 4) if q else (32, 16)
    cfg.big_mib = cfg.big_mib or (128 if q else 1024)
    cfg.meta_n = cfg.meta_n or (1000 if q else 10000)
    cfg.meta_size = 1024
    cfg.small_n = 200 if q else 2000
    cfg.write_mib = 64 if q else 512
    cfg.tree_dirs, cfg.tree_files = (10, 199) if q else (100, 999)  # 2,000 / 100,000 descendants
    cfg.peer_tree_dirs, cfg.peer_tree_files = (4, 49) if q else (10, 99)  # 200 / 1,000
    cfg.fio_runtime = 3 if q else 10
    cfg.settle = 1 if q else 10
    cfg.tidefs_cache_size = "8G"
    cfg.workdir = os.path.abspath(cfg.workdir or os.path.join(HERE, "work", "quick" if q else "full"))
    cfg.out = os.path.abspath(cfg.out or (cfg.workdir if q else HERE))
    systems = [x.strip() for x in cfg.systems.split(",") if x.strip()]
    for x in systems:
        if x not in SYSTEMS:
            ap.error("unknown system " + x)
    if os.geteuid() != 0:
        ap.error("must run as root (drop_caches, FUSE)")

    os.makedirs(cfg.workdir, exist_ok=True)
    for d in ("logs", "mnt"):
        fresh_dir(os.path.join(cfg.workdir, d))
    global LOGF
    LOGF = open(os.path.join(cfg.workdir, "bench.log"), "w")
    REG.pidfile = os.path.join(cfg.workdir, "pids")
    atexit.register(REG.cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    h = Harness(cfg)
    tb = cfg.tidefs
    if not tb:
        for c in ("build-bench/fs/tidefs", "build/fs/tidefs"):
            if os.access(os.path.join(REPO, c), os.X_OK):
                tb = os.path.join(REPO, c)
                break
    h.tidefs_bin = tb
    wait_quiet(cfg.quiet_load, cfg.wait_quiet if cfg.wait_quiet is not None else (0 if q else 300))
    mon = LoadMonitor()
    mon.start()
    t_run = time.monotonic()
    log("bench: systems %s, %d rep(s), workdir %s" % (",".join(systems), cfg.reps, cfg.workdir))
    try:
        h.setup_disk()
        h.setup_native()
        h.ep = Endpoint(cfg.workdir)
        h.ep.start()
        populate(h.ep, cfg, h.data_file)
        impl = {"native": Native, "s3fs": S3fs, "rclone": Rclone, "tidefs": Tidefs}
        objs = []
        for sname in systems:
            if sname == "tidefs" and not (tb and os.access(tb, os.X_OK)):
                for w in ("cold_read", "warm_read", "hot_read", "randread_4k", "ls_l", "first_mount",
                          "small_files", "big_write", "rename_tree"):
                    h.na("tidefs", w, "not built")
                continue
            objs.append(impl[sname](h))
        log("read workloads (%s)" % ", ".join(s.name for s in objs))
        h.interleaved(objs, h.read_session, h.read_finish, "read", pre=h.reference)
        h.reference_finish()
        log("metadata workloads")
        h.interleaved(objs, h.meta_session, h.meta_finish, "metadata", pre=h.meta_reference)
        for s in objs:
            # Each system writes into an emptied cache dir.  On a file
            # system without a journal (this VM's root ext4, --disk
            # workdir) ext4 scans past inodes freed in the last 60 s (6
            # minutes while their inode table block is dirty) when it
            # allocates new ones; --settle waits that out as far as it
            # can.  The default --disk image has a journal and needs no
            # pause.
            s.wipe_cache()
            if cfg.settle_s:
                os.sync()
                log("%s: write workloads in %d s (settling the disk)" % (s.name, cfg.settle_s))
                time.sleep(cfg.settle_s)
            log("%s: write workloads" % s.name)
            try:
                h.write_workloads(s)
            except Exception as e:  # noqa: BLE001
                log("  %s write workloads FAILED: %s" % (s.name, e))
                h.results.setdefault(s.name, {})["write_error"] = {"error": str(e)}
                h.notes.setdefault(s.name, []).append("write workloads failed: %s" % e)
                s.unmount()
    finally:
        REG.cleanup()
        if getattr(h, "ep", None):
            h.ep.stop()
        meta = collect_meta(h)
        meta["duration_s"] = time.monotonic() - t_run
        meta["systems_run"] = systems
        mon.stop.set()
        meta["machine"]["load average (1 min) during run"] = "mean %(mean)s, max %(max)s" % mon.summary()
        os.makedirs(cfg.out, exist_ok=True)
        md, js = os.path.join(cfg.out, "RESULTS.md"), os.path.join(cfg.out, "results.json")
        write_report(h, meta, md, js)
        log("wrote %s and %s (%.0f s)" % (md, js, meta["duration_s"]))
        # the endpoint's data and the caches are large; keep only logs
        for d in ("s3rver", "cache", "mnt"):
            p = os.path.join(cfg.workdir, d)
            if os.path.isdir(p) and not any(is_mounted(os.path.join(p, x)) for x in os.listdir(p)):
                shutil.rmtree(p, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
