#!/usr/bin/env python3
# File: tests/bench/snapshot/qemu_restore.py
# The peer for the snapshot benchmark: QEMU `-M microvm` with our guest kernel, saved with
# `migrate exec:` and restored with `-incoming exec:` (QEMU 7.2 has no `file:` URI), timed from
# qemu's start to the guest answering a ping on its serial console. Also times QEMU's cold boot
# of the same guest to the same answer. Run inside tests/lab/run (needs a /dev/kvm that boots
# Linux). The guest is a static busybox /init that answers "pong N" for each line "N" read on
# the console: the smallest guest that proves it runs, since QEMU here has no vsock for our
# agent (no vhost-vsock in the lab's L1).
"""usage: qemu_restore.py [--kernel-dir DIR] [--runs N] [--mem MIB] [--json OUT]"""

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, os.path.join(REPO, "tests/lab/peer"))
sys.path.insert(0, os.path.join(REPO, "tests/bench"))
import mkinitramfs  # noqa: E402
import qemu_peer  # noqa: E402

PROG = "qemu_restore"
INIT = b"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox stty -echo 2>/dev/null
echo sm-peer-ready
while /bin/busybox true; do
  read line && echo "pong $line"
done
"""


def fail(msg):
    print(f"{PROG}: FAIL: {msg}", flush=True)
    sys.exit(1)


def summarize(values):
    values = sorted(values)
    med = statistics.median(values)
    return {"median": med, "mad": statistics.median(abs(v - med) for v in values),
            "min": values[0], "max": values[-1], "n": len(values), "values": values}


class Qemu:
    def __init__(self, argv, qmp_path):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.qmp_path = qmp_path
        self.out = b""

    def wait_for(self, needle, timeout, ping=False):
        """Reads the console until `needle`; with ping, sends a numbered line every 50 ms."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        n = 0
        next_ping = 0.0
        while time.monotonic() < deadline:
            if ping and time.monotonic() >= next_ping:
                n += 1
                try:
                    self.proc.stdin.write(f"{n}\n".encode())
                    self.proc.stdin.flush()
                except BrokenPipeError:
                    break
                next_ping = time.monotonic() + 0.05
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.out += chunk
                if needle in self.out:
                    return time.monotonic() - self.start
        tail = self.out.decode("utf-8", "replace")[-2000:]
        self.kill()
        fail(f"no {needle!r} within {timeout} s; console tail:\n{tail}")

    def qmp(self, commands):
        s = socket.socket(socket.AF_UNIX)
        for _ in range(200):
            try:
                s.connect(self.qmp_path)
                break
            except OSError:
                time.sleep(0.05)
        f = s.makefile("rw")
        f.readline()  # greeting
        replies = []
        for cmd in [{"execute": "qmp_capabilities"}] + commands:
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg or "error" in msg:
                    replies.append(msg)
                    break
        s.close()
        return replies[1:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kernel-dir")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--mem", type=int, default=256)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--json")
    args = p.parse_args()
    if not os.path.exists("/dev/kvm"):
        fail("/dev/kvm does not exist: run this through tests/lab/run")
    kdir = args.kernel_dir or subprocess.run(
        [os.path.join(REPO, "kernel/build.sh"), "--print-dir"], stdout=subprocess.PIPE,
        text=True).stdout.strip()
    kernel = os.path.join(kdir, "vmlinux")
    if not os.path.isfile(kernel):
        fail(f"{kernel} missing: build the guest kernel (kernel/build.sh)")

    with tempfile.TemporaryDirectory(prefix="sm-qemu-restore-") as tmp:
        cpio = mkinitramfs.Cpio()
        for d in ("dev", "proc", "sys", "tmp", "run", "bin"):
            cpio.dir(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.file("init", INIT, 0o755)
        with open("/bin/busybox", "rb") as f:
            cpio.file("bin/busybox", f.read(), 0o755)
        initrd = os.path.join(tmp, "initramfs.cpio")
        with open(initrd, "wb") as f:
            f.write(cpio.finish())
        qmp_path = os.path.join(tmp, "qmp")
        state = os.path.join(tmp, "state")
        base = qemu_peer.microvm_argv(
            kernel, args.mem, "stdio", "console=ttyS0 reboot=t panic=-1 quiet",
            extra=["-initrd", initrd, "-qmp", f"unix:{qmp_path},server=on,wait=off"])
        cold, restore = [], []
        state_bytes = 0
        for rnd in range(args.runs):
            if os.path.exists(qmp_path):
                os.unlink(qmp_path)
            q = Qemu(base, qmp_path)
            q.wait_for(b"sm-peer-ready", args.timeout)
            cold.append(q.wait_for(b"pong", args.timeout, ping=True))
            # Save: migrate to a file through exec (the VM ends paused), then quit.
            if os.path.exists(state):
                os.unlink(state)
            q.qmp([{"execute": "migrate", "arguments": {"uri": f"exec:cat > {state}"}}])
            deadline = time.monotonic() + args.timeout
            while True:
                st = q.qmp([{"execute": "query-migrate"}])[0]["return"].get("status")
                if st == "completed":
                    break
                if st == "failed" or time.monotonic() > deadline:
                    q.kill()
                    fail(f"migration ended {st}")
                time.sleep(0.05)
            q.qmp([{"execute": "quit"}])
            q.proc.wait()
            state_bytes = os.path.getsize(state)
            if os.path.exists(qmp_path):  # qemu removes its socket on quit
                os.unlink(qmp_path)
            r = Qemu(base + ["-incoming", f"exec:cat {state}"], qmp_path)
            restore.append(r.wait_for(b"pong", args.timeout, ping=True))
            r.kill()
            print(f"{PROG}: run {rnd + 1}/{args.runs}: cold boot to pong {cold[-1]:.3f} s, "
                  f"-incoming restore to pong {restore[-1]:.3f} s, state "
                  f"{state_bytes / 1048576:.1f} MiB", flush=True)
    report = {"qemu_cold_boot_to_pong_s": summarize(cold),
              "qemu_incoming_restore_to_pong_s": summarize(restore),
              "qemu_state_bytes": state_bytes, "mem_mib": args.mem}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
