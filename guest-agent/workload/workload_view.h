// File: guest-agent/workload/workload_view.h
// The contract between the agent's RPC server (rpc/) and the workload supervisor (workload/):
// what a host request may learn about, or do to, the container's main process. The supervisor
// implements it; the server only ever sees this interface, so each side is testable alone
// (the server's host tests use a fake).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace supermachine::agent {

// How a process ended (also used for exec results).
struct ProcessExit {
  bool signaled = false;   // true: killed by `signal`; false: exited with `exit_code`.
  int exit_code = 0;
  int signal = 0;
  bool timed_out = false;
  uint64_t duration_us = 0;
  uint64_t peak_rss_kib = 0;
};

struct WorkloadExitInfo {
  ProcessExit status;
  uint32_t restarts = 0;
};

// Defaults an exec inherits from the workload's launch config when the request leaves the
// field empty.
struct ExecDefaults {
  std::vector<std::string> env;  // "KEY=VALUE" (includes PATH).
  std::string cwd = "/";
  std::string user;              // Same syntax as ExecRequest.user; "" = root.
};

class WorkloadView {
 public:
  virtual ~WorkloadView() = default;
  // Blocks until the workload has exited (returns its status) or `timeout_ms` passes (nullopt).
  // timeout_ms < 0 waits forever. Returns at once if it already exited. Thread-safe.
  virtual std::optional<WorkloadExitInfo> WaitExit(int timeout_ms) = 0;
  virtual ExecDefaults exec_defaults() const = 0;
  // Stops the workload (SIGTERM, then SIGKILL after a grace period) and powers the VM off.
  // Returns once the power-off is under way (the caller may answer the host first).
  virtual void Shutdown() = 0;
  // True while the workload is held unstarted (launch config "start": "restore"): the state a
  // bake with readiness "parked" snapshots. Thread-safe.
  virtual bool parked() const { return false; }
  // Starts a parked workload (the `restored` operation calls it). "" when it started or nothing
  // was parked; otherwise why it could not start (it then counts as exited). Thread-safe; only
  // the first call starts anything.
  virtual std::string StartParked() { return ""; }
};

}  // namespace supermachine::agent
