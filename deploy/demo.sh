#!/usr/bin/env bash
# deploy/demo.sh — the main job, as far as the product goes today: boot a microVM with our own
# VMM (supermachine-worker), our guest kernel, and our guest-agent as PID 1 on a root
# filesystem converted to squashfs by our own layer converter; print what the guest reported
# and the timings. Run after deploy/setup.sh.
#
# On a host with hardware virtualization it boots directly. Elsewhere (PVM, or no /dev/kvm) it
# says so and runs the identical boot inside the emulated KVM lab (tests/lab/run); figures are
# then emulated and not representative.
#
#   ./deploy/demo.sh [--vcpus N] [--mem-mib M]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SM_BUILD_DIR:-$root/build}
work=${SM_DEMO_DIR:-${SM_STATE_DIR:-/var/lib/supermachine}/demo}
vcpus=2
mem=256
while [ $# -gt 0 ]; do
  case "$1" in
    --vcpus) vcpus=$2; shift ;;
    --mem-mib) mem=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "demo.sh: $*" >&2; exit 1; }
worker=$build/worker/supermachine-worker
agent=$build/guest-agent/guest-agent
convert=$build/daemon/layer/sm-layer-convert
for b in "$worker" "$agent" "$convert"; do
  [ -x "$b" ] || die "$b is missing: run ./deploy/setup.sh first"
done
kernel_dir=$("$root/kernel/build.sh" --print-dir) ||
  die "the guest kernel is not built: run ./kernel/build.sh (or ./deploy/setup.sh)"

if [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
  mode="hardware KVM"
  note=""
else
  mode="emulated KVM lab"
  note=" (emulated, not representative)"
  echo "demo: this host's /dev/kvm is not hardware virtualization (PVM or absent); running the" \
       "same boot inside the emulated KVM lab (tests/lab/run), so timings are not representative."
fi

mkdir -p "$work"
# 1. A root filesystem: the guest-agent as /init plus the mount points it needs (the squashfs
#    root is read-only). Written as a tar, the same form an OCI layer has.
python3 - "$agent" "$work/rootfs.tar" <<'PY'
import sys, tarfile, io
agent, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for d in ("dev", "proc", "sys", "tmp", "run", "etc"):
        info = tarfile.TarInfo(d); info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)
    hostname = b"supermachine-demo\n"
    info = tarfile.TarInfo("etc/hostname"); info.size = len(hostname); info.mode = 0o644
    t.addfile(info, io.BytesIO(hostname))
    t.add(agent, arcname="init")
PY

# 2. Convert it with the same in-process converter the bake uses (libarchive → libsquashfs).
t0=$(date +%s.%N)
"$convert" "$work/rootfs.tar" "$work/rootfs.sqfs.new" >/dev/null
mv -f "$work/rootfs.sqfs.new" "$work/rootfs.sqfs"
t1=$(date +%s.%N)

# 3. Boot it.
cmdline="console=ttyS0 reboot=t panic=-1 quiet root=/dev/vda rootfstype=squashfs ro init=/init"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
t2=$(date +%s.%N)
set +e
"$root/tests/lab/run" --timeout 300 -- "$worker" --kernel "$kernel_dir/vmlinux" \
  --vcpus "$vcpus" --mem-mib "$mem" --disk "$work/rootfs.sqfs,ro" --cmdline "$cmdline" \
  >"$out" 2>&1
rc=$?
set -e
t3=$(date +%s.%N)

marker=$(grep -a 'supermachine-guest-agent: init' "$out" | tail -1 | tr -d '\r')
if [ -z "$marker" ] || [ "$rc" -ne 0 ]; then
  echo "demo: the guest did not report (exit $rc); last output:" >&2
  tail -30 "$out" >&2
  exit 1
fi
echo "demo: mode: $mode"
echo "demo: guest said: $marker"
printf 'demo: convert rootfs to squashfs: %.0f ms\n' "$(echo "($t1 - $t0) * 1000" | bc)"
printf 'demo: boot to guest init and back, wall: %.2f s%s\n' "$(echo "$t3 - $t2" | bc)" "$note"
echo "demo: ok"
