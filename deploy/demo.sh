#!/usr/bin/env bash
# deploy/demo.sh — the main job, end to end, on a host whose /dev/kvm boots guests (hardware
# KVM, or inside the KVM lab): start supermachined, `smctl run -d -p 8080:80` a locally built
# busybox-httpd OCI image (the daemon bakes it on first use), fetch the page through the
# forwarded port, then run the same image again to show the cached path, and clean up.
# deploy/quickstart.sh is the newcomer's entry point: it runs setup, picks hardware KVM or the
# lab, and calls this script.
#
#   deploy/demo.sh [--state-dir DIR] [--image REF] [--port N] [--emulated] [--keep]
#
#   --state-dir DIR  run a private supermachined in the background with its store, snapshots,
#                    VMs, log (supermachined.log) and pid (supermachined.pid) under DIR.
#                    Default: the system service (systemctl) when systemd is PID 1, we are
#                    root and the unit is installed; otherwise a background daemon under
#                    /var/lib/supermachine/quickstart (root) or ~/.local/state/supermachine/quickstart
#   --image REF      image to run (default: build the demo image into the state dir)
#   --port N         host port for the guest's port 80 (default 8080; 0 picks a free one)
#   --emulated       mark every figure "emulated, not representative" (the lab sets this)
#   --keep           leave the VMs and a background daemon running (default: clean up)
#
# Environment: SM_BUILD_DIR (default <repo>/build) holds the binaries;
# SM_DEMO_STEP_TIMEOUT (seconds, default 900) bounds each step that waits on a guest.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SM_BUILD_DIR:-$root/build}
state=""
image=""
port=8080
emulated=0
keep=0
step_timeout=${SM_DEMO_STEP_TIMEOUT:-900}

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) state=${2:?--state-dir needs a directory}; shift ;;
    --image) image=${2:?--image needs a ref}; shift ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --emulated) emulated=1 ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "demo: $*"; }
# A command that fails outside a check still ends the run with a line saying which, and
# with status 1: 124 is reserved for "the lab timed out" in quickstart.sh.
set -E
trap 'rc=$?; echo "demo: FAILED: line $LINENO: $BASH_COMMAND (exit $rc)" >&2; exit 1' ERR
die() { echo "demo: FAILED: $*" >&2; exit 1; }
note=""
[ "$emulated" = 1 ] && note=" (emulated, not representative)"
now_ms() { date +%s%3N; }
secs() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }

# --- binaries, kernel, KVM ------------------------------------------------------------------
daemon_bin=$build/daemon/supermachined
smctl_bin=$build/cli/smctl
worker_bin=$build/worker/supermachine-worker
agent_bin=$build/guest-agent/guest-agent
for b in "$daemon_bin" "$smctl_bin" "$worker_bin" "$agent_bin"; do
  [ -x "$b" ] || die "$b is missing: build first (./deploy/setup.sh, or set SM_BUILD_DIR)"
done
kernel_dir=$("$root/kernel/build.sh" --print-dir 2>/dev/null) && [ -f "$kernel_dir/vmlinux" ] ||
  die "the guest kernel is not built: run ./kernel/build.sh (or ./deploy/setup.sh)"
[ -e /dev/kvm ] ||
  die "no /dev/kvm here: VMs need KVM; run ./deploy/quickstart.sh, which uses the emulated lab"
[ -r /dev/kvm ] && [ -w /dev/kvm ] ||
  die "no read/write access to /dev/kvm: add yourself to its group ($(stat -c %G /dev/kvm)): sudo usermod -aG $(stat -c %G /dev/kvm) \$USER, log in again; or run as root"
for t in curl timeout python3; do
  command -v "$t" >/dev/null || die "$t is missing: apt-get install ${t/timeout/coreutils}"
done

# --- where the daemon runs ------------------------------------------------------------------
mode=background
if [ -z "$state" ]; then
  if [ -d /run/systemd/system ] && [ "$(id -u)" -eq 0 ] &&
     systemctl cat supermachined.service >/dev/null 2>&1; then
    mode=systemd
    state=/var/lib/supermachine
  elif [ "$(id -u)" -eq 0 ]; then
    state=/var/lib/supermachine/quickstart
  else
    state=${XDG_STATE_HOME:-$HOME/.local/state}/supermachine/quickstart
  fi
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
if [ "$mode" = systemd ]; then
  socket=/run/supermachine/supermachined.sock
  snapshots=/var/lib/supermachine/snapshots
else
  socket=$state/supermachined.sock
  snapshots=$state/snapshots
  # Unix socket paths are limited to 107 bytes, and each VM's vsock socket lives deeper.
  [ ${#state} -le 70 ] || die "--state-dir '$state' is too long for Unix sockets (keep it under 70 bytes)"
fi
# smctl with both bounds: its own RPC deadline and a kill if the process itself stalls.
smctl() { timeout --kill-after=10 "$(($1 + 10))" "$smctl_bin" --socket "$socket" --timeout "$1" "${@:2}"; }

# --- cleanup: whatever we started goes, even on failure or Ctrl-C ---------------------------
vms=()
started_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM ERR
  if [ "$keep" = 0 ]; then
    for vm in "${vms[@]}"; do
      smctl 60 rm "$vm" >/dev/null 2>&1 || echo "demo: could not release VM $vm (smctl rm $vm)" >&2
    done
    if [ -n "$started_pid" ]; then
      kill -TERM "$started_pid" 2>/dev/null || true
      for _ in $(seq 1 120); do kill -0 "$started_pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$started_pid" 2>/dev/null; then
        echo "demo: supermachined (pid $started_pid) did not stop within 60 s; killing it" >&2
        kill -KILL "$started_pid" 2>/dev/null || true
      fi
      rm -f "$state/supermachined.pid"
    fi
  fi
  if [ "$rc" -ne 0 ] && [ -f "$state/supermachined.log" ]; then
    echo "demo: last lines of $state/supermachined.log:" >&2
    tail -25 "$state/supermachined.log" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "KVM: $([ "$emulated" = 1 ] && echo "emulated KVM lab (nested, software CPU)" || echo "hardware")"

# --- 1. the image ---------------------------------------------------------------------------
if [ -z "$image" ]; then
  image=$(timeout 300 "$root/deploy/demo-image/build.sh" "$state/demo-image" demo) ||
    die "building the demo image failed (deploy/demo-image/build.sh)"
fi
say "image: $image"

# --- 2. the daemon --------------------------------------------------------------------------
if [ "$mode" = systemd ]; then
  say "daemon: systemd service supermachined (journalctl -u supermachined)"
  conf=/etc/supermachine/supermachined.json
  if [ ! -f "$conf" ]; then
    mkdir -p /etc/supermachine
    python3 - "$conf" "$kernel_dir/vmlinux" "$agent_bin" <<'PY'
import json, sys
json.dump({"kernel": sys.argv[2], "guest_agent": sys.argv[3],
           "default_pool": {"min": 0, "max": 16, "acquire_timeout_s": 300}},
          open(sys.argv[1], "w"), indent=2)
PY
    [ -f /etc/default/supermachined ] ||
      echo "SUPERMACHINED_ARGS=\"--config $conf\"" >/etc/default/supermachined
    wrote_config=1
    say "wrote $conf (kernel and guest agent for bakes) and /etc/default/supermachined"
  fi
  grep -q -- "--config" /etc/default/supermachined 2>/dev/null ||
    say "note: /etc/default/supermachined has no --config; bakes need kernel and guest_agent set"
  systemctl daemon-reload
  # A daemon already running from before the config was written must read it: restart.
  action=start
  [ -n "${wrote_config:-}" ] && action=restart
  timeout 60 systemctl enable supermachined >/dev/null 2>&1 &&
    timeout 120 systemctl "$action" supermachined >/dev/null 2>&1 ||
    die "systemctl $action supermachined failed: see journalctl -u supermachined"
else
  pidfile=$state/supermachined.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
     grep -q supermachined "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
    say "daemon: reusing supermachined pid $(cat "$pidfile") (log $state/supermachined.log)"
  else
    python3 - "$state/supermachined.json" "$state" "$socket" "$kernel_dir/vmlinux" \
      "$agent_bin" "$worker_bin" <<'PY'
import json, sys
out, state, socket, kernel, agent, worker = sys.argv[1:]
json.dump({"state_dir": state, "socket": socket, "metrics_address": "127.0.0.1:0",
           "kernel": kernel, "guest_agent": agent, "worker_binary": worker,
           # Restores under the emulated lab take tens of seconds; never the 30 s default.
           "default_pool": {"min": 0, "max": 4, "acquire_timeout_s": 600}},
          open(out, "w"), indent=2)
PY
    setsid "$daemon_bin" --config "$state/supermachined.json" \
      >"$state/supermachined.log" 2>&1 </dev/null &
    started_pid=$!
    echo "$started_pid" >"$pidfile"
    say "daemon: started supermachined pid $started_pid (log $state/supermachined.log," \
        "pid $pidfile, config $state/supermachined.json)"
  fi
fi
# Under the emulated lab a first start (gRPC, SQLite, pools) takes tens of seconds.
start_deadline=$(($(now_ms) + 300 * 1000))
until smctl 60 version >/dev/null 2>&1; do
  if [ -n "$started_pid" ] && ! kill -0 "$started_pid" 2>/dev/null; then
    die "supermachined exited at start"
  fi
  [ "$(now_ms)" -lt "$start_deadline" ] || die "supermachined does not answer on $socket after 300 s"
  sleep 1
done
say "daemon: serving on $socket ($(($(now_ms) - start_deadline + 300 * 1000)) ms after start)"
smctl 60 health | sed 's/^/demo:   /' || true

# --- 3. smctl run: bake on first use, restore, forward the port -----------------------------
run_detached() {  # run_detached HOST_PORT -> sets vm_id, host_port, run_ms
  local out err t0 t1
  out=$(mktemp) err=$(mktemp)
  t0=$(now_ms)
  local rc=0
  smctl "$step_timeout" run -d -p "$1:80" "$image" >"$out" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$err" >&2
    rm -f "$out" "$err"
    [ "$rc" -eq 124 ] && die "smctl run did not finish within ${step_timeout}s"
    die "smctl run failed (exit $rc)"
  fi
  t1=$(now_ms)
  vm_id=$(head -1 "$out")
  vms+=("$vm_id")
  host_port=$(sed -n 's/^port: [0-9.]*:\([0-9]*\) -> guest 80$/\1/p' "$err" | head -1)
  sed 's/^/demo:   /' "$err"
  rm -f "$out" "$err"
  [ -n "$host_port" ] || die "smctl run printed no forwarded port"
  run_ms=$((t1 - t0))
}
# fetch PORT OUTFILE -> sets ttfb_ms (curl's time to first byte), wait_ms (until it answered)
fetch() {
  local t0 deadline ttfb
  t0=$(now_ms)
  deadline=$((t0 + 180 * 1000))
  while :; do
    if ttfb=$(curl -sS --fail --max-time 30 -o "$2" -w '%{time_starttransfer}' \
                "http://127.0.0.1:$1/" 2>/dev/null); then
      break
    fi
    [ "$(now_ms)" -lt "$deadline" ] ||
      die "http://127.0.0.1:$1/ did not answer within 180 s (the guest's httpd; smctl logs ${vms[-1]})"
    sleep 0.5
  done
  wait_ms=$(($(now_ms) - t0))
  ttfb_ms=$(python3 -c "print(round(float('$ttfb') * 1000))")
}
snapshot_of() {  # snapshot name of a VM, from smctl ps --json
  smctl 60 ps --json | python3 -c "
import json, sys
for v in json.load(sys.stdin).get('vms', []):
    if v.get('id') == '$1': print(v.get('snapshot', ''))"
}
bake_line() {  # the bake's own timings, from the snapshot's metadata.json
  python3 - "$1" <<'PY' || true
import json, sys
t = json.load(open(sys.argv[1])).get("timings", {})
g = lambda k: int(t.get(k, 0))
print("%d %d %d %d %d %d" % (g("total_ms"), g("pull_ms") + g("convert_ms") + g("delta_ms"),
                             g("boot_ms"), g("ready_ms"), g("snapshot_ms"), g("resolve_ms")))
PY
}

say "step 1: smctl run -d -p $port:80 $image   (first use: the daemon bakes it)"
run_detached "$port"
vm1=$vm_id port1=$host_port run1_ms=$run_ms
snap=$(snapshot_of "$vm1")
[ -n "$snap" ] || die "VM $vm1 is not in smctl ps"
meta=$snapshots/$snap/metadata.json
[ -f "$meta" ] || die "the snapshot's $meta is missing"
state_file_before=$(stat -c '%i %Y' "$snapshots/$snap/state")
bake_total=0 bake_prep=0 bake_boot=0 bake_ready=0 bake_snap=0
read -r bake_total bake_prep bake_boot bake_ready bake_snap _ <<<"$(bake_line "$meta")" || true
fetch "$port1" "$state/page1.html"
wait1_ms=$wait_ms ttfb1_ms=$ttfb_ms
say "VM $vm1 (snapshot $snap) serves http://127.0.0.1:$port1/ :"
sed 's/^/    | /' "$state/page1.html"
grep -q "Hello from a supermachine microVM" "$state/page1.html" ||
  say "note: the page is not the demo image's (another --image?)"

# --- 4. the same image again: the snapshot is cached, only a restore ------------------------
say "step 2: smctl run -d -p 0:80 $image   (same image: cached snapshot)"
run_detached 0
vm2=$vm_id port2=$host_port run2_ms=$run_ms
fetch "$port2" "$state/page2.html"
cmp -s "$state/page1.html" "$state/page2.html" || die "the second VM served a different page"
if [ "$(stat -c '%i %Y' "$snapshots/$snap/state")" = "$state_file_before" ]; then
  cached="cache hit: no bake, no boot"
else
  cached="NOT cached: the snapshot was baked again"
fi
say "second run: $cached"
[ "$cached" = "cache hit: no bake, no boot" ] || die "the second run rebaked the image"

# --- 5. figures -----------------------------------------------------------------------------
say "timings$note:"
printf 'demo:   first smctl run (bake + restore + port): %s\n' "$(secs "$run1_ms")"
printf 'demo:     bake:    %s  (pull+convert %s, boot %s, ready %s, snapshot %s)\n' \
  "$(secs "$bake_total")" "$(secs "$bake_prep")" "$(secs "$bake_boot")" \
  "$(secs "$bake_ready")" "$(secs "$bake_snap")"
acq1=$((run1_ms > bake_total ? run1_ms - bake_total : 0))
printf 'demo:     acquire: %s  (restore a clone, agent handshake, port forward)\n' "$(secs "$acq1")"
printf 'demo:   first byte after smctl run returned: %s (curl time-to-first-byte %s)\n' \
  "$(secs "$wait1_ms")" "$(secs "$ttfb1_ms")"
printf 'demo:   second smctl run (cached snapshot, restore + port): %s\n' "$(secs "$run2_ms")"
say "VMs: $vm1 $vm2 ($([ "$keep" = 1 ] && echo "left running: smctl --socket $socket rm ..." || echo "released at exit"))"
say "ok"
