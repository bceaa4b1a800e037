# SPDX-License-Identifier: MIT
"""Shared harness for the tidefs integration suites.

Every suite mounts tidefs for real against moto_server on a free loopback
port. Pieces:

  MotoServer   start/stop/freeze a moto_server process, wait until it answers.
  Mount        run the tidefs binary (env TIDEFS_BIN, else ../../build/fs/tidefs)
               with a temporary cache dir and mount point, wait until the mount
               is live, capture its stderr to a log file, always unmount
               (fusermount3 -u, then -uz) and kill what is left.
  TidefsTestCase
               unittest.TestCase base: one moto_server per test class, a fresh
               bucket per test, temp dirs, a per-test watchdog that tears the
               mounts down if a test hangs (a process blocked in a FUSE request
               cannot be interrupted by an ordinary signal), helpers to run
               risky file operations in a child process with a timeout.

Nothing here is ever skipped: a missing binary, FUSE or moto is a failure.
"""

import atexit
import errno
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

MiB = 1024 * 1024
STATE_XATTR = "user.tidefs.state"
STATS_KEYS = ("file_system_id", "repository", "cache_capacity_bytes",
              "cached_bytes", "hits", "misses", "bytes_fetched", "states")
STATES = ("new", "dirty", "archived", "released", "lost")

# Default per-test budget (seconds); a class may set TEST_TIMEOUT.
DEFAULT_TEST_TIMEOUT = 90
MOUNT_TIMEOUT = 60
# How long to wait for something that happens in the background (a daemon
# exiting, a FUSE release, an eviction, a file going away) before failing.
# Generous: CI runs three suites at a time on 2 CPUs next to an ASan build.
SETTLE_TIMEOUT = 30

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _v in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "TIDEFS_CACHE_DIR",
           "TIDEFS_CACHE_SIZE", "TIDEFS_ENDPOINT_URL", "TIDEFS_REGION"):
    os.environ.pop(_v, None)


def tidefs_bin():
    b = os.environ.get("TIDEFS_BIN")
    if not b:
        b = os.path.join(REPO, "build", "fs", "tidefs")
    return os.path.abspath(b)


def tidefs_under_tsan():
    """Whether the tidefs binary is a ThreadSanitizer build (its metadata
    store then writes its pages with pwrite, cache/meta_space.c)."""
    r = subprocess.run(["ldd", tidefs_bin()], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return "libtsan" in r.stdout


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md5(data):
    return hashlib.md5(data).hexdigest()


def file_md5(path, bufsize=4 * MiB):
    h = hashlib.md5()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def difference(got, want):
    """None when got == want, else where they differ, for a failure
    message (an md5 mismatch alone says nothing about what went wrong)."""
    if got == want:
        return None
    n = min(len(got), len(want))
    first = next((i for i in range(0, n, 4096)
                  if got[i:min(i + 4096, n)] != want[i:min(i + 4096, n)]),
                 None)
    if first is not None:
        first = next(i for i in range(first, n) if got[i] != want[i])
    return "%d bytes, %d expected; first difference at %s" % (
        len(got), len(want), first if first is not None else n)


def pattern_bytes(size, seed):
    """Deterministic, non-repeating bytes for (size, seed), so misplaced
    chunks are caught; fast enough for hundreds of MiB, and prefix-stable:
    pattern_bytes(n, s) == pattern_bytes(m, s)[:n] for n <= m."""
    return hashlib.shake_256(str(seed).encode()).digest(size)


def random_bytes(size):
    return os.urandom(size)


def write_file(path, data, mode=0o644, fsync=False):
    """Create or truncate path (mode as for open(2), so the umask applies)
    and write all of data, optionally fsync()ing before the close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:8 * MiB])
            view = view[n:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pread_all(fd, size, off=0):
    """Up to size bytes from offset off of fd, 1 MiB per pread, stopping
    at the end of the file."""
    got = b""
    while len(got) < size:
        b = os.pread(fd, min(MiB, size - len(got)), off + len(got))
        if not b:
            break
        got += b
    return got


def pwrite_all(fd, data, off):
    """pwrite all of data at off (os.pwrite may write less)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        view = view[n:]
        off += n


def drop_page_cache():
    """Write dirty pages back and drop the kernel's page cache, dentries
    and inodes, so that reads reach the daemon, not the kernel's copy."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def wait_until(cond, timeout, interval=0.05):
    """Poll cond() until it returns a true value (returned) or timeout
    seconds pass (returns the last false value). For conditions that a
    loaded machine may take a while to reach: pass a generous timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def allocated_bytes(path):
    """Bytes actually allocated on disk under path (like du)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
    return total


def mounted_paths():
    """Mount points from /proc/self/mountinfo (never touches the FS)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            mp = (mp.replace("\\040", " ").replace("\\011", "\t")
                  .replace("\\012", "\n").replace("\\134", "\\"))
            out.append(mp)
    return out


def is_mounted(path):
    return os.path.realpath(path) in mounted_paths()


def pids_with_arg(arg):
    """PIDs of processes whose argv contains arg exactly (our unique temp
    paths), used to find a daemonized tidefs this harness started."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            pids.append(int(d))
    return pids


def pids_blocked_on(path):
    """PIDs of other processes that have path open and sleep in the kernel:
    for a file on a tidefs mount, waiting for the daemon to answer (e.g. a
    read whose data is being fetched). Never touches the file system."""
    want = os.path.abspath(path)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % d)
            if not any(os.readlink("/proc/%s/fd/%s" % (d, fd)) == want
                       for fd in fds):
                continue
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state in ("S", "D"):
            pids.append(int(d))
    return pids


def run_to_files(argv, timeout):
    """Run argv with stdout/stderr going to temp files (so a forked daemon
    holding them open cannot block us). Returns (rc, out, err) or None on
    timeout (the process is killed)."""
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        p = subprocess.Popen(argv, stdout=o, stderr=e,
                             stdin=subprocess.DEVNULL)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
        o.seek(0)
        e.seek(0)
        return rc, o.read(), e.read()


def kill_daemons_for(path, grace=10):
    """Give the processes that have path in their argv (a daemon of a mount
    point this harness made) grace seconds to exit, then SIGKILL them."""
    wait_until(lambda: not pids_with_arg(path), grace)
    for p in pids_with_arg(path):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX (Host: localhost)."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def fusermount_unmount(path, lazy=False):
    args = ["fusermount3", "-u"]
    if lazy:
        args = ["fusermount3", "-uz"]
    return subprocess.run(args + [path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


# --------------------------------------------------------------- moto ----

class MotoServer:
    def __init__(self, logdir, port=None):
        self.logdir = logdir
        self.port = port or free_port()
        self.proc = None
        self.logfile = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _argv(self):
        exe = shutil.which("moto_server")
        if exe:
            return [exe, "-H", "127.0.0.1", "-p", str(self.port)]
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                "-p", str(self.port)]

    def start(self, timeout=30):
        self.logfile = open(os.path.join(
            self.logdir, "moto-%d.log" % self.port), "ab")
        self.proc = subprocess.Popen(self._argv(), stdout=self.logfile,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        atexit.register(self.stop)  # never orphan a server
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited with %s; see %s" % (
                    self.proc.returncode, self.logfile.name))
            if self.answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not answer on %s" % self.url)

    def answers(self):
        try:
            with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def freeze(self):
        """SIGSTOP: the socket still accepts, nothing ever answers."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.proc = None
        if self.logfile:
            self.logfile.close()
            self.logfile = None

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 2},
                          max_pool_connections=32))


# -------------------------------------------------------------- mount ----

class MountError(Exception):
    pass


class Mount:
    """One tidefs mount. foreground=True (the default) runs with -f so the
    harness owns the process and its stderr; foreground=False exercises the
    daemonizing path (the command must return only once the mount is live)."""

    def __init__(self, tmp, endpoint, bucket, prefix="", cache_dir=None,
                 mountpoint=None, args=(), foreground=True,
                 log_level="debug", retry_timeout=None, name=None):
        self.name = name or "m%s" % uuid.uuid4().hex[:6]
        self.cache_dir = cache_dir or tempfile.mkdtemp(prefix="cache-",
                                                       dir=tmp)
        self.mountpoint = mountpoint or tempfile.mkdtemp(prefix="mnt-",
                                                         dir=tmp)
        self.log_path = os.path.join(tmp, "tidefs-%s.log" % self.name)
        self.endpoint = endpoint
        self.url = "s3://%s%s" % (bucket, "/" + prefix if prefix else "")
        self.extra = list(args)
        self.foreground = foreground
        self.log_level = log_level
        self.retry_timeout = retry_timeout
        self.proc = None
        self.returncode = None
        self.start_stderr = ""

    def argv(self):
        a = [tidefs_bin(), "--cache-dir", self.cache_dir]
        if self.endpoint:
            a += ["--endpoint-url", self.endpoint]
        a += ["--region", "us-east-1"]
        if self.log_level:
            a += ["--log-level", self.log_level]
        if self.retry_timeout is not None:
            a += ["--retry-timeout", str(self.retry_timeout)]
        if self.foreground:
            a.append("-f")
        a += self.extra
        a += [self.url, self.mountpoint]
        return a

    def start(self, timeout=MOUNT_TIMEOUT):
        if not os.path.exists(tidefs_bin()):
            raise MountError("tidefs binary not found at %s (set TIDEFS_BIN "
                             "or build into %s/build)" % (tidefs_bin(), REPO))
        log = open(self.log_path, "ab")
        log.write(("\n=== %s\n" % " ".join(self.argv())).encode())
        log.flush()
        try:
            if self.foreground:
                self._start_fg(log, timeout)
            else:
                self._start_bg(log, timeout)
        finally:
            log.close()
        return self

    def _start_fg(self, log, timeout):
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_mounted(self.mountpoint):
                return
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise MountError("tidefs exited with %d before mounting:\n%s"
                                 % (rc, self.log_tail()))
            time.sleep(0.05)
        raise MountError("mount not live after %ds:\n%s"
                         % (timeout, self.log_tail()))

    def _start_bg(self, log, timeout):
        # Files, not pipes: a daemon that kept the pipe open would make the
        # wait hang, and the command's own exit is what we measure.
        r = run_to_files(self.argv(), timeout)
        if r is None:
            raise MountError("tidefs (background) did not return in %ds"
                             % timeout)
        self.returncode, out, err = r
        self.start_stderr = err.decode(errors="replace")
        log.write(out + err)
        if self.returncode != 0:
            raise MountError("tidefs exited with %d:\n%s" % (
                self.returncode, self.start_stderr))

    def daemon_pids(self):
        if self.proc is not None and self.proc.poll() is None:
            return [self.proc.pid]
        return pids_with_arg(self.mountpoint)

    def log_text(self):
        """The daemon's stderr (foreground), plus DIR/tidefs.log, where a
        daemonized tidefs logs (README)."""
        text = ""
        for p in (self.log_path, os.path.join(self.cache_dir, "tidefs.log")):
            try:
                with open(p, "rb") as f:
                    text += f.read().decode(errors="replace")
            except (FileNotFoundError, NotADirectoryError):
                pass
        return text

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def stats(self):
        with open(self.path(".tidefs", "stats"), "rb") as f:
            return json.loads(f.read().decode())

    def state(self, *parts):
        return os.getxattr(self.path(*parts), STATE_XATTR).decode()

    def wait_metadata(self, timeout=2 * SETTLE_TIMEOUT):
        """Wait until .tidefs/stats reports no metadata pending; gives up
        quietly after timeout (the test then sees what is there)."""
        def done():
            try:
                return self.stats().get("metadata_pending", 0) == 0
            except (OSError, ValueError):
                return True
        return wait_until(done, timeout)

    def wait_closed(self, timeout=SETTLE_TIMEOUT):
        """Wait until the daemon has the close of every file handle (the
        kernel sends it after close() returns)."""
        return wait_until(lambda: self.stats()["open_handles"] == 0, timeout)

    def is_mounted(self):
        return is_mounted(self.mountpoint)

    def unmount(self, timeout=30):
        """Clean unmount; returns the daemon's exit code when known
        (foreground), else None. Raises if the daemon does not exit."""
        pids = self.daemon_pids()
        r = fusermount_unmount(self.mountpoint)
        if r.returncode != 0 and self.is_mounted():
            raise MountError("fusermount3 -u failed: %s" %
                             r.stderr.decode(errors="replace").strip())
        deadline = time.monotonic() + timeout
        if self.proc is not None:
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise MountError("tidefs did not exit %ds after unmount"
                                 % timeout)
            return self.returncode
        while time.monotonic() < deadline:
            if not any(os.path.exists("/proc/%d" % p) for p in pids):
                return None
            time.sleep(0.05)
        raise MountError("tidefs daemon %s did not exit after unmount" % pids)

    def kill(self, sig=signal.SIGKILL):
        for p in self.daemon_pids():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def cleanup(self):
        """Always leaves nothing mounted and no daemon behind."""
        if self.is_mounted():
            r = fusermount_unmount(self.mountpoint)
            if r.returncode != 0 or self.is_mounted():
                fusermount_unmount(self.mountpoint, lazy=True)
        pids = self.daemon_pids()
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists("/proc/%d" % p)
                    and not _is_zombie(p)]
            time.sleep(0.05)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.is_mounted():
            fusermount_unmount(self.mountpoint, lazy=True)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def abort_fuse_connections_for(mountpoint):
    """Abort a hung FUSE connection through /sys/fs/fuse/connections."""
    try:
        st_dev = None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == os.path.realpath(mountpoint):
                    major, minor = fields[2].split(":")
                    st_dev = int(minor)
        if st_dev is not None:
            p = "/sys/fs/fuse/connections/%d/abort" % st_dev
            if os.path.exists(p):
                with open(p, "w") as f:
                    f.write("1")
    except OSError:
        pass


# ---------------------------------------------------- child operations ----

CHILD_PRELUDE = r"""
import errno, hashlib, json, os, sys, time
def out(**kw):
    sys.stdout.write(json.dumps(kw)); sys.stdout.flush()
"""


def run_child(code, timeout):
    """Run python code in a child (killable with SIGKILL even while blocked in
    a FUSE request). The code calls out(...) with a JSON-able result. Returns
    (result dict or None, elapsed seconds, timed_out)."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-c", CHILD_PRELUDE + code],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, True
    el = time.monotonic() - t0
    if r.returncode != 0:
        raise AssertionError("child failed (%d): %s" % (
            r.returncode, r.stderr.decode(errors="replace")))
    return json.loads(r.stdout.decode() or "null"), el, False


def child_read(path, offset=0, length=-1, timeout=30):
    """Read path in a child; returns (dict(ok, errno, md5, len, data_hex?),
    elapsed, timed_out)."""
    code = r"""
path, off, ln = %r, %d, %d
try:
    fd = os.open(path, os.O_RDONLY)
    try:
        if ln < 0:
            h = hashlib.md5(); n = 0
            while True:
                b = os.pread(fd, 1 << 20, off + n)
                if not b: break
                h.update(b); n += len(b)
            out(ok=True, md5=h.hexdigest(), len=n)
        else:
            b = os.pread(fd, ln, off)
            out(ok=True, md5=hashlib.md5(b).hexdigest(), len=len(b))
    finally:
        os.close(fd)
except OSError as e:
    out(ok=False, errno=e.errno, err=str(e))
""" % (path, offset, length)
    return run_child(code, timeout)


# ----------------------------------------------------------- test base ----

def require_environment():
    problems = []
    if os.geteuid() != 0:
        problems.append("integration tests need root (FUSE mounts)")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing")
    if not shutil.which("fusermount3"):
        problems.append("fusermount3 not on PATH (apt-get install fuse3)")
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError as e:
        problems.append("python3 lacks boto3/moto: %s" % e)
    if not os.path.exists(tidefs_bin()):
        problems.append("tidefs binary not found at %s" % tidefs_bin())
    if problems:
        raise RuntimeError("; ".join(problems))


_SHARED = {}


def shared_moto():
    """One moto_server per test process (each ctest entry is one process);
    tests that stop or freeze the endpoint use OWN_MOTO_PER_TEST instead.
    Buckets are per test, so tests do not see each other's objects."""
    mo = _SHARED.get("moto")
    if mo is None or mo.proc is None or mo.proc.poll() is not None:
        d = tempfile.mkdtemp(prefix="tidefs-it-moto-")
        mo = MotoServer(d).start()
        _SHARED["moto"] = mo

        def stop():
            mo.stop()
            shutil.rmtree(d, ignore_errors=True)
        atexit.register(stop)
    return mo


class TidefsTestCase(unittest.TestCase):
    """Base class: self.moto (one per class), self.s3 (boto3), self.bucket
    (fresh per test), self.tmp (per-test temp dir), self.mount(...)."""

    TEST_TIMEOUT = DEFAULT_TEST_TIMEOUT
    OWN_MOTO_PER_TEST = False

    @classmethod
    def setUpClass(cls):
        require_environment()
        cls.class_tmp = tempfile.mkdtemp(prefix="tidefs-it-")
        cls.moto = None
        if not cls.OWN_MOTO_PER_TEST:
            cls.moto = shared_moto()

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("TIDEFS_KEEP_TMP"):
            sys.stderr.write("kept %s\n" % cls.class_tmp)
        else:
            shutil.rmtree(cls.class_tmp, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self._testMethodName[:40] + "-",
                                    dir=self.class_tmp)
        self.mounts = []
        self.extra_motos = []
        if self.OWN_MOTO_PER_TEST:
            self.moto = MotoServer(self.tmp).start()
            self.extra_motos.append(self.moto)
        self.s3 = self.moto.client()
        self.bucket = "b-" + uuid.uuid4().hex[:12]
        self.s3.create_bucket(Bucket=self.bucket)
        self._timed_out = False
        self._t0 = time.monotonic()
        self._watchdog = threading.Timer(self.TEST_TIMEOUT, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.addCleanup(self._cleanup)

    def _on_timeout(self):
        self._timed_out = True
        sys.stderr.write("\n*** %s exceeded %ds: killing its mounts\n"
                         % (self.id(), self.TEST_TIMEOUT))
        for m in self.mounts:
            m.kill(signal.SIGKILL)
            abort_fuse_connections_for(m.mountpoint)
        for mo in self.extra_motos + [self.moto]:
            if mo and mo.proc:
                try:
                    os.killpg(mo.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass

    def _cleanup(self):
        self._watchdog.cancel()
        for m in self.mounts:
            m.cleanup()
            self._saved_logs.append((m.log_path, " ".join(m.argv()),
                                     m.log_tail(60)))
        for mo in self.extra_motos:
            mo.stop()
        if os.environ.get("TIDEFS_IT_TIMING"):
            sys.stderr.write("[%.1fs] " % (time.monotonic() - self._t0))
        if self._timed_out:
            self.fail("test exceeded its %ds timeout" % self.TEST_TIMEOUT)
        if not os.environ.get("TIDEFS_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, result=None):
        """After a failed test, print the tail of each daemon log."""
        self._saved_logs = []
        before = (len(result.failures) + len(result.errors)) if result else 0
        res = super().run(result)
        r = result if result is not None else res
        if r is not None and len(r.failures) + len(r.errors) > before:
            for path, argv, tail in self._saved_logs:
                sys.stderr.write("\n--- daemon log %s\n$ %s\n%s\n"
                                 % (path, argv, tail))
        return res

    def mount(self, prefix="", start=True, moto=None, **kw):
        m = Mount(self.tmp, (moto or self.moto).url, kw.pop("bucket",
                  self.bucket), prefix=prefix, **kw)
        self.mounts.append(m)
        if start:
            try:
                m.start()
            except MountError:
                sys.stderr.write("\n--- log of failed mount %s\n%s\n" % (
                    m.log_path, m.log_tail(60)))
                raise
            # A first mount completes its objects' metadata in the
            # background; tests that then change the bucket or stop the
            # endpoint expect it complete (test_lazy starts its own mounts
            # with start=False to see the pending state).
            m.wait_metadata()
        return m

    def put(self, key, body=b"", meta=None, bucket=None):
        kw = {"Bucket": bucket or self.bucket, "Key": key, "Body": body}
        if meta:
            kw["Metadata"] = meta
        return self.s3.put_object(**kw)

    def put_many(self, items, bucket=None, threads=8):
        """items: iterable of (key, body[, meta])."""
        from concurrent.futures import ThreadPoolExecutor
        items = list(items)

        def one(it):
            self.put(it[0], it[1], it[2] if len(it) > 2 else None, bucket)
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(one, items))

    def assertErrno(self, code, fn, *a, **kw):
        with self.assertRaises(OSError) as cm:
            fn(*a, **kw)
        self.assertEqual(cm.exception.errno, code,
                         "expected %s, got %s (%s)" % (
                             errno.errorcode.get(code, code),
                             errno.errorcode.get(cm.exception.errno),
                             cm.exception))
        return cm.exception

    def assertNotMountedAnywhere(self, mountpoint):
        self.assertFalse(is_mounted(mountpoint),
                         "%s is still mounted" % mountpoint)


def posix_meta(mode=None, uid=None, gid=None, atime_ns=None, mtime_ns=None):
    """The FSx x-amz-meta-file-* headers (boto3 Metadata, prefix stripped)."""
    m = {}
    if mode is not None:
        m["file-permissions"] = "%07o" % mode if mode >= 0o100000 \
            else "%06o" % mode
    if uid is not None:
        m["file-owner"] = str(uid)
    if gid is not None:
        m["file-group"] = str(gid)
    if atime_ns is not None:
        m["file-atime"] = "%dns" % atime_ns
    if mtime_ns is not None:
        m["file-mtime"] = "%dns" % mtime_ns
    return m
