#!/usr/bin/env bash
# deploy/quickstart.sh — README's first command. On a fresh Debian 12 machine it installs
# the packages, builds and installs supermachine and the guest kernel (deploy/setup.sh), then
# runs the main job (deploy/demo.sh): starts supermachined, builds a small busybox-httpd image
# locally as an OCI layout, `smctl run -d -p 8080:80 oci-layout:…` (baked on first use),
# fetches and prints the page with the timings, runs the image again to show the cached
# path, and releases the VMs it started.
#
# Without hardware virtualization behind /dev/kvm (PVM, or no /dev/kvm) it says so and runs
# the identical flow inside the emulated KVM lab (tests/lab/run); figures are then marked
# "emulated, not representative".
#
#   ./deploy/quickstart.sh [--no-setup] [--state-dir DIR] [--port N] [--keep]
#                          [--lab-timeout S] [-- SETUP_ARGS...]
#
#   --no-setup       skip deploy/setup.sh (packages, build, kernel and install already done)
#   --state-dir DIR  a private supermachined with its state, log and pid under DIR (a fresh
#                    directory gives a clean run, as the CI job does); see deploy/demo.sh
#   --port N         host port for the page (default 8080; 0 picks a free one)
#   --keep           leave the VMs and the daemon running (hardware KVM only; the lab ends)
#   --lab-timeout S  bound of the whole emulated run (default 1500)
#   SETUP_ARGS       passed to deploy/setup.sh (e.g. -- --no-apt --prefix /opt/sm)
#
# Environment: SM_BUILD_DIR (default <repo>/build), SM_SETUP_TIMEOUT (default 10800 s).
# Exit status: 0 when the page came back; otherwise non-zero with a line saying what failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export SM_BUILD_DIR=${SM_BUILD_DIR:-$root/build}
setup=1
state=""
port=8080
keep=0
lab_timeout=1500
setup_args=()

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-setup) setup=0 ;;
    --state-dir) state=${2:?--state-dir needs a directory}; shift ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --keep) keep=1 ;;
    --lab-timeout) lab_timeout=${2:?--lab-timeout needs seconds}; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; setup_args=("$@"); break ;;
    *) echo "quickstart.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$port" in ''|*[!0-9]*) echo "quickstart.sh: --port takes a number" >&2; exit 2 ;; esac

say() { printf '\n==> %s\n' "$*"; }
die() { echo "quickstart: FAILED: $*" >&2; exit 1; }

# 1. Packages, build, guest kernel, install.
if [ "$setup" = 1 ]; then
  say "setup (deploy/setup.sh: packages, build, guest kernel, install; the first run takes a while)"
  rc=0
  timeout --kill-after=30 "${SM_SETUP_TIMEOUT:-10800}" "$here/setup.sh" "${setup_args[@]}" || rc=$?
  [ "$rc" -ne 124 ] || die "deploy/setup.sh did not finish within ${SM_SETUP_TIMEOUT:-10800} s"
  [ "$rc" -eq 0 ] || die "deploy/setup.sh failed (exit $rc): its output above says where"
fi

# 2. Which KVM this host has: the same test as tests/lab/run and the daemon's Health.
hardware=0
if [ -e /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
  hardware=1
fi

demo_args=(--port "$port")
if [ "$hardware" = 1 ]; then
  [ "$keep" = 1 ] && demo_args+=(--keep)
  [ -n "$state" ] && demo_args+=(--state-dir "$state")
  say "the main job (deploy/demo.sh) on hardware KVM"
  exec "$here/demo.sh" "${demo_args[@]}"
fi

# 3. No hardware virtualization: the same flow inside the KVM lab.
if [ ! -e /dev/kvm ]; then why="there is no /dev/kvm"
elif [ -d /sys/module/kvm_pvm ]; then why="its /dev/kvm is PVM (paravirtualized, kvm_pvm)"
else why="the CPU shows no vmx/svm flag"; fi
echo "quickstart: this host has no hardware virtualization ($why), so the same flow runs" \
     "inside the emulated KVM lab (tests/lab/run): slower, figures emulated, not representative."
[ "$keep" = 0 ] || echo "quickstart: --keep has no effect in the lab: its VMs end with it"
# The image is built here (the lab sees the host's / read-only); the daemon's state lives in
# the lab's own /tmp, because its Unix sockets need a local filesystem.
if [ -z "$state" ]; then
  if [ "$(id -u)" -eq 0 ]; then state=/var/lib/supermachine/quickstart
  else state=${XDG_STATE_HOME:-$HOME/.local/state}/supermachine/quickstart; fi
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
image=$(timeout 300 "$here/demo-image/build.sh" "$state/demo-image" demo) ||
  die "building the demo image failed (deploy/demo-image/build.sh)"
say "the main job (deploy/demo.sh) inside the emulated KVM lab (up to ${lab_timeout} s)"
rc=0
SM_DEMO_STEP_TIMEOUT=${SM_DEMO_STEP_TIMEOUT:-900} \
  "$root/tests/lab/run" --timeout "$lab_timeout" -- \
  "$here/demo.sh" --emulated --state-dir /tmp/sm-quickstart --image "$image" "${demo_args[@]}" ||
  rc=$?
case "$rc" in
  0) ;;
  124) die "the emulated run did not finish within ${lab_timeout} s (raise --lab-timeout)" ;;
  125) die "the KVM lab itself failed (its message is above; tests/lab/README.md)" ;;
  *) die "the main job failed inside the lab (exit $rc; its message is above)" ;;
esac
