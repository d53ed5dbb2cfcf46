#!/usr/bin/env python3
# File: bench_layer_convert.py
# Benchmark: one large OCI layer (a Debian rootfs as tar+gzip) converted to squashfs (zstd) by
#   ours      sm-layer-convert (daemon/layer, in process: libarchive → libsquashfs)
#   tar2sqfs  squashfs-tools-ng's tar2sqfs -c zstd (same library, its own tar reader)
#   upstream  tar -xf + mksquashfs -comp zstd -no-xattrs (what upstream supermachine 0.4.4 runs)
# in the same run, on the same input, interleaved, several times. Prints median/MAD/min/max of
# wall time, median CPU time (user+sys of the tool's processes: less sensitive to other load on
# a shared machine), output sizes and ours/peer ratios as a table and as JSON. Not a test.
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def make_rootfs(work):
    rootfs = os.path.join(work, "rootfs")
    if not os.path.isdir(rootfs):
        print(f"debootstrap --variant=minbase bookworm {rootfs} ...", file=sys.stderr)
        run(["debootstrap", "--variant=minbase", "--include=python3,perl,ca-certificates",
             "bookworm", rootfs, "http://deb.debian.org/debian"], stdout=subprocess.DEVNULL)
        # A pulled image carries no package cache.
        shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
    return rootfs


def make_layer(rootfs, work):
    layer = os.path.join(work, "layer.tar.gz")
    if not os.path.exists(layer):
        print(f"tar+gzip {rootfs} → {layer} ...", file=sys.stderr)
        with open(layer, "wb") as out:
            tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-C",
                                    rootfs, "-cf", "-", "."], stdout=subprocess.PIPE)
            run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=out)
            tar.wait()
    raw = 0
    with subprocess.Popen(["gzip", "-dc", layer], stdout=subprocess.PIPE) as p:
        while chunk := p.stdout.read(1 << 20):
            raw += len(chunk)
    return layer, raw


def time_ours(converter, layer, out):
    t = time.perf_counter()
    run([converter, layer, out], stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def time_tar2sqfs(layer, out):
    t = time.perf_counter()
    with open(layer, "rb") as inp:
        run(["tar2sqfs", "-q", "-f", "-c", "zstd", out], stdin=inp, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def time_upstream(layer, out, work):
    extract = os.path.join(work, "extract")
    shutil.rmtree(extract, ignore_errors=True)
    os.makedirs(extract)
    if os.path.exists(out):
        os.unlink(out)
    t = time.perf_counter()
    run(["tar", "-xf", layer, "-C", extract], stdout=subprocess.DEVNULL)
    run(["mksquashfs", extract, out, "-comp", "zstd", "-no-xattrs", "-noappend", "-quiet"],
        stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    shutil.rmtree(extract, ignore_errors=True)  # Not timed: upstream removes it afterwards.
    return elapsed


def summary(samples):
    med = statistics.median(samples)
    return {"median_s": round(med, 3),
            "mad_s": round(statistics.median([abs(s - med) for s in samples]), 3),
            "min_s": round(min(samples), 3), "max_s": round(max(samples), 3),
            "runs": [round(s, 3) for s in samples]}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--converter", required=True, help="path to sm-layer-convert")
    ap.add_argument("--rootfs", help="directory to pack as the layer (default: debootstrap)")
    ap.add_argument("--work", help="work directory (default: a temp dir under /var/tmp)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the JSON result here")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="sm-layer-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    rootfs = args.rootfs or make_rootfs(work)
    layer, raw_size = make_layer(rootfs, work)
    outs = {name: os.path.join(work, f"{name}.sqfs") for name in ("ours", "tar2sqfs", "upstream")}
    times = {name: [] for name in outs}
    cpu = {name: [] for name in outs}
    # Warm the page cache once so no tool pays for the first read alone.
    time_tar2sqfs(layer, outs["tar2sqfs"])
    for i in range(args.runs):
        # Rotate the order so background load and cache state do not favour one tool.
        order = ["ours", "tar2sqfs", "upstream"][i % 3:] + ["ours", "tar2sqfs", "upstream"][:i % 3]
        for name in order:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            if name == "ours":
                times[name].append(time_ours(args.converter, layer, outs[name]))
            elif name == "tar2sqfs":
                times[name].append(time_tar2sqfs(layer, outs[name]))
            else:
                times[name].append(time_upstream(layer, outs[name], work))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    result = {
        "input": {"layer": layer, "compressed_bytes": os.path.getsize(layer),
                  "tar_bytes": raw_size, "cpus": os.cpu_count()},
        "tools": {},
    }
    for name in outs:
        result["tools"][name] = dict(summary(times[name]),
                                     cpu_median_s=round(statistics.median(cpu[name]), 3),
                                     output_bytes=os.path.getsize(outs[name]))
    ours = result["tools"]["ours"]
    for peer in ("tar2sqfs", "upstream"):
        p = result["tools"][peer]
        result[f"ours_vs_{peer}"] = {
            "time_ratio": round(ours["median_s"] / p["median_s"], 3),
            "cpu_ratio": round(ours["cpu_median_s"] / p["cpu_median_s"], 3),
            "size_ratio": round(ours["output_bytes"] / p["output_bytes"], 3)}

    mib = 1024 * 1024
    print(f"layer: {layer}  {result['input']['compressed_bytes'] / mib:.1f} MiB gzip, "
          f"{raw_size / mib:.1f} MiB tar, {args.runs} runs, {os.cpu_count()} CPUs")
    print(f"{'tool':<10} {'median s':>9} {'MAD':>7} {'min':>7} {'max':>7} {'CPU s':>7} "
          f"{'out MiB':>9}")
    for name, r in result["tools"].items():
        print(f"{name:<10} {r['median_s']:>9.2f} {r['mad_s']:>7.2f} {r['min_s']:>7.2f} "
              f"{r['max_s']:>7.2f} {r['cpu_median_s']:>7.2f} {r['output_bytes'] / mib:>9.1f}")
    for peer in ("tar2sqfs", "upstream"):
        r = result[f"ours_vs_{peer}"]
        print(f"ours / {peer:<9} time {r['time_ratio']:.2f}x  cpu {r['cpu_ratio']:.2f}x  "
              f"size {r['size_ratio']:.3f}x")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
