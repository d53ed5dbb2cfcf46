#!/usr/bin/env python3
# File: tests/bench/worker/bench.py
# Boot benchmark: supermachine-worker vs QEMU microvm, same kernel, same squashfs root with the
# guest-agent as /init, same command line, measured in the same run (run it inside the KVM lab:
# see README.md). Prints a table and JSON with medians, spread and ratios. Not a test: it never
# asserts on timings.
"""usage: bench.py --build BUILD_DIR [--runs N] [--kernel vmlinux|bzImage] [--json FILE]"""

import argparse
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MARKER = b"supermachine-guest-agent: init ok"
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def kernel_dir():
    if os.environ.get("SM_KERNEL_DIR"):
        return os.environ["SM_KERNEL_DIR"]
    out = subprocess.run([os.path.join(SRC, "kernel", "build.sh"), "--print-dir"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("bench: guest kernel not built (run kernel/build.sh)")
    return out.stdout.strip().splitlines()[-1]


def make_root(tmp, agent):
    root = os.path.join(tmp, "root")
    for d in ("dev", "proc", "sys", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(agent, os.path.join(root, "init"))
    image = os.path.join(tmp, "root.sqfs")
    subprocess.run(["mksquashfs", root, image, "-quiet", "-noappend", "-all-root"], check=True,
                   stdout=subprocess.DEVNULL)
    return image


def rss_kib(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                    fields[k] = int(v.split()[0])
    except OSError:
        pass
    return fields


def run_once(argv, env, timeout=300):
    """Starts argv; returns (seconds to marker, seconds to exit, guest uptime, rss at marker,
    stderr text, exit code)."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env)
    buf = b""
    marker_at = None
    rss = {}
    uptime = None
    os.set_blocking(p.stdout.fileno(), False)
    deadline = start + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            chunk = p.stdout.read()
            if chunk:
                buf += chunk
            elif p.poll() is not None:
                break
        if marker_at is None and MARKER in buf:
            marker_at = time.monotonic() - start
            rss = rss_kib(p.pid)
        if marker_at is not None:
            m = re.search(rb"init ok uptime_s=([0-9.]+)", buf)
            if m and b"\n" in buf[m.end():m.end() + 64]:
                uptime = float(m.group(1))
        if p.poll() is not None and not r:
            break
    try:
        p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    exit_at = time.monotonic() - start
    err = p.stderr.read().decode(errors="replace")
    if uptime is None:
        m = re.search(rb"init ok uptime_s=([0-9.]+)", buf)
        uptime = float(m.group(1)) if m else None
    return marker_at, exit_at, uptime, rss, err, p.returncode, buf


def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "mad": statistics.median([abs(v - med) for v in values]), "n": len(values)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="CMake build dir with supermachine-worker")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default="vmlinux", choices=["vmlinux", "bzImage"])
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args()

    worker = os.path.join(args.build, "worker", "supermachine-worker")
    agent = os.path.join(args.build, "guest-agent", "guest-agent")
    kernel = os.path.join(kernel_dir(), args.kernel)
    for f in (worker, agent, kernel):
        if not os.path.exists(f):
            sys.exit(f"bench: missing {f} (build it first)")
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        sys.exit("bench: qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    if not os.path.exists("/dev/kvm"):
        sys.exit("bench: no /dev/kvm: run inside tests/lab/run")

    tmp = tempfile.mkdtemp(prefix="sm-bench-")
    root = make_root(tmp, agent)
    cmdline = "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init quiet"
    env = dict(os.environ, SUPERMACHINE_WORKER_TIMING="1")
    ours_argv = [worker, "--kernel", kernel, "--mem-mib", "256", "--no-rng",
                 "--disk", root + ",ro", "--cmdline", cmdline, "--serial", "stdout"]
    # acpi=off: our kernel has no ACPI, and only then does QEMU microvm list its virtio-mmio
    # devices on the kernel command line (as we do) instead of in a DSDT.
    qemu_argv = [qemu, "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", "-enable-kvm", "-cpu", "host",
                 "-m", "256", "-no-reboot", "-nodefaults", "-no-user-config", "-nographic",
                 "-serial", "stdio", "-kernel", kernel, "-append", cmdline,
                 "-drive", f"id=root,file={root},format=raw,if=none,readonly=on",
                 "-device", "virtio-blk-device,drive=root"]

    results = {"ours": [], "qemu": []}
    # Interleave so drift in the lab (TCG, shared cores) hits both alike.
    for i in range(args.runs + 1):
        for name, argv in (("ours", ours_argv), ("qemu", qemu_argv)):
            marker, total, uptime, rss, err, rc, out = run_once(argv, env)
            if marker is None:
                print(f"bench: {name} run {i}: no marker (exit {rc})\n{err[-2000:]}\n"
                      f"{out[-2000:].decode(errors='replace')}", file=sys.stderr)
                sys.exit(1)
            first = re.search(r"start_to_first_kvm_run_us=(\d+)", err)
            mem = re.search(r"RssAnon:(\d+) kB.*RssFile:(\d+) kB.*RssShmem:(\d+) kB", err)
            entry = {"marker_s": marker, "exit_s": total, "guest_uptime_s": uptime,
                     "exit_code": rc, "rss_at_marker_kib": rss}
            if first:
                entry["start_to_first_kvm_run_ms"] = int(first.group(1)) / 1000.0
            if name == "ours":
                # Guest RAM is a shared memfd (RssShmem); the VMM's own footprint is the rest.
                entry["vmm_overhead_kib"] = rss.get("RssAnon", 0) + rss.get("RssFile", 0)
                if mem:
                    entry["vmm_overhead_at_exit_kib"] = int(mem.group(1)) + int(mem.group(2))
            if i > 0:  # The first round warms the page cache; it is not counted.
                results[name].append(entry)

    def stat(name, key):
        return summarize([r.get(key) for r in results[name]])

    report = {"kernel": kernel, "runs": args.runs, "cmdline": cmdline, "metrics": {}}
    rows = []
    for key, label in (("marker_s", "host wall: start → init marker (s)"),
                       ("exit_s", "host wall: start → VMM exit (s)"),
                       ("guest_uptime_s", "guest uptime at init (s)*")):
        o, q = stat("ours", key), stat("qemu", key)
        ratio = o["median"] / q["median"] if o and q and q["median"] else None
        report["metrics"][key] = {"ours": o, "qemu": q, "ratio": ratio}
        rows.append((label, o, q, ratio))
    for key in ("start_to_first_kvm_run_ms", "vmm_overhead_kib", "vmm_overhead_at_exit_kib"):
        report["metrics"][key] = {"ours": stat("ours", key)}
    report["raw"] = results

    def fmt(s):
        return "—" if not s else f"{s['median']:.3f} [{s['min']:.3f}..{s['max']:.3f}] mad {s['mad']:.3f}"

    print(f"\nworker boot benchmark, {args.runs} runs each (median [min..max] mad), kernel {kernel}")
    print(f"{'metric':40} {'ours':36} {'qemu microvm':36} ratio")
    for label, o, q, ratio in rows:
        r = f"{ratio:.2f}" if ratio else "—"
        print(f"{label:40} {fmt(o):36} {fmt(q):36} {r}")
    fk = report["metrics"]["start_to_first_kvm_run_ms"]["ours"]
    ov = report["metrics"]["vmm_overhead_kib"]["ours"]
    ox = report["metrics"]["vmm_overhead_at_exit_kib"]["ours"]
    print(f"{'worker start → first KVM_RUN (ms)':40} {fmt(fk)}")
    print(f"{'worker RSS minus guest RAM @marker (KiB)':40} {fmt(ov)}")
    print(f"{'worker RSS minus guest RAM @exit (KiB)':40} {fmt(ox)}")
    print("* the guest's own clock: not comparable between VMMs (QEMU's guest clock stalls during"
          " early boot in the lab; see docs/design/kvm-notes.md). Compare host wall times.")
    print("\nJSON:")
    print(json.dumps({k: v for k, v in report.items() if k != "raw"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
