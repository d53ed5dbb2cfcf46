// File: exec_session.h
// One running guest command (the exec operation of proto/agent.proto after ExecStarted): the
// host writes stdin / resize / signal frames and reads stdout / stderr chunks until the exit.
// Writing and reading may happen on two threads (a stdin pump and an output reader): writes
// are serialized by a mutex, reads belong to one thread. Destroying the session closes the
// connection, and the agent then kills the command's process group if it still runs.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/agent/framed_conn.h"
#include "daemon/agent/types.h"

namespace supermachine::agent::v1 {
class ExecInput;
}

namespace supermachine::agent {

struct ExecEvent {
  enum class Kind { kStdout, kStderr, kExit };
  Kind kind = Kind::kStdout;
  std::string data;  // kStdout / kStderr.
  ExitInfo exit;     // kExit: the last event of the session.
};

class ExecSession {
 public:
  // Used by AgentClient::StartExec once the agent answered ExecStarted.
  ExecSession(std::unique_ptr<FramedConn> conn, int pid, bool stdin_open);
  ~ExecSession() = default;
  ExecSession(const ExecSession&) = delete;
  ExecSession& operator=(const ExecSession&) = delete;

  int pid() const { return pid_; }  // Guest pid.

  // Sends stdin bytes (split into protocol-sized chunks). FailedPrecondition when the command
  // was started without stdin or after CloseStdin; Unavailable when the agent has gone.
  absl::Status WriteStdin(std::string_view data, absl::Time deadline);
  // The process sees EOF on its stdin.
  absl::Status CloseStdin(absl::Time deadline);
  // New terminal size (tty sessions).
  absl::Status Resize(WindowSize size, absl::Time deadline);
  // Signal to the process group (e.g. SIGTERM, SIGKILL).
  absl::Status Signal(int signal, absl::Time deadline);

  // The next output chunk, or the exit (always last). After the exit: FailedPrecondition.
  // Unavailable / DataLoss when the connection ends without an exit.
  absl::StatusOr<ExecEvent> Read(absl::Time deadline);
  bool finished() const { return finished_; }

  // Drops the connection at once (any thread): blocked writes and reads fail. The agent sees
  // the host hang up and kills the command's process group if it is still running.
  void Abort() { conn_->Abort(); }

 private:
  // Caller holds write_mu_.
  absl::Status SendLocked(const v1::ExecInput& input, absl::Time deadline);

  std::unique_ptr<FramedConn> conn_;
  const int pid_;
  absl::Mutex write_mu_;
  bool stdin_open_ ABSL_GUARDED_BY(write_mu_);
  bool finished_ = false;  // Reader thread only.
};

}  // namespace supermachine::agent
