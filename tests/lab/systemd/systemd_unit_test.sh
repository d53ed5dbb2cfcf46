#!/usr/bin/env bash
# systemd_unit_test.sh SOURCE_DIR BUILD_DIR WORK_DIR — deploy/supermachined.service under a real
# systemd (Debian 12's 252) as PID 1, with the worker jail and per-worker cgroups, around real
# guests. Runs as root inside tests/lab/run (it needs /dev/kvm that boots guests, cgroup2, and
# root to mount and to boot a container).
#
# The container: `systemd-nspawn --boot` (package systemd-container) of a writable overlay over
# this machine's own read-only / (the lab's 9p root), so the systemd, libraries and tools are
# the host's; /dev/kvm and BUILD_DIR are bound in. Into its /etc go the shipped unit files
# (copied unchanged), a drop-in that only points ExecStart at BUILD_DIR's daemon (the test must
# exercise this build, not whatever /usr/local/bin holds), the drop-in docs/operations.md gives
# for worker cgroups, the daemon's config, and a oneshot service that runs this script again
# with --inner once the container has booted; its exit status becomes the container's
# (SuccessAction=/FailureAction=exit), which systemd-nspawn returns.
#
# Inside (--inner), against the unit: start (Type=notify) with "worker_jail": true and a cgroup
# parent; `smctl run -d` of the demo busybox image (bake + restore); exec; the worker is PID 1
# of its own PID namespace, in another mount namespace than the daemon, in its cgroup below the
# parent with memory.max set; `kill -9` of the daemon: systemd restarts it (Restart=on-failure)
# and KillMode=process left the worker, which is re-adopted (same pid) and answers exec;
# `systemctl restart` (a clean stop): the VM is released and its worker gone, as
# docs/operations.md says; socket activation through deploy/supermachined.socket; a second VM
# released with `smctl rm` has its cgroup removed.
set -uo pipefail

fail() { echo "systemd_unit_test: FAIL: $*" >&2; exit 1; }
say() { echo "systemd_unit_test: $*"; }

# ----------------------------------------------------------------------------------------------
# Inside the container, as the oneshot sm-lab-check.service.
inner() {
  local build=$1 image=$2 parent=$3
  local rc=0
  # Each failing check ends the container with status 1 and the service's journal.
  ifail() {
    echo "systemd_unit_test: FAIL (inside): $*"
    echo "--- journalctl -u supermachined (last 40 lines)"
    journalctl -u supermachined --no-pager -n 40
    for log in /var/lib/supermachine/vms/*/worker.log; do
      [ -s "$log" ] && { echo "--- $log"; tail -n 5 "$log"; }
    done
    exit 1
  }
  smctl() { timeout --kill-after=10 400 "$build/cli/smctl" --timeout 390 "$@"; }
  mainpid() { systemctl show -p MainPID --value supermachined; }
  worker_pid_of() {  # the pid the daemon tracks (with the jail: the keeper) of VM $1
    smctl ps --json | python3 -c '
import json, sys
for v in json.load(sys.stdin).get("vms", []):
    if v["id"] == sys.argv[1]: print(v["worker_pid"])' "$1"
  }
  gone() { ! kill -0 "$1" 2>/dev/null; }
  wait_for() {  # wait_for SECONDS CMD...: polls CMD every 0.5 s
    local until=$(($(date +%s) + $1)); shift
    until "$@"; do
      [ "$(date +%s)" -lt "$until" ] || return 1
      sleep 0.5
    done
  }
  restarted() { local n; n=$(mainpid); [ "$n" != 0 ] && [ "$n" != "$1" ] &&
    [ "$(systemctl is-active supermachined)" = active ]; }

  local t0=$SECONDS
  say "inside: systemd $(systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($(cat /proc/1/comm))"
  systemctl start supermachined || ifail "systemctl start supermachined failed"
  say "inside: supermachined.service started (READY=1) in $((SECONDS - t0)) s"
  journalctl -u supermachined --no-pager | grep -q 'msg="worker sandbox" settings="jail on' ||
    ifail "the daemon did not log 'jail on' at start"
  local uids=0
  journalctl -u supermachined --no-pager | grep -q 'msg="worker sandbox".*per-VM uids' && uids=1

  # --- a VM: bake on first use, restore, exec
  local vm1 out
  t0=$SECONDS
  vm1=$(smctl run -d "$image" | head -1) && [ -n "$vm1" ] || ifail "smctl run -d $image failed"
  say "inside: smctl run -d (bake + restore) gave VM $vm1 in $((SECONDS - t0)) s"
  out=$(smctl exec "$vm1" -- echo hello-jailed) || ifail "smctl exec $vm1 failed"
  [ "$out" = hello-jailed ] || ifail "exec printed '$out'"

  # --- the jail: keeper (tracked pid) -> worker, PID 1 of its own PID namespace
  local main keeper worker nspid
  main=$(mainpid)
  keeper=$(worker_pid_of "$vm1")
  [ -n "$keeper" ] && [ "$keeper" != 0 ] || ifail "no worker pid for $vm1 in smctl ps --json"
  worker=$(cat /proc/"$keeper"/task/*/children | tr ' ' '\n' | grep . | head -1)
  [ -n "$worker" ] || ifail "the keeper $keeper has no child (is the jail on?)"
  nspid=$(awk '/^NSpid:/ {print NF - 1, $NF}' /proc/"$worker"/status)
  [ "$nspid" = "2 1" ] || ifail "worker $worker NSpid is '$nspid', want 2 levels ending in 1"
  [ "$(readlink /proc/"$worker"/ns/mnt)" != "$(readlink /proc/"$main"/ns/mnt)" ] ||
    ifail "worker $worker shares the daemon's mount namespace"
  if [ "$uids" = 1 ]; then
    [ "$(awk '/^Uid:/ {print $2}' /proc/"$worker"/status)" != 0 ] ||
      ifail "per-VM uids are on but worker $worker runs as uid 0"
  fi
  # --- its cgroup, below the parent the drop-in made writable
  local cg="$parent/sm-$vm1"
  grep -qx "0::${cg#/sys/fs/cgroup}" /proc/"$worker"/cgroup ||
    ifail "worker $worker is in $(cat /proc/"$worker"/cgroup), not ${cg#/sys/fs/cgroup}"
  [ "$(cat "$cg/memory.max")" != max ] || ifail "$cg/memory.max is not set"
  say "inside: worker $worker (keeper $keeper) is jailed: NSpid '$nspid', own mount ns," \
      "uid $(awk '/^Uid:/ {print $2}' /proc/"$worker"/status), cgroup ${cg#/sys/fs/cgroup}" \
      "memory.max $(cat "$cg/memory.max")"

  # --- a crash: systemd restarts the daemon, KillMode=process kept the worker, re-adopted
  t0=$SECONDS
  kill -9 "$main"
  wait_for 90 restarted "$main" || ifail "systemd did not restart supermachined after kill -9"
  gone "$keeper" && ifail "the worker $keeper died with the daemon (KillMode=process?)"
  [ "$(worker_pid_of "$vm1")" = "$keeper" ] || ifail "VM $vm1 was not re-adopted with pid $keeper"
  journalctl -u supermachined --no-pager | grep -q "msg=\"re-adopted VM\" vm=$vm1" ||
    ifail "no 're-adopted VM' line for $vm1"
  out=$(smctl exec "$vm1" -- echo hello-again) || ifail "exec in the re-adopted VM failed"
  [ "$out" = hello-again ] || ifail "exec after re-adoption printed '$out'"
  say "inside: kill -9 of the daemon: restarted by systemd, VM $vm1 re-adopted (worker $keeper)" \
      "and answers exec, in $((SECONDS - t0)) s"

  # --- a clean restart: SIGTERM releases every VM (docs/operations.md, "Stopping")
  t0=$SECONDS
  systemctl restart supermachined || ifail "systemctl restart supermachined failed"
  wait_for 30 gone "$keeper" || ifail "worker $keeper still runs after a clean restart"
  smctl ps -a | grep -q "^$vm1 .* released " || ifail "VM $vm1 is not 'released' after a restart"
  say "inside: systemctl restart: VM $vm1 released, worker gone, in $((SECONDS - t0)) s"
  # The re-adopted VM's cgroup goes with it too (WorkerLauncher::Adopt knows it again).
  [ ! -d "$cg" ] || ifail "$cg stayed after its re-adopted VM was released"

  # --- socket activation: systemd owns the socket, the first connection starts the service
  systemctl stop supermachined || ifail "systemctl stop supermachined failed"
  systemctl start supermachined.socket || ifail "systemctl start supermachined.socket failed"
  [ "$(systemctl is-active supermachined)" != active ] || ifail "the service runs before any connection"
  t0=$SECONDS
  smctl health >/dev/null || ifail "smctl health through the activated socket failed"
  [ "$(systemctl is-active supermachined)" = active ] || ifail "the socket did not start the service"
  [ "$(stat -c %a:%G /run/supermachine/supermachined.sock)" = 660:supermachine ] ||
    ifail "socket is $(stat -c %a:%G /run/supermachine/supermachined.sock), want 660:supermachine"

  # --- a second VM (restore from the cached snapshot), released: its cgroup goes
  local vm2 cg2
  vm2=$(smctl run -d "$image" | head -1) && [ -n "$vm2" ] || ifail "second smctl run failed"
  cg2="$parent/sm-$vm2"
  [ -d "$cg2" ] || ifail "no cgroup $cg2 for VM $vm2"
  smctl rm "$vm2" >/dev/null || ifail "smctl rm $vm2 failed"
  wait_for 30 test ! -d "$cg2" || ifail "$cg2 stayed after smctl rm $vm2"
  say "inside: socket activation started the service in $((SECONDS - t0)) s; VM $vm2 released," \
      "its cgroup removed"
  systemctl stop supermachined supermachined.socket
  say "inside: PASS"
}

if [ "${1:-}" = --inner ]; then
  shift
  inner "$@"
  exit
fi

# ----------------------------------------------------------------------------------------------
# Outside: in the lab, as root.
src=${1:?usage: systemd_unit_test.sh SOURCE_DIR BUILD_DIR WORK_DIR}
build=${2:?}
work=${3:?}
start=$SECONDS
[ "$(id -u)" -eq 0 ] || fail "needs root (run it through tests/lab/run, whose emulated lab runs it as root)"
command -v systemd-nspawn >/dev/null ||
  fail "systemd-nspawn is missing: apt-get install systemd-container (deploy/packages.txt)"
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] ||
  fail "/sys/fs/cgroup is not cgroup v2 here: the container's systemd and worker cgroups need it"
[ -e /dev/kvm ] || fail "no /dev/kvm"
for b in daemon/supermachined cli/smctl worker/supermachine-worker guest-agent/guest-agent; do
  [ -x "$build/$b" ] || fail "$build/$b is missing: ninja -C $build supermachined smctl supermachine-worker guest-agent"
done
kernel_dir=$("$src/kernel/build.sh" --print-dir 2>/dev/null) && [ -f "$kernel_dir/vmlinux" ] ||
  fail "the guest kernel is not built: run kernel/build.sh"

mkdir -p "$work"
image=$(TMPDIR=/tmp "$src/deploy/demo-image/build.sh" "$work/demo-image" demo) ||
  fail "building the demo image failed (deploy/demo-image/build.sh)"

# The container's root: a writable overlay (upper on tmpfs) over this machine's /. The lab
# loads only the modules it needs, so overlay may still be missing.
modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || fail "no overlay filesystem (modprobe overlay failed)"
tmp=$(mktemp -d /tmp/sm-systemd-lab.XXXXXX) || fail "mktemp"
root=$tmp/root
mkdir -p "$root" "$tmp/upper" "$tmp/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$root" ||
  fail "cannot mount an overlay over / at $root"
trap 'umount -l "$root" 2>/dev/null; rm -rf "$tmp"' EXIT

etc=$root/etc/systemd/system
install -m 0644 "$src/deploy/supermachined.service" "$src/deploy/supermachined.socket" "$etc/" ||
  fail "cannot install the unit files"
mkdir -p "$etc/supermachined.service.d"
# Only the binary's path differs from an installed system: this build's daemon.
cat >"$etc/supermachined.service.d/10-build-dir.conf" <<UNIT
[Service]
ExecStart=
ExecStart=$build/daemon/supermachined \$SUPERMACHINED_ARGS
UNIT
# Worker cgroups: the drop-in docs/operations.md gives ("Worker cgroups under the unit").
parent=/sys/fs/cgroup/supermachine
cat >"$etc/supermachined.service.d/20-cgroups.conf" <<'UNIT'
[Service]
ExecStartPre=+/bin/sh -c 'mkdir -p /sys/fs/cgroup/supermachine && echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control && echo "+memory +cpu +pids" >/sys/fs/cgroup/supermachine/cgroup.subtree_control'
UNIT
mkdir -p "$root/etc/supermachine"
cat >"$root/etc/supermachine/supermachined.json" <<JSON
{
  "kernel": "$kernel_dir/vmlinux",
  "guest_agent": "$build/guest-agent/guest-agent",
  "worker_binary": "$build/worker/supermachine-worker",
  "worker_jail": true,
  "worker_cgroup_parent": "$parent",
  "metrics_address": "127.0.0.1:0",
  "balloon_idle_after_s": 0,
  "default_pool": {"min": 0, "max": 4, "acquire_timeout_s": 600}
}
JSON
echo 'SUPERMACHINED_ARGS="--config /etc/supermachine/supermachined.json"' \
  >"$root/etc/default/supermachined"
# The boot target: only sysinit and the check (no getty, no services of the host image).
cat >"$etc/sm-lab.target" <<'UNIT'
[Unit]
Description=supermachine systemd lab test
Requires=sm-lab-check.service
After=sm-lab-check.service
UNIT
cat >"$etc/sm-lab-check.service" <<UNIT
[Unit]
Description=supermachine systemd lab test checks
# Its end ends the container, with its exit status (1 on a start timeout).
SuccessAction=exit
FailureAction=exit
FailureActionExitStatus=1
[Service]
Type=oneshot
TimeoutStartSec=420
StandardOutput=journal+console
StandardError=journal+console
ExecStart=$src/tests/lab/systemd/systemd_unit_test.sh --inner $build $image $parent
UNIT

say "booting systemd in systemd-nspawn (setup took $((SECONDS - start)) s)"
boot=$SECONDS
# --register=no --keep-unit: there is no machined or systemd outside to ask for a scope.
rc=0
timeout --kill-after=20 480 systemd-nspawn --quiet --directory="$root" --boot \
  --register=no --keep-unit --link-journal=no --bind=/dev/kvm --bind="$build" \
  --bind-ro="$src" -- systemd.unit=sm-lab.target systemd.show_status=error || rc=$?
say "the container ended with status $rc after $((SECONDS - boot)) s (whole test $((SECONDS - start)) s)"
case "$rc" in
  0) say "PASS" ;;
  124|137) fail "the container did not end within 480 s" ;;
  *) fail "the checks inside the container failed (exit $rc; their output above)" ;;
esac
