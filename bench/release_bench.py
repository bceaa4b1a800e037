#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Release and eviction benchmarks for tidefs (issue 5), on s3rver.

  1. RELEASE_DATA_FROM_FILESYSTEM of N cached small files: time, files/s.
  2. RELEASE_DATA_FROM_FILESYSTEM of G GiB in 1 GiB files: time, GiB/s.
  3. Auto-eviction under a read stream: a mount with --cache-size C reads
     R GiB of large objects sequentially; throughput while the eviction
     lane releases behind it, and the peak of cached_bytes against C.

tidefs only: s3fs and rclone have no release task and no cache-size limit
that holds (both overshoot). Results: bench/RESULTS-release.md and
bench/results-release.json. Uses bench.py's endpoint and helpers.

Usage: sudo python3 bench/release_bench.py [--files N] [--gib G]
           [--cache-size 1G] [--stream-gib R] [--tidefs PATH]

Defaults are the issue's sizes: 100,000 files, 10 GiB, 3 GiB through a 1G
cache (about 15 minutes and 25 GiB of scratch space under bench/work/). The
machine may be shared: the 1-minute load average is sampled during each
part and reported with it.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (AK, BUCKET, HERE, REG, SK, Endpoint,  # noqa: E402
                   LoadMonitor, drop_caches, fresh_dir, log, meta_headers,
                   put_many)

GiB = 1 << 30
MiB = 1 << 20


def mount(binary, ep, workdir, name, cache_size, fresh=True):
    cache = os.path.join(workdir, "cache-" + name)
    if fresh:
        fresh_dir(cache)
    mnt = fresh_dir(os.path.join(workdir, "mnt-" + name))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK)
    argv = [binary, "s3://%s/%s" % (BUCKET, name), mnt, "--cache-dir", cache,
            "--cache-size", cache_size, "--endpoint-url", ep.url,
            "--import-parallel", "16"]
    REG.add_mount(mnt)
    t0 = time.perf_counter()
    for attempt in range(30):
        # A remount may find the last daemon still closing its cache.
        r = subprocess.run(argv, env=env, timeout=1800,
                           stdin=subprocess.DEVNULL)
        if r.returncode == 0:
            break
        if fresh or attempt == 29:
            raise RuntimeError("mount of %s failed" % name)
        time.sleep(1)
    log("%s mounted in %.1fs" % (name, time.perf_counter() - t0))
    return mnt


def unmount(mnt, keep_cache=False):
    subprocess.run(["fusermount3", "-u", mnt], check=False, timeout=120)
    REG.drop_mount(mnt)
    if keep_cache:
        return
    # The cache dir is scratch: free its space for the next part.
    subprocess.run(["rm", "-rf", os.path.join(os.path.dirname(mnt), "cache-"
                    + os.path.basename(mnt)[len("mnt-"):])], check=False)


def with_load(fn, *args):
    """fn(*args) with the load average sampled while it runs."""
    mon = LoadMonitor()
    mon.start()
    try:
        res = fn(*args)
    finally:
        mon.stop.set()
        mon.join()
    res["load"] = mon.summary()
    return res


def stats(mnt):
    with open(os.path.join(mnt, ".tidefs", "stats")) as f:
        return json.load(f)


def run_task(mnt, name, req, timeout=1800):
    path = os.path.join(mnt, ".tidefs", "tasks", name)
    t0 = time.perf_counter()
    with open(path, "w") as f:
        f.write(json.dumps(req))
    while True:
        with open(path) as f:
            t = json.load(f)
        if t.get("Lifecycle") in ("SUCCEEDED", "FAILED", "CANCELED"):
            return t, time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("task %s did not finish" % name)
        time.sleep(0.05)


def read_all(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 * MiB):
                pass


def small_files(binary, ep, workdir, n):
    body = os.urandom(4096)
    keys = ["small/d%03d/f%06d" % (i % 100, i) for i in range(n)]
    t0 = time.perf_counter()
    put_many(ep, keys, body, meta_headers(0), threads=16)
    log("put %d small objects in %.1fs" % (n, time.perf_counter() - t0))
    mnt = mount(binary, ep, workdir, "small", "8G")
    read_all(os.path.join(mnt, k[len("small/"):]) for k in keys)
    before = stats(mnt)["cached_bytes"]
    t, secs = run_task(mnt, "release-small",
                       {"Type": "RELEASE_DATA_FROM_FILESYSTEM",
                        "Paths": ["/"]})
    load1 = os.getloadavg()[0]
    after = stats(mnt)["cached_bytes"]
    unmount(mnt)
    done = t["Status"]["SucceededCount"]
    return {"files": n, "released": done, "seconds": secs, "load1": load1,
            "files_per_s": done / secs if secs else None,
            "cached_before": before, "cached_after": after,
            "lifecycle": t["Lifecycle"]}


def read_parallel(paths, threads=8):
    from concurrent.futures import ThreadPoolExecutor

    def one(p):
        with open(p, "rb") as f:
            while f.read(MiB):
                pass
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, paths))


def small_ab(new_bin, old_bin, ep, workdir, n):
    """The small-file release with two binaries on the same cache and
    objects, alternating old, new, old, new: each round remounts the cache
    (no import), reads every file (8 threads, untimed) and releases them."""
    body = os.urandom(4096)
    keys = ["ab/d%03d/f%06d" % (i % 100, i) for i in range(n)]
    put_many(ep, keys, body, meta_headers(0), threads=16)
    rounds = []
    for i, (label, binary) in enumerate((("before", old_bin),
                                         ("after", new_bin)) * 2):
        mnt = mount(binary, ep, workdir, "ab", "8G", fresh=i == 0)
        read_parallel([os.path.join(mnt, k[len("ab/"):]) for k in keys])
        t, secs = run_task(mnt, "release-%d" % i,
                           {"Type": "RELEASE_DATA_FROM_FILESYSTEM",
                            "Paths": ["/"]})
        done = t["Status"]["SucceededCount"]
        rounds.append({"binary": label, "files": n, "released": done,
                       "seconds": secs, "files_per_s": done / secs,
                       "load1": os.getloadavg()[0]})
        log("ab round %d: %r" % (i, rounds[-1]))
        unmount(mnt, keep_cache=True)
    return {"rounds": rounds}


def big_file(path, size):
    with open(path, "wb") as f:
        chunk = os.urandom(8 * MiB)
        for _ in range(size // len(chunk)):
            f.write(chunk)


def upload_big(ep, data, prefix, count):
    for i in range(count):
        ep.s3.upload_file(data, BUCKET, "%s/big%02d.bin" % (prefix, i))


def large_files(binary, ep, workdir, gib, data):
    upload_big(ep, data, "large", gib)
    mnt = mount(binary, ep, workdir, "large", "%dG" % (gib + 2))
    names = [os.path.join(mnt, "big%02d.bin" % i) for i in range(gib)]
    t0 = time.perf_counter()
    read_all(names)
    read_s = time.perf_counter() - t0
    read_load1 = os.getloadavg()[0]
    before = stats(mnt)["cached_bytes"]
    t, secs = run_task(mnt, "release-large",
                       {"Type": "RELEASE_DATA_FROM_FILESYSTEM",
                        "Paths": ["/"]})
    load1 = os.getloadavg()[0]
    after = stats(mnt)["cached_bytes"]
    unmount(mnt)
    return {"gib": gib, "seconds": secs, "load1": load1,
            "read_load1": read_load1,
            "gib_per_s": (before - after) / GiB / secs if secs else None,
            "cached_before": before, "cached_after": after,
            "read_mib_s": gib * 1024 / read_s,
            "lifecycle": t["Lifecycle"]}


def eviction_stream(binary, ep, workdir, cache_size, gib, data):
    # 256 MiB objects: a file being read is open, and open files are not
    # released, so each must fit the cache with room to spare.
    n = gib * 4
    upload_big(ep, data, "stream", n)
    mnt = mount(binary, ep, workdir, "stream", cache_size)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], stats(mnt)["cached_bytes"])
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
    th = threading.Thread(target=watch, daemon=True)
    th.start()
    drop_caches()
    t0 = time.perf_counter()
    read_all(os.path.join(mnt, "big%02d.bin" % i) for i in range(n))
    secs = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    stop.set()
    th.join()
    tasks = os.listdir(os.path.join(mnt, ".tidefs", "tasks"))
    unmount(mnt)
    return {"cache_size": cache_size, "read_gib": gib, "seconds": secs,
            "mib_s": gib * 1024 / secs, "peak_cached_bytes": peak[0],
            "load1": load1,
            "automatic_tasks": len(tasks)}


def report(res, path):
    s, l, e = res["small"], res["large"], res["stream"]

    def ld(r, key="load1"):
        return "%.1f" % r[key]
    lines = [
        "# tidefs release and eviction benchmarks",
        "",
        "Generated by `bench/release_bench.py` on %s on %s (%d CPUs), "
        "s3rver on 127.0.0.1, tidefs %s. tidefs only: s3fs and rclone have "
        "no release task, and their cache limits are soft." % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            platform.node(), os.cpu_count(), res.get("commit", "?")),
        "",
        "The machine was shared with other jobs: *load* is the 1-minute load "
        "average right after each measurement (on %d CPUs); the load over "
        "each whole part (setup included) averaged %s / %s / %s." % (
            os.cpu_count(), "%.1f" % s["load"]["mean"],
            "%.1f" % l["load"]["mean"], "%.1f" % e["load"]["mean"]),
        "",
        "| workload | result | load |",
        "| --- | ---: | ---: |",
        "| RELEASE_DATA_FROM_FILESYSTEM of %s cached 4 KiB files | %.2f s, "
        "**%s files/s** | %s |" % ("{:,}".format(s["files"]), s["seconds"],
                                   "{:,.0f}".format(s["files_per_s"]), ld(s)),
        "| RELEASE_DATA_FROM_FILESYSTEM of %d GiB in 1 GiB files | %.2f s "
        "(%.1f GiB/s freed) | %s |" % (l["gib"], l["seconds"], l["gib_per_s"],
                                       ld(l)),
        "| reading those %d GiB first (cold, from s3rver) | %.0f MiB/s | %s |"
        % (l["gib"], l["read_mib_s"], ld(l, "read_load1")),
        "| sequential read of %d GiB (256 MiB objects) through a %s cache "
        "(evicting) | **%.0f MiB/s** | %s |" % (
            e["read_gib"], e["cache_size"], e["mib_s"], ld(e)),
        "| peak cached_bytes during that read | %.0f MiB (cache %s) | |"
        % (e["peak_cached_bytes"] / MiB, e["cache_size"]),
        "| automatic AUTO_RELEASE_DATA tasks it took | %d | |"
        % e["automatic_tasks"],
        "",
        "Raw numbers: `bench/results-release.json`. Released %s of %s small "
        "files (the rest were skipped while their handles were still "
        "closing); the cache's usage after the release tasks: %d and %d "
        "bytes." % ("{:,}".format(s["released"]), "{:,}".format(s["files"]),
                    s["cached_after"], l["cached_after"]),
        "",
    ]
    if res.get("note"):
        lines += [res["note"], ""]
    ab = res.get("small_ab")
    if ab:
        rs = ab["rounds"]
        lines += [
            "## Small files: release before and after batching",
            "",
            "`release_bench.py --ab OLD_TIDEFS`: %s files of 4 KiB, one "
            "cache and one set of objects, remounted with each binary in "
            "turn (before, after, before, after); each round reads every "
            "file (untimed) and releases them all. *before*: %s; *after*: "
            "%s (64 files per LMDB commit and sync). Load averaged %.1f "
            "(max %.1f) over the comparison." % (
                "{:,}".format(rs[0]["files"]), ab.get("before", "?"),
                ab.get("after", "?"), ab["load"]["mean"], ab["load"]["max"]),
            "",
            "| round | binary | released | time | files/s | load |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for i, r in enumerate(rs):
            lines.append("| %d | %s | %s | %.2f s | **%s** | %.1f |" % (
                i + 1, r["binary"], "{:,}".format(r["released"]),
                r["seconds"], "{:,.0f}".format(r["files_per_s"]),
                r["load1"]))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--gib", type=int, default=10)
    ap.add_argument("--cache-size", default="1G")
    ap.add_argument("--stream-gib", type=int, default=3)
    ap.add_argument("--tidefs", default=os.path.join(
        HERE, "..", "build-bench", "fs", "tidefs"))
    ap.add_argument("--ab", metavar="OLD_TIDEFS",
                    help="only compare the small-file release of OLD_TIDEFS "
                    "(before) and --tidefs (after) on --ab-files files; the "
                    "result is added to bench/results-release.json")
    ap.add_argument("--ab-files", type=int, default=20000)
    ap.add_argument("--ab-label", help="what OLD_TIDEFS is (for the report)")
    ap.add_argument("--tidefs-label", help="what --tidefs is (for the report)")
    ap.add_argument("--ab-no-merge", action="store_true",
                    help="keep the comparison in bench/work/ab-result.json")
    ap.add_argument("--ab-merge", metavar="FILE",
                    help="only add a saved comparison to the results")
    a = ap.parse_args()
    if a.ab_merge:
        return merge_ab(a.ab_merge)
    if a.ab:
        return main_ab(a)
    workdir = fresh_dir(os.path.join(HERE, "work", "release"))
    ep = Endpoint(workdir)
    res = {"commit": subprocess.run(
        ["git", "-C", HERE, "describe", "--always", "--dirty"],
        stdout=subprocess.PIPE, text=True, check=False).stdout.strip()}
    try:
        ep.start()
        data = os.path.join(workdir, "big.bin")
        big_file(data, GiB)
        data256 = os.path.join(workdir, "big256.bin")
        big_file(data256, 256 * MiB)
        res["small"] = with_load(small_files, a.tidefs, ep, workdir, a.files)
        log("small: %r" % res["small"])
        res["large"] = with_load(large_files, a.tidefs, ep, workdir, a.gib,
                                 data)
        log("large: %r" % res["large"])
        res["stream"] = with_load(eviction_stream, a.tidefs, ep, workdir,
                                  a.cache_size, a.stream_gib, data256)
        log("stream: %r" % res["stream"])
    finally:
        REG.cleanup()
        ep.stop()
    with open(os.path.join(HERE, "results-release.json"), "w") as f:
        json.dump(res, f, indent=2)
    report(res, os.path.join(HERE, "RESULTS-release.md"))
    subprocess.run(["rm", "-rf", workdir], check=False)


def main_ab(a):
    """The comparison is saved in bench/work/ab-result.json, then added to
    the results (merge_ab): a full run may be writing them meanwhile."""
    workdir = fresh_dir(os.path.join(HERE, "work", "release-ab"))
    ep = Endpoint(workdir)
    try:
        ep.start()
        ab = with_load(small_ab, a.tidefs, a.ab, ep, workdir, a.ab_files)
    finally:
        REG.cleanup()
        ep.stop()
    ab["before"] = a.ab_label or a.ab
    ab["after"] = a.tidefs_label or a.tidefs
    saved = os.path.join(HERE, "work", "ab-result.json")
    with open(saved, "w") as f:
        json.dump(ab, f, indent=2)
    subprocess.run(["rm", "-rf", workdir], check=False)
    if not a.ab_no_merge:
        merge_ab(saved)


def merge_ab(saved):
    with open(saved) as f:
        ab = json.load(f)
    path = os.path.join(HERE, "results-release.json")
    with open(path) as f:
        res = json.load(f)
    res["small_ab"] = ab
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
    report(res, os.path.join(HERE, "RESULTS-release.md"))


if __name__ == "__main__":
    main()
