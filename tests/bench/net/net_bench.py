#!/usr/bin/env python3
# File: tests/bench/net/net_bench.py
# Guest networking benchmark (issue #10, tests/bench/net/README.md): guest->host TCP throughput
# and request/response round trips through our virtio-net + passt (egress policy filtering on)
# vs QEMU -M microvm with `-netdev stream` to a passt started with the same options, vs the
# host's own loopback -- all in one run, same guest kernel, same rootfs, same guest script,
# measured at the host's sink with one clock. A benchmark: prints numbers, asserts none.
# Run it inside ONE lab run through tests/lab/net/net_lab.sh (passt needs a default route).
"""usage: net_bench.py --worker BIN [--kernel-dir DIR] [--mib N] [--transfers N] [--boots N]
                    [--pings N] [--json OUT]"""

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import re
import resource
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
sys.path.insert(0, os.path.join(REPO, "tests/bench"))
import qemu_peer  # noqa: E402
PROG = "net_bench"

# The guest's addressing, as worker/net/passt.h fixes it for every VM (passt's own MAC too).
GUEST_ADDR, GATEWAY, RESOLVER, PASST_MAC = "10.0.2.15", "10.0.2.2", "10.0.2.3", "02:5a:00:00:00:fe"
# Our policy: an allowlist holding the sink's address. Every tx frame is parsed and its
# destination matched against it (deny_private would refuse 10.0.2.2, allow_all skips nothing
# cheaper: the parse runs for every policy), and every frame of the bench passes.
POLICY = f"allowlist:{GATEWAY}/32"
# passt's options: worker/net/passt.cc's PasstArgv (keep in step), plus the lab's
# --netns-only --runas 0 (tests/lab/net/net_lab_test.cc: root in a chroot, no user namespace).
PASST_COMMON = ["--foreground", "--quiet", "--ipv4-only", "--address", GUEST_ADDR,
                "--netmask", "24", "--gateway", GATEWAY, "--dns-forward", RESOLVER,
                "--mac-addr", PASST_MAC, "--tcp-ports", "none", "--udp-ports", "none"]
PASST_LAB = ["--netns-only", "--runas", "0"]
SINK_PORT, ECHO_PORT = 18090, 18091
BLOCK = 65536
PING_BYTES = 64
PING_WARMUP = 10
CMDLINE = "console=ttyS0 reboot=t panic=-1 quiet root=/dev/vda rootfstype=squashfs ro init=/init"
APPLETS = ["sh", "mount", "ifconfig", "route", "nc", "dd", "cat", "echo", "timeout", "reboot",
           "cut", "sleep", "true", "grep", "sed"]


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


def stats(values):
    values = sorted(values)
    med = statistics.median(values)
    return {"median": med, "mad": statistics.median(abs(v - med) for v in values),
            "min": values[0], "max": values[-1], "n": len(values), "values": values}


def percentile(values, q):
    """Nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q / 100 * len(values) + 0.5)) - 1))]


# --- The guest side: one script, run by the guest's /init and, unchanged, on the host ---------

def run_script(host, mib, transfers):
    """The sender: `transfers` connections to the sink, each sending `mib` MiB of zeros and
    waiting for the sink's "ok" (so transfers never overlap and the guest never half-closes:
    Debian 12's passt would then not pass the sink's FIN on, docs/networking.md), then one
    connection whose other end the host drives: `cat` echoes what the host sends."""
    blocks = mib * (1 << 20) // BLOCK
    return f"""#!/bin/busybox sh
# The guest's traffic (tests/bench/net/net_bench.py writes this file).
i=0
while [ $i -lt {transfers} ]; do
  timeout 900 nc {host} {SINK_PORT} -e /bench/send.sh 2>&1 || echo "netbench: transfer $i failed"
  i=$((i + 1))
done
timeout 900 nc {host} {ECHO_PORT} -e /bin/cat || echo "netbench: echo failed"
""", f"""#!/bin/busybox sh
# One transfer: stdin and stdout are the connection (nc -e).
dd if=/dev/zero bs={BLOCK} count={blocks} 2>/tmp/dd.err || echo "netbench: dd: $(cat /tmp/dd.err)" >&2
read ack
"""


INIT = f"""#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up
ifconfig eth0 {GUEST_ADDR} netmask 255.255.255.0 up
route add default gw {GATEWAY}
# The virtio feature bits the driver accepted (bit 0 first): the JSON records them per VMM.
echo "netbench: guest up at $(cut -d' ' -f1 /proc/uptime) s, eth0 features \
$(cat /sys/class/net/eth0/device/features)"
/bench/run.sh
grep Tcp: /proc/net/snmp | sed 's/^/netbench: /'
echo "netbench: guest done at $(cut -d' ' -f1 /proc/uptime) s"
reboot -f
"""


def write_tree(root, busybox, host, mib, transfers, with_init):
    for d in ("bin", "dev", "proc", "sys", "tmp", "bench"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(root, "bin/busybox"))
    for a in APPLETS:
        link = os.path.join(root, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    run, send = run_script(host, mib, transfers)
    files = {"bench/run.sh": run, "bench/send.sh": send}
    if with_init:
        files["init"] = INIT
    for name, text in files.items():
        path = os.path.join(root, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)


# --- The host side: sink and echo driver, one thread, one clock --------------------------------

class Servers:
    def __init__(self):
        self.sink = self._listen(SINK_PORT)
        self.echo = self._listen(ECHO_PORT)

    @staticmethod
    def _listen(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(16)
        return s

    @staticmethod
    def _accept(listener, deadline, alive):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no connection before the deadline")
            listener.settimeout(min(left, 1.0))
            try:
                conn, _ = listener.accept()
                conn.settimeout(300)
                return conn
            except socket.timeout:
                if not alive():
                    raise RuntimeError("the sender ended before connecting") from None

    def transfer(self, nbytes, deadline, alive):
        """One sender connection: returns {seconds, first_byte_s, bytes}."""
        conn = self._accept(self.sink, deadline, alive)
        with conn:
            t0 = time.monotonic()
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            got = 0
            first = None
            while got < nbytes:
                n = conn.recv_into(view, min(len(buf), nbytes - got))
                if n == 0:  # recorded, not fatal: the guest goes on and says why
                    return {"failed": f"closed after {got} of {nbytes} bytes",
                            "seconds": time.monotonic() - t0, "bytes": got}
                if first is None:
                    first = time.monotonic()
                got += n
            t1 = time.monotonic()
            conn.sendall(b"ok\n")
            conn.settimeout(60)
            try:
                conn.recv(1)  # the sender's close
            except socket.timeout:
                pass
        return {"seconds": t1 - t0, "first_byte_s": first - t0, "bytes": got}

    def pingpong(self, count, deadline, alive, before_close=None):
        """Round trips of PING_BYTES over one connection the sender opened (its `cat` echoes);
        returns every round trip in seconds, warm-up ones left out."""
        conn = self._accept(self.echo, deadline, alive)
        rtts = []
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            msg = b"x" * (PING_BYTES - 1) + b"\n"
            for i in range(PING_WARMUP + count):
                t0 = time.monotonic()
                conn.sendall(msg)
                got = 0
                while got < len(msg):
                    chunk = conn.recv(len(msg) - got)
                    if not chunk:
                        raise RuntimeError(f"echo closed after {i} round trips")
                    got += len(chunk)
                if i >= PING_WARMUP:
                    rtts.append(time.monotonic() - t0)
            extra = before_close() if before_close else None
        return rtts, extra


def control(path, line, timeout=30):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        out = b""
        while not out.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace").strip()
    except OSError as e:
        return f"control {line}: {e}"
    finally:
        s.close()


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:])
    except OSError:
        return "(none)"


# --- The three senders --------------------------------------------------------------------

def session(name, argv, args, servers, logs, before_close=None, cleanup=None, env=None):
    """Starts a sender (a VMM or the host script), takes its transfers and round trips.
    Returns {"transfers": [...], "rtts": [...], "wall_s": ..., ...}."""
    nbytes = args.mib << 20
    out = open(logs["out"], "wb")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=env)

    def alive():
        return proc.poll() is None
    result = {"transfers": []}
    try:
        deadline = start + args.boot_timeout
        for i in range(args.transfers + 1):  # the first is a warm-up, not recorded
            t = servers.transfer(nbytes, deadline, alive)
            deadline = time.monotonic() + args.step_timeout
            if "failed" in t:
                result.setdefault("failed_transfers", []).append(t)
                log(f"{name}: transfer {i} FAILED: {t['failed']} after {t['seconds']:.3f} s")
                continue
            if i > 0:
                result["transfers"].append(t)
            log(f"{name}: transfer {i}{' (warm-up)' if i == 0 else ''}: {args.mib} MiB in "
                f"{t['seconds']:.3f} s = {args.mib / t['seconds']:.1f} MiB/s")
        rtts, extra = servers.pingpong(args.pings, deadline, alive, before_close)
        result["rtts"] = rtts
        if extra is not None:
            result["device_stats"] = extra
        log(f"{name}: {len(rtts)} round trips of {PING_BYTES} B, median "
            f"{statistics.median(rtts) * 1e3:.3f} ms")
        try:
            proc.wait(timeout=args.step_timeout)
        except subprocess.TimeoutExpired:
            log(f"{name}: did not end after its traffic; killed")
            proc.kill()
            proc.wait()
        result["wall_s"] = time.monotonic() - start
        result["exit"] = proc.returncode
        if cleanup:
            cleanup()
            cleanup = None
        # CPU of the whole sender tree (VMM threads incl. guest time, its passt), reaped by now.
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["cpu_user_s"] = ru1.ru_utime - ru0.ru_utime
        result["cpu_sys_s"] = ru1.ru_stime - ru0.ru_stime
        if "console" in logs:
            result["console_lines"] = re.findall(r"netbench: .*", tail(logs["console"], 200))
        return result
    except (OSError, RuntimeError, TimeoutError) as e:
        proc.kill()
        proc.wait()
        die(f"{name}: {e} (exit {proc.returncode})\n--- output:\n{tail(logs['out'])}\n"
            + "".join(f"--- {k}:\n{tail(v)}\n" for k, v in logs.items() if k != "out"))
    finally:
        out.close()
        if cleanup:
            cleanup()


def run_ours(args, servers, tmp, rootfs, rnd):
    d = os.path.join(tmp, f"ours{rnd}")
    os.makedirs(d)
    ctl = os.path.join(d, "control")
    argv = [args.worker, "--kernel", os.path.join(args.kernel_dir, "vmlinux"),
            "--mem-mib", str(args.mem), "--vcpus", "1", "--no-rng",
            "--disk", f"{rootfs},ro", "--cmdline", CMDLINE,
            "--serial", f"file:{d}/console", "--control", ctl,
            "--net", f"passt,egress={POLICY}"] + [f"--passt-arg={a}" for a in PASST_LAB]
    # Read while the echo connection is still open: the worker exits with the guest.
    return session("ours", argv, args, servers,
                   {"out": f"{d}/worker.log", "console": f"{d}/console"},
                   before_close=lambda: control(ctl, "stats"))


def run_qemu(args, servers, tmp, rootfs, rnd):
    d = os.path.join(tmp, f"qemu{rnd}")
    os.makedirs(d)
    sock = os.path.join(d, "passt.socket")
    passt_log = open(f"{d}/passt.log", "wb")
    opts = PASST_COMMON + PASST_LAB + ["--socket", sock]
    if args.passt_debug:
        opts = [o for o in opts if o != "--quiet"] + ["--debug"]
    passt = subprocess.Popen(["passt"] + opts,
                             stdin=subprocess.DEVNULL, stdout=passt_log,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        if passt.poll() is not None or time.monotonic() > deadline:
            die(f"passt for QEMU did not create {sock} (exit {passt.poll()}):\n"
                + tail(f"{d}/passt.log"))
        time.sleep(0.05)

    def stop_passt():
        if passt.poll() is not None:
            log(f"qemu: its passt had already exited ({passt.returncode}; negative: signal)")
        else:
            passt.terminate()
            try:
                passt.wait(timeout=10)
            except subprocess.TimeoutExpired:
                passt.kill()
                passt.wait()
        passt_log.close()
    argv = qemu_peer.microvm_argv(
        os.path.join(args.kernel_dir, "vmlinux"), args.mem, f"file:{d}/console", CMDLINE,
        acpi=False,
        extra=["-drive", f"id=root,file={rootfs},format=raw,if=none,readonly=on",
               "-device", "virtio-blk-device,drive=root",
               "-netdev", f"stream,id=net0,server=off,addr.type=unix,addr.path={sock}",
               "-device", "virtio-net-device,netdev=net0,mac=02:00:00:00:00:01"])
    return session("qemu", argv, args, servers,
                   {"out": f"{d}/qemu.log", "console": f"{d}/console",
                    "passt": f"{d}/passt.log"}, cleanup=stop_passt)


def run_loopback(args, servers, tmp, rnd):
    d = os.path.join(tmp, f"loop{rnd}")
    # The guest's own tree and script, pointed at 127.0.0.1, run on the host with its busybox.
    write_tree(d, args.busybox, "127.0.0.1", args.mib, args.transfers + 1, with_init=False)
    for name in ("run.sh", "send.sh"):  # the scripts name /bench/send.sh and /bin/cat
        path = os.path.join(d, "bench", name)
        with open(path) as f:
            text = f.read().replace("/bench/send.sh", f"{d}/bench/send.sh") \
                .replace("/bin/cat", f"{d}/bin/cat")
        with open(path, "w") as f:
            f.write(text)
    env = {"PATH": f"{d}/bin", "HOME": "/", "LANG": "C"}
    return session("loopback", [f"{d}/bin/busybox", "sh", f"{d}/bench/run.sh"], args,
                   servers, {"out": f"{d}/out.log"}, env=env)


def kernel_dir_from_build_sh():
    r = subprocess.run([os.path.join(REPO, "kernel/build.sh"), "--print-dir"],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die(f"the guest kernel is not built (expected in {r.stdout.strip()}): kernel/build.sh")
    return r.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", required=True, help="supermachine-worker binary")
    p.add_argument("--kernel-dir", help="default: `kernel/build.sh --print-dir`")
    p.add_argument("--busybox", default="/bin/busybox", help="static busybox for the guest")
    p.add_argument("--mib", type=int, default=16,
                   help="MiB per transfer (keep a transfer well under 24 s: see README)")
    p.add_argument("--transfers", type=int, default=4,
                   help="recorded transfers per boot (after one warm-up)")
    p.add_argument("--boots", type=int, default=2,
                   help="rounds; each boots ours and QEMU once and runs the loopback once")
    p.add_argument("--pings", type=int, default=200, help="recorded round trips per boot")
    p.add_argument("--mem", type=int, default=256, help="guest MiB")
    p.add_argument("--boot-timeout", type=float, default=600,
                   help="seconds from the start to the first connection")
    p.add_argument("--step-timeout", type=float, default=600,
                   help="seconds between connections, and for the sender to end")
    p.add_argument("--only", help="comma-separated subset of ours,qemu,loopback (debugging; "
                   "the ratios need all three)")
    p.add_argument("--passt-debug", action="store_true",
                   help="QEMU's passt logs with --debug to its log (diagnosis only)")
    p.add_argument("--json", help="write every sample here")
    args = p.parse_args()
    if not os.path.exists("/dev/kvm"):
        die("/dev/kvm does not exist: run this through tests/lab/run")
    args.kernel_dir = args.kernel_dir or kernel_dir_from_build_sh()
    for tool in ("passt", "qemu-system-x86_64", "mksquashfs"):
        if not shutil.which(tool):
            die(f"{tool} not found (deploy/packages.txt: passt, qemu-system-x86, squashfs-tools)")
    for f in (args.worker, args.busybox, os.path.join(args.kernel_dir, "vmlinux")):
        if not os.path.isfile(f):
            die(f"{f} not found")

    servers = Servers()
    samples = {k: {"transfers": [], "rtts": [], "boots": []} for k in ("ours", "qemu", "loopback")}
    with tempfile.TemporaryDirectory(prefix="sm-netbench-") as tmp:
        tree = os.path.join(tmp, "rootfs")
        write_tree(tree, args.busybox, GATEWAY, args.mib, args.transfers + 1, with_init=True)
        rootfs = os.path.join(tmp, "rootfs.sqfs")
        r = subprocess.run(["mksquashfs", tree, rootfs, "-noappend", "-all-root", "-quiet",
                            "-no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            die(f"mksquashfs failed: {r.stdout.decode(errors='replace')}")
        # Rounds alternate the three (A B C A B C): drift in machine load hits all alike.
        for rnd in range(args.boots):
            for name, fn in (("ours", lambda: run_ours(args, servers, tmp, rootfs, rnd)),
                             ("qemu", lambda: run_qemu(args, servers, tmp, rootfs, rnd)),
                             ("loopback", lambda: run_loopback(args, servers, tmp, rnd))):
                if args.only and name not in args.only.split(","):
                    continue
                res = fn()
                samples[name]["transfers"] += res["transfers"]
                samples[name]["rtts"] += res["rtts"]
                samples[name]["boots"].append({k: v for k, v in res.items()
                                               if k not in ("transfers", "rtts")})

    report = {"mib": args.mib, "transfers_per_boot": args.transfers, "boots": args.boots,
              "pings_per_boot": args.pings, "ping_bytes": PING_BYTES, "mem_mib": args.mem,
              "policy": POLICY, "kernel_dir": args.kernel_dir, "rows": [], "subjects": {}}
    for name, s in samples.items():
        if not s["transfers"]:
            continue  # left out with --only
        secs = [t["seconds"] for t in s["transfers"]]
        report["subjects"][name] = {
            "transfer_s": stats(secs),
            "mib_per_s": stats([args.mib / x for x in secs]),
            "rtt_s": stats(s["rtts"]),
            "rtt_p99_s": percentile(s["rtts"], 99),
            "transfers": s["transfers"], "boots": s["boots"]}
    subj = report["subjects"]
    for peer in ("qemu", "loopback"):
        if "ours" not in subj or peer not in subj:
            continue
        for metric, label in (("transfer_s", f"net: {args.mib} MiB guest->host TCP"),
                              ("rtt_s", f"net: {PING_BYTES} B request/response RTT")):
            o, q = subj["ours"][metric], subj[peer][metric]
            report["rows"].append({"bench": label, "ours": "worker virtio-net+passt",
                                   "peer": "QEMU microvm+passt" if peer == "qemu"
                                   else "host loopback",
                                   "ours_s": o, "peer_s": q, "ratio": o["median"] / q["median"]})
    tput = {k: subj[k]["mib_per_s"]["median"] for k in subj}
    for name, s in subj.items():
        print(f"{name:<9} throughput {s['mib_per_s']['median']:8.1f} ± "
              f"{s['mib_per_s']['mad']:.1f} MiB/s (min {s['mib_per_s']['min']:.1f}, max "
              f"{s['mib_per_s']['max']:.1f}, n={s['mib_per_s']['n']})   RTT median "
              f"{s['rtt_s']['median'] * 1e3:.3f} ± {s['rtt_s']['mad'] * 1e3:.3f} ms, p99 "
              f"{s['rtt_p99_s'] * 1e3:.3f} ms (min {s['rtt_s']['min'] * 1e3:.3f}, max "
              f"{s['rtt_s']['max'] * 1e3:.3f}, n={s['rtt_s']['n']})", flush=True)
    for peer in ("qemu", "loopback"):
        if "ours" in tput and peer in tput:
            report[f"throughput_ratio_vs_{peer}"] = tput["ours"] / tput[peer]
            print(f"ours / {peer} throughput: {tput['ours'] / tput[peer]:.3f}x"
                  + (" (issue 10's target: >= 0.8x)" if peer == "qemu" else ""), flush=True)
    for b in subj.get("ours", {}).get("boots", []):
        print(f"ours device stats: {b.get('device_stats')}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
