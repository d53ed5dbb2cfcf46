// File: guest-agent/workload/supervisor.h
// The container's main process under PID 1: started once from the launch config, its signals
// forwarded, its exit recorded and announced on the console, and the VM's orderly shutdown.
// Implements WorkloadView for the RPC server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "guest-agent/process/reaper.h"
#include "guest-agent/workload/launch_config.h"
#include "guest-agent/workload/workload_view.h"

namespace supermachine::agent {

struct SupervisorOptions {
  std::string console = "/dev/console";  // The workload's stdout/stderr.
  std::chrono::milliseconds stop_grace{10000};  // SIGTERM → SIGKILL in Shutdown().
  std::string passwd_root = "/";         // Where /etc/passwd and /etc/group are read.
  // Ends the VM after the workload stopped; empty = kill every other process, sync and reset
  // (init/power.h). Host tests inject a recorder.
  std::function<void()> power_off;
  // Runs right before a parked workload starts (StartParked): main mounts the volumes here.
  // A non-empty return is the reason it cannot start. Empty function = nothing to do.
  std::function<std::string()> before_parked_start;
};

class Supervisor : public WorkloadView {
 public:
  Supervisor(Reaper* reaper, LaunchConfig config, SupervisorOptions options = {});
  ~Supervisor() override;  // Joins its threads; never runs in PID 1 (which never exits).
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Resolves the user and starts the workload. On failure the workload counts as exited with
  // 127 (not found) / 126 (cannot run), so WaitExit() still answers; returns the message.
  // With config.start_on_restore it only parks the workload ("workload parked" on the console)
  // and StartParked() starts it later.
  std::string Start();
  // Sends `sig` to the workload if it runs (PID 1 forwards SIGTERM/SIGINT/... here).
  void Forward(int sig);

  std::optional<WorkloadExitInfo> WaitExit(int timeout_ms) override;
  ExecDefaults exec_defaults() const override;
  void Shutdown() override;
  bool parked() const override;
  std::string StartParked() override;

 private:
  std::string Launch();
  void Watch(pid_t pid);
  void RecordExit(const ProcessExit& exit);
  void StopAndPowerOff();

  Reaper* const reaper_;
  const LaunchConfig config_;
  const SupervisorOptions options_;
  std::vector<std::string> env_;  // config env plus PATH/HOME defaults.
  std::chrono::steady_clock::time_point started_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  pid_t pid_ = -1;  // Running workload, or -1.
  std::optional<WorkloadExitInfo> exit_;
  bool shutting_down_ = false;
  bool parked_ = false;
  std::thread watcher_;
  std::thread stopper_;
};

}  // namespace supermachine::agent
