// File: worker_launcher.h
// WorkerLauncher: the real VmLauncher. Spawns `supermachine-worker --restore DIR` as its own
// session (a daemon crash or Ctrl-C does not take the worker with it: re-adoption works from
// the journal), stdout/stderr into <run_dir>/worker.log, the guest console into
// <run_dir>/console.log; journals pid + start time, waits for the agent over the VM's hybrid
// vsock socket, sends Restored (fresh entropy, wall clock, VM id, machine-id, generation) and
// marks the VM running once the agent acknowledged it.
//
// Each VM's files live in <runtime_dir>/<vm id>/: vsock, control, console.log, worker.log.
// The directory stays after the VM ends (its logs), the sockets are removed.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "daemon/agent/agent_client.h"
#include "daemon/vm/vm_instance.h"
#include "worker/base/child_process.h"

namespace supermachine::vm {

struct WorkerLauncherOptions {
  std::string worker_binary;  // supermachine-worker
  std::string runtime_dir;    // per-VM directories go here
  VmJournal* journal = nullptr;  // not owned
  // Bound on a worker's own exit after control `exit` / SIGTERM before SIGKILL.
  absl::Duration stop_grace = absl::Seconds(2);
};

class WorkerVm final : public VmInstance {
 public:
  ~WorkerVm() override;
  const std::string& id() const override { return id_; }
  int pid() const override { return child_.pid(); }
  const std::string& vsock_socket() const override { return vsock_; }
  const std::string& console_log() const override { return console_; }
  const agent::AgentClient* agent() const override { return agent_.get(); }
  std::optional<VmEnd> CheckExited() override;
  void Stop(absl::Duration grace) override;

 private:
  friend class WorkerLauncher;
  WorkerVm(std::string id, std::string dir, base::ChildProcess child)
      : id_(std::move(id)), dir_(std::move(dir)), child_(std::move(child)) {}
  // Asks the worker to exit over its control socket; false when it could not be told.
  bool SendExit(absl::Time deadline) const;

  std::string id_;
  std::string dir_;
  std::string vsock_;
  std::string control_;
  std::string console_;
  absl::Mutex mu_;
  base::ChildProcess child_;
  bool stopped_ = false;
  std::unique_ptr<agent::AgentClient> agent_;
};

class WorkerLauncher : public VmLauncher {
 public:
  explicit WorkerLauncher(WorkerLauncherOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                    absl::Time deadline) override;

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
