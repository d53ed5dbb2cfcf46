#!/usr/bin/env python3
# File: bench_bake.py
# Benchmark (issue 8): the bake pipeline's timings breakdown (resolve/pull/convert/delta/boot/
# ready/snapshot/total, from metadata.json) for two images, each baked by `sm-bake` with cold
# caches and then again in the three cached forms a user meets:
#   first    fresh state dir: nothing cached (blob store, layer cache, delta cache all empty)
#   cheap    the same request again: cheap-key hit (no registry, no conversion, no boot)
#   full     the same request with --pull always: the image is resolved again, the full bake key
#            hits (no conversion, no boot)
#   new-cmd  a changed cmd: layers cached, new delta, a new boot and snapshot
# Images, built locally as OCI layouts (gzip layers, like a registry's):
#   busybox  busybox-static + /www/index.html, `busybox httpd -f -p 8080` (the lab tests' image)
#   debian   debootstrap --variant=minbase --include=python3 bookworm (≈250 MiB unpacked),
#            `python3 -m http.server 8000`
# Readiness is `listener` on the workload's port. Each cached form is reported as a ratio of the
# first bake of the same image in the same run. Not a test: prints, asserts nothing.
#
# Runs itself inside ONE lab run (tests/lab/run) unless already there (SM_LAB=1) or on hardware
# KVM (tests/lab/run then runs it directly). The layouts are built on the host first (debootstrap
# needs the Debian mirror; nothing else touches the network).
import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

IMAGES = {
    "busybox": {"port": 8080,
                "cmd": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                "new_cmd": ["/bin/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]},
    "debian": {"port": 8000,
               "cmd": ["python3", "-m", "http.server", "8000", "--directory", "/www"],
               "new_cmd": ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0",
                           "--directory", "/www"]},
}
STAGES = ["resolve", "pull", "convert", "delta", "boot", "ready", "snapshot", "total"]


def log(msg):
    print(f"bench_bake: {msg}", file=sys.stderr, flush=True)


# ---- image layouts (host side) ------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tar_dir(root, out_tar_gz):
    """A reproducible tar+gzip of `root` (numeric owners, sorted), plus the uncompressed
    digest (the config's diff_id)."""
    raw = out_tar_gz + ".raw"
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "--mtime=@0", "-C", root,
                    "-cf", raw, "."], check=True)
    diff_id = sha256_file(raw)
    with open(raw, "rb") as src, gzip.GzipFile(out_tar_gz, "wb", compresslevel=6, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.unlink(raw)
    return diff_id


class Layout:
    """An OCI image layout directory with one manifest tagged `tag`."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def put_file(self, src, media_type):
        digest = sha256_file(src)
        dst = os.path.join(self.path, "blobs", "sha256", digest)
        shutil.move(src, dst)
        return {"mediaType": media_type, "digest": "sha256:" + digest,
                "size": os.path.getsize(dst)}

    def put_json(self, obj, media_type):
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def finish(self, layers, diff_ids, cmd, tag):
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": cmd, "Env": [PATH_ENV]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]}}
        dc = self.put_json(config, "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": dc, "layers": layers}
        dm = self.put_json(manifest, "application/vnd.oci.image.manifest.v1+json")
        dm["annotations"] = {"org.opencontainers.image.ref.name": tag}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [dm]}, f)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)


def build_layout(name, rootfs, www_text, work):
    """Two gzip layers (the rootfs, then /www/index.html) in work/<name>-layout, tag v1."""
    path = os.path.join(work, f"{name}-layout")
    if os.path.exists(os.path.join(path, "index.json")):
        return path
    log(f"building the {name} OCI layout from {rootfs}")
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    layout = Layout(tmp)
    layers, diff_ids = [], []
    www = os.path.join(work, f"{name}-www")
    os.makedirs(os.path.join(www, "www"), exist_ok=True)
    with open(os.path.join(www, "www", "index.html"), "w") as f:
        f.write(www_text)
    for i, root in enumerate([rootfs, www]):
        gz = os.path.join(tmp, f"layer{i}.tar.gz")
        diff_ids.append(tar_dir(root, gz))
        layers.append(layout.put_file(gz, "application/vnd.oci.image.layer.v1.tar+gzip"))
    layout.finish(layers, diff_ids, IMAGES[name]["cmd"], "v1")
    os.rename(tmp, path)
    return path


def busybox_rootfs(work, busybox_bin):
    root = os.path.join(work, "busybox-rootfs")
    if os.path.isdir(root):
        return root
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ["dev", "proc", "sys", "tmp", "run", "root", "etc", "bin"]:
        os.makedirs(os.path.join(tmp, d))
    shutil.copy(busybox_bin, os.path.join(tmp, "bin", "busybox"))
    applets = subprocess.run([busybox_bin, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(tmp, "bin", a))
    with open(os.path.join(tmp, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(tmp, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    os.rename(tmp, root)
    return root


def debian_rootfs(work, given):
    if given:
        return given
    root = os.path.join(work, "debian-rootfs")
    if os.path.isdir(os.path.join(root, "usr", "bin")) and os.path.exists(
            os.path.join(root, "usr", "bin", "python3")):
        return root
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"debootstrap --variant=minbase --include=python3 bookworm {tmp} (needs the mirror)")
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", tmp,
                    "http://deb.debian.org/debian"], check=True, stdout=subprocess.DEVNULL)
    # A pulled image carries no package cache.
    shutil.rmtree(os.path.join(tmp, "var", "cache", "apt", "archives"), ignore_errors=True)
    os.rename(tmp, root)
    return root


# ---- the bakes (inside the lab) -----------------------------------------------------------

def sm_bake(args, image, state, name, cmd, pull=None):
    spec = IMAGES[image]
    argv = [os.path.join(args.build_dir, "daemon", "bake", "sm-bake"),
            f"oci-layout:{args.layouts[image]}:v1", "--state-dir", state,
            "--kernel", args.kernel, "--agent", args.agent, "--worker", args.worker,
            "--name", name, "--port", str(spec["port"]), "--memory", str(args.memory),
            "--readiness", "listener", "--cmd", json.dumps(cmd), "--timeout", "900", "--json"]
    if pull:
        argv += ["--pull", pull]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall_ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"bench_bake: sm-bake {image} failed (exit {p.returncode})")
    first, _, meta = p.stdout.partition("\n")
    kind = first.split("\t")[2] if first.count("\t") == 2 else "?"
    timings = json.loads(meta).get("timings", {}) if meta.strip() else {}
    call_ms = None
    for line in p.stderr.splitlines():
        if line.startswith("bake call ms: "):
            call_ms = float(line.split(": ", 1)[1])
    return {"wall_ms": wall_ms, "call_ms": call_ms, "kind": kind,
            "timings": {s: timings.get(f"{s}_ms", timings.get(s)) for s in STAGES}}


def bake_round(args, image, i):
    state = os.path.join(args.work, f"state-{image}-{i}")
    shutil.rmtree(state, ignore_errors=True)
    spec = IMAGES[image]
    r = {}
    r["first"] = sm_bake(args, image, state, image, spec["cmd"])
    r["cheap"] = sm_bake(args, image, state, image, spec["cmd"])
    r["full"] = sm_bake(args, image, state, image, spec["cmd"], pull="always")
    r["new-cmd"] = sm_bake(args, image, state, image, spec["new_cmd"])
    log(f"{image} run {i}: " + ", ".join(f"{k} {v['kind']} {v['wall_ms']:.0f} ms"
                                         for k, v in r.items()))
    if not args.keep:
        shutil.rmtree(state, ignore_errors=True)
    return r


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    med = statistics.median(xs)
    return {"median": med, "mad": statistics.median(abs(x - med) for x in xs),
            "min": min(xs), "max": max(xs), "n": len(xs)}


def fmt(s):
    if s is None:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.0f}"
    return f"{s['median']:.0f} ± {s['mad']:.0f}"


def report(results):
    out = {"images": {}}
    for image, rounds in results.items():
        img = {"runs": rounds, "stages": {}, "wall": {}, "ratio_vs_first": {}}
        for form in ["first", "new-cmd"]:
            img["stages"][form] = {s: stats([r[form]["timings"][s] for r in rounds])
                                   for s in STAGES}
        img["call"] = {}
        for form in ["first", "cheap", "full", "new-cmd"]:
            img["wall"][form] = stats([r[form]["wall_ms"] for r in rounds])
            img["call"][form] = stats([r[form]["call_ms"] for r in rounds])
        first = img["call"]["first"]["median"]
        for form in ["cheap", "full", "new-cmd"]:
            img["ratio_vs_first"][form] = img["call"][form]["median"] / first
        out["images"][image] = img

    print("\nBake timings breakdown, ms (median ± MAD over the runs; from metadata.json):")
    print("| image | bake | " + " | ".join(STAGES) + " |")
    print("|---|---|" + "---|" * len(STAGES))
    for image, img in out["images"].items():
        for form in ["first", "new-cmd"]:
            print(f"| {image} | {form} | " +
                  " | ".join(fmt(img["stages"][form][s]) for s in STAGES) + " |")
    print("\nThe Bake() call, ms (in process; ratio to the first bake of the same image), and the")
    print("whole sm-bake process (start → exit, includes loading the binary and opening the store):")
    print("| image | first | cheap hit | full hit (--pull always) | changed cmd |")
    print("|---|---|---|---|---|")
    for image, img in out["images"].items():
        c, w, r = img["call"], img["wall"], img["ratio_vs_first"]
        print(f"| {image} | {fmt(c['first'])} | {fmt(c['cheap'])} (**{r['cheap']:.4f}×**) | "
              f"{fmt(c['full'])} ({r['full']:.3f}×) | {fmt(c['new-cmd'])} ({r['new-cmd']:.3f}×) |")
        print(f"| {image}, process wall | {fmt(w['first'])} | {fmt(w['cheap'])} | "
              f"{fmt(w['full'])} | {fmt(w['new-cmd'])} |")
    return out


def inside(args):
    results = {}
    for image in args.images:
        n = args.debian_runs if image == "debian" else args.runs
        results[image] = [bake_round(args, image, i) for i in range(n)]
    out = report(results)
    out["config"] = {"memory_mib": args.memory, "vcpus": 1, "readiness": "listener",
                     "lab": os.environ.get("SM_LAB") == "1"}
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print("\n" + text)


def main():
    ap = argparse.ArgumentParser(description=__doc__ or "bake pipeline benchmark")
    ap.add_argument("--build-dir", required=True, help="CMake build dir with sm-bake, the "
                    "worker and guest-agent built (ninja sm-bake supermachine-worker guest-agent)")
    ap.add_argument("--work", help="work dir (default BUILD/bench-bake; must be under the "
                    "build dir to be writable inside the lab)")
    ap.add_argument("--images", default="busybox,debian")
    ap.add_argument("--runs", type=int, default=3, help="rounds for busybox")
    ap.add_argument("--debian-runs", type=int, default=2, help="rounds for debian")
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--debian-rootfs", help="a ready Debian tree with python3 (default: debootstrap)")
    ap.add_argument("--busybox", default="/bin/busybox", help="a static busybox")
    ap.add_argument("--kernel", help="guest vmlinux (default: kernel/build.sh's cached one)")
    ap.add_argument("--keep", action="store_true", help="keep each round's state dir")
    ap.add_argument("--timeout", type=int, default=3600, help="lab run timeout, s")
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.work = os.path.abspath(args.work or os.path.join(args.build_dir, "bench-bake"))
    args.images = [i for i in args.images.split(",") if i]
    for i in args.images:
        if i not in IMAGES:
            ap.error(f"--images: unknown image '{i}' (known: {', '.join(IMAGES)})")
    args.worker = os.path.join(args.build_dir, "worker", "supermachine-worker")
    args.agent = os.path.join(args.build_dir, "guest-agent", "guest-agent")
    if not args.kernel:
        kdir = subprocess.run([os.path.join(SOURCE, "kernel", "build.sh"), "--print-dir"],
                              capture_output=True, text=True).stdout.strip()
        args.kernel = os.path.join(kdir, "vmlinux") if kdir else ""
    for what, path in [("sm-bake", os.path.join(args.build_dir, "daemon", "bake", "sm-bake")),
                       ("worker", args.worker), ("guest-agent", args.agent),
                       ("kernel", args.kernel)]:
        if not path or not os.path.exists(path):
            sys.exit(f"bench_bake: {what} not found at '{path}' (build it; kernel: kernel/build.sh)")
    os.makedirs(args.work, exist_ok=True)
    args.layouts = {}
    if "busybox" in args.images:
        args.layouts["busybox"] = build_layout(
            "busybox", busybox_rootfs(args.work, args.busybox), "hello from busybox\n", args.work)
    if "debian" in args.images:
        args.layouts["debian"] = build_layout(
            "debian", debian_rootfs(args.work, args.debian_rootfs), "hello from debian\n",
            args.work)

    if args.inside or os.environ.get("SM_LAB") == "1":
        inside(args)
        return
    argv = [os.path.join(SOURCE, "tests", "lab", "run"), "--timeout", str(args.timeout),
            "--share", args.work, "--", sys.executable, os.path.abspath(__file__), "--inside",
            "--build-dir", args.build_dir, "--work", args.work, "--images",
            ",".join(args.images), "--runs", str(args.runs), "--debian-runs",
            str(args.debian_runs), "--memory", str(args.memory), "--kernel", args.kernel]
    if args.debian_rootfs:
        argv += ["--debian-rootfs", args.debian_rootfs]
    if args.keep:
        argv.append("--keep")
    if args.json:
        argv += ["--json", os.path.abspath(args.json)]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
