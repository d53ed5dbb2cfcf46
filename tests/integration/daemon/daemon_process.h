// File: daemon_process.h
// Test support: a real supermachined started as a child with a temp state dir, a short
// socket path and metrics on a free port; and a runner for the real smctl binary. Paths of
// both binaries come from CMake (SM_SUPERMACHINED_PATH, SM_SMCTL_PATH).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/child_process.h"

namespace supermachine::test_support {

// A short per-test directory under /tmp (socket paths are limited to 107 bytes).
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadWholeFile(const std::string& path);

class DaemonProcess {
 public:
  // Starts supermachined with --socket <dir>/sm.sock --state-dir <dir>/state
  // --metrics-address 127.0.0.1:0 plus `extra_args`, and waits for its "serving" log line
  // (or its exit, reported with its stderr). Starting again in the same `dir` after a crash
  // restarts the daemon on the same state (the crash-recovery tests).
  // `run_under`: a command line the daemon is run by, e.g. {"/usr/bin/setpriv", "--reuid=N",
  // ...} to start it as another user ({} = directly).
  static absl::StatusOr<DaemonProcess> Start(const std::string& dir,
                                             const std::vector<std::string>& extra_args = {},
                                             const std::vector<std::string>& run_under = {});

  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  int metrics_port() const { return metrics_port_; }
  std::string Stderr() const { return ReadWholeFile(stderr_path_); }
  base::ChildProcess& process() { return process_; }

 private:
  DaemonProcess(base::ChildProcess process, std::string socket, std::string state_dir,
                std::string stderr_path, int metrics_port)
      : process_(std::move(process)), socket_(std::move(socket)), state_dir_(std::move(state_dir)),
        stderr_path_(std::move(stderr_path)), metrics_port_(metrics_port) {}

  base::ChildProcess process_;
  std::string socket_;
  std::string state_dir_;
  std::string stderr_path_;
  int metrics_port_ = 0;
};

struct CommandResult {
  base::ExitStatus exit;
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] a path) to completion with stdout/stderr captured in `scratch_dir`.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& scratch_dir);

// Runs the built supermachined once (e.g. expecting a refusal) to completion.
absl::StatusOr<CommandResult> RunDaemonToExit(const std::vector<std::string>& args,
                                              const std::string& scratch_dir);

// A plain HTTP/1.0 GET of http://127.0.0.1:<port><path>; returns the whole response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace supermachine::test_support
