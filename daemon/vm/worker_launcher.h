// File: worker_launcher.h
// WorkerLauncher: the real VmLauncher. Spawns `supermachine-worker --restore DIR` as its own
// session (a daemon crash or Ctrl-C does not take the worker with it: re-adoption works from
// the journal), stdout/stderr into <run_dir>/worker.log, the guest console into
// <run_dir>/console.log; journals pid + start time, waits for the agent over the VM's hybrid
// vsock socket, sends Restored (fresh entropy, wall clock, VM id, machine-id, generation) and
// marks the VM running once the agent acknowledged it.
//
// Each VM's files live in <runtime_dir>/<vm id>/: vsock, control, console.log, worker.log,
// volumes/ (private copies of the snapshot's volume templates, volume_files.h). The directory
// stays after the VM ends (its logs); the sockets and volumes/ are removed.
//
// Adopt (daemon restart, daemon/vm/reconcile.h) takes over a journaled worker that is not our
// child: it is watched through /proc (pid + start time, its exit status is not ours to reap)
// and stopped with control `exit`, then SIGTERM/SIGKILL to its process group.
//
// With a uid pool (worker_uid_range, uid_pool.h) each jailed worker runs as a uid of its own,
// held from spawn until the worker is reaped; an adopted worker's uid is read back from its
// argv (`--uid=N`, reconcile.h WorkerUidOf) and held again, so it is not handed out twice.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "daemon/agent/agent_client.h"
#include "daemon/vm/process_table.h"
#include "daemon/vm/uid_pool.h"
#include "daemon/vm/vm_instance.h"
#include "worker/base/child_process.h"

namespace supermachine::vm {

struct WorkerLauncherOptions {
  std::string worker_binary;  // supermachine-worker
  std::string runtime_dir;    // per-VM directories go here
  VmJournal* journal = nullptr;  // not owned
  // Bound on a worker's own exit after control `exit` / SIGTERM before SIGKILL.
  absl::Duration stop_grace = absl::Seconds(2);
  // The worker sandbox (docs/seccomp.md, docs/security.md "Worker sandbox"); all off by default.
  std::string seccomp;  // "": the worker's default; else on, off or trap (--seccomp).
  bool jail = false;    // --jail-dir=<vm dir>/jail: namespaces, pivot_root, no capabilities.
  uint32_t jail_uid = 0;  // With jail: run each worker as this uid/gid after setup (0: stay root).
  uint32_t jail_gid = 0;
  // With jail, instead of jail_uid/jail_gid: each worker runs as its own uid from this pool,
  // gid the same number (worker_uid_range, docs/security.md); the lease is freed once the
  // worker is reaped. Null: no per-VM uids. A launch with every uid held fails
  // ResourceExhausted before anything is spawned.
  std::shared_ptr<UidPool> uid_pool;
  // cgroup v2 directory (memory, cpu, pids enabled in its cgroup.subtree_control); each worker
  // gets <cgroup_parent>/sm-<vm id> with limits from its VM's size. "": no cgroups.
  std::string cgroup_parent;
  // The worker's --serial-max-bytes: console.log is rotated to console.log.1 before it would
  // pass this (0: unbounded). Logs follows the rotation (console_log_reader.h).
  uint64_t console_max_bytes = uint64_t{8} << 20;
  // --ksm: guest RAM advised mergeable for KSM (docs/memory.md).
  bool ksm = false;
};

class WorkerVm final : public VmInstance {
 public:
  ~WorkerVm() override;
  const std::string& id() const override { return id_; }
  int pid() const override { return child_ ? child_->pid() : adopted_pid_; }
  const std::string& vsock_socket() const override { return vsock_; }
  const std::string& console_log() const override { return console_; }
  const agent::AgentClient* agent() const override { return agent_.get(); }
  std::string control_socket() const override { return control_; }
  std::optional<VmEnd> CheckExited() override;
  void Stop(absl::Duration grace) override;
  void Detach() override;

 private:
  friend class WorkerLauncher;
  WorkerVm(std::string id, std::string dir, base::ChildProcess child)
      : id_(std::move(id)), dir_(std::move(dir)), child_(std::move(child)) {}
  // An adopted worker (not our child).
  WorkerVm(std::string id, std::string dir, int pid, int64_t start_time)
      : id_(std::move(id)), dir_(std::move(dir)), adopted_pid_(pid), adopted_start_(start_time) {}
  // Asks the worker to exit over its control socket; false when it could not be told.
  bool SendExit(absl::Time deadline) const;
  void StopAdoptedLocked(absl::Duration grace);

  // A line for worker.log and errors saying what a signal or OOM kill means (SIGSYS: seccomp).
  std::string DescribeEnd(const VmEnd& end) const;
  // Sets kGuestOom when the cgroup counted an OOM kill; logs unusual ends to worker.log; removes
  // the cgroup.
  void ClassifyEnd(VmEnd* end) const;
  // The worker is gone (reaped, or an adopted one vanished from /proc): its uid may be reused.
  void ReleaseUidLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { uid_.Release(); }

  std::string id_;
  std::string dir_;
  std::string cgroup_;  // "" without cgroups
  std::optional<VmEnd> ended_;  // What CheckExited found (classified once: the cgroup goes).
  std::string vsock_;
  std::string control_;
  std::string console_;
  absl::Mutex mu_;
  std::optional<base::ChildProcess> child_;  // empty: adopted
  int adopted_pid_ = 0;
  int64_t adopted_start_ = 0;
  ProcFs procs_;
  bool stopped_ = false;
  std::unique_ptr<agent::AgentClient> agent_;
  UidLease uid_ ABSL_GUARDED_BY(mu_);  // empty without a uid pool
};

class WorkerLauncher : public VmLauncher {
 public:
  explicit WorkerLauncher(WorkerLauncherOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                    absl::Time deadline) override;
  // Takes over the live worker of a journaled, handed-out VM after a daemon restart and
  // reconnects its agent (a ping must answer before `deadline`). The caller checked that the
  // row's pid and start time match a live process. Does not touch the journal.
  absl::StatusOr<std::unique_ptr<VmInstance>> Adopt(const store::VmRecord& row,
                                                   absl::Time deadline);

 private:
  absl::StatusOr<std::unique_ptr<WorkerVm>> Spawn(const LaunchRequest& request);
  absl::Status Handshake(WorkerVm& vm, const LaunchRequest& request, absl::Time deadline);
  WorkerLauncherOptions options_;
};

// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), to tell pid reuse apart.
absl::StatusOr<int64_t> ProcessStartTime(int pid);

// The last `max_bytes` of a file ("" when unreadable), for error messages.
std::string FileTail(const std::string& path, size_t max_bytes);

}  // namespace supermachine::vm
