// File: child_process.h
// ChildProcess: one owner of a spawned child's pid. Wait/Signal/Terminate, tells an exit code
// from a signal, and is killed (SIGKILL) and reaped by its destructor, so no test or daemon
// path can leak a process or a zombie.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace supermachine::base {

struct ExitStatus {
  bool signaled = false;  // true: killed by `signal`; false: exited with `code`.
  int code = 0;
  int signal = 0;

  bool success() const { return !signaled && code == 0; }
  // "exited 0", "exited 3", "killed by signal 9 (Killed)".
  std::string ToString() const;
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'.
  // Full environment; when unset the child inherits ours.
  std::optional<std::vector<std::string>> env;
  // Descriptors for the child's stdio; -1 means: stdin from /dev/null, stdout/stderr inherited.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Put the child in its own session (and process group) so a signal to the group reaches
  // everything it starts, and terminal signals to us do not reach it.
  bool new_session = false;
};

class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exit_.has_value(); }

  // Blocks until the child exits.
  absl::StatusOr<ExitStatus> Wait();
  // Waits at most `timeout`; DeadlineExceeded if the child is still running then.
  absl::StatusOr<ExitStatus> WaitFor(absl::Duration timeout);
  // Non-blocking: the exit status if the child has exited, else nullopt.
  std::optional<ExitStatus> TryWait();
  // Sends `sig` to the child (or to its process group when spawned with new_session).
  absl::Status Signal(int sig);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns how it ended.
  absl::StatusOr<ExitStatus> Terminate(absl::Duration grace);
  // Gives the child up: it keeps running and this object no longer waits for, signals or kills
  // it (the daemon leaving a worker for its next start to re-adopt). Returns its pid, -1 when
  // there was no running child.
  pid_t Release();

 private:
  ChildProcess(pid_t pid, bool group) : pid_(pid), group_(group) {}
  void KillAndReap();

  pid_t pid_ = -1;
  bool group_ = false;
  std::optional<ExitStatus> exit_;
};

}  // namespace supermachine::base
