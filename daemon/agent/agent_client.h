// File: agent_client.h
// Host-side client of the guest agent (proto/agent.proto, docs/agent-client.md). Every call
// dials a fresh connection (the protocol runs one operation per connection, so a long exec
// never blocks a ping), carries a deadline, and returns absl::Status with the agent's error
// code kept as is (its Error.code values are absl::StatusCode values). Thread-safe: calls may
// run concurrently from many threads.
//
// Errors common to every call: Unavailable — no agent answers (worker not running, agent not
// started yet, connection dropped: retrying may work); DeadlineExceeded; DataLoss — the agent
// sent a malformed frame; Internal — the other end does not speak this protocol.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/agent/dialer.h"
#include "daemon/agent/exec_session.h"
#include "daemon/agent/types.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent {

// Output of RunCommand.
struct CommandResult {
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;  // More than RunLimits::max_output_bytes arrived (dropped).
  bool stderr_truncated = false;
  ExitInfo exit;
};

struct RunLimits {
  size_t max_output_bytes = size_t{16} << 20;  // Per stream; the rest is read and dropped.
};

class AgentClient {
 public:
  explicit AgentClient(std::unique_ptr<Dialer> dialer);

  // Pong: agent version, guest uptime, restore generation.
  absl::StatusOr<PingInfo> Ping(absl::Time deadline) const;

  // Pings until the agent answers or `deadline` passes (after boot or restore, while the
  // worker, kernel or agent is still coming up). DeadlineExceeded carries the last error.
  absl::StatusOr<PingInfo> WaitForAgent(absl::Time deadline,
                                        absl::Duration retry_interval = absl::Milliseconds(20)) const;

  // Starts a command; the session then streams. `deadline` bounds only the start (dial,
  // request, ExecStarted). Errors from the agent: NotFound (no such command), PermissionDenied,
  // InvalidArgument (empty argv, bad user), ...
  absl::StatusOr<std::unique_ptr<ExecSession>> StartExec(const ExecOptions& options,
                                                         absl::Time deadline) const;

  // Runs a command to completion: feeds `stdin_data` (when options.attach_stdin) while
  // collecting output. When `deadline` passes the process group is sent SIGKILL and the call
  // returns DeadlineExceeded (set options.timeout too, to have the guest enforce it).
  absl::StatusOr<CommandResult> RunCommand(const ExecOptions& options, std::string_view stdin_data,
                                           absl::Time deadline, RunLimits limits = {}) const;

  // Writes a guest file from `source` (called until it returns 0 bytes = end). Returns the
  // size the agent wrote. Agent errors: NotFound (parent missing without make_parents), ...
  using Source = std::function<absl::StatusOr<size_t>(char* buf, size_t size)>;
  absl::StatusOr<uint64_t> WriteFileFrom(const std::string& path, const WriteFileOptions& options,
                                         const Source& source, absl::Time deadline) const;
  absl::StatusOr<uint64_t> WriteFile(const std::string& path, std::string_view data,
                                     const WriteFileOptions& options, absl::Time deadline) const;

  // Reads a guest file, handing each chunk to `sink`. `max_bytes` 0 = no limit; a larger file
  // is FailedPrecondition (never truncated). Returns its stat (FileInfo) as sent before data.
  using Sink = std::function<absl::Status(std::string_view chunk)>;
  absl::StatusOr<FileInfo> ReadFileTo(const std::string& path, uint64_t max_bytes,
                                      const Sink& sink, absl::Time deadline) const;
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t max_bytes,
                                       absl::Time deadline) const;

  // stat(2) in the guest; a missing path is exists = false.
  absl::StatusOr<FileInfo> Stat(const std::string& path, absl::Time deadline) const;

  // A stream spliced to a new TCP connection to `address`:`port` in the guest (host port
  // forwarding): raw bytes both ways, blocking mode. Unavailable when nothing listens there.
  absl::StatusOr<base::UniqueFd> Connect(uint32_t port, absl::Time deadline,
                                         const std::string& address = "") const;

  // Waits in the guest until `condition` holds; returns how long the agent waited.
  // DeadlineExceeded when `deadline` passes first.
  absl::StatusOr<absl::Duration> WaitReady(const ReadyCondition& condition,
                                           absl::Time deadline) const;

  // Waits for the workload (the image's main process) to exit.
  absl::StatusOr<WorkloadExitInfo> WaitExit(absl::Time deadline) const;

  // After a snapshot restore: reseed, set the clock, new identity. Returns the generation the
  // agent acknowledged.
  absl::StatusOr<uint64_t> Restored(const RestoreInfo& info, absl::Time deadline) const;

  // Asks the agent to stop the workload and power the guest off (acknowledged before it does).
  absl::Status Shutdown(absl::Time deadline) const;

  const Dialer& dialer() const { return *dialer_; }

 private:
  std::unique_ptr<Dialer> dialer_;
};

}  // namespace supermachine::agent
