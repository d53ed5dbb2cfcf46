// File: types.h
// Plain C++ values of the agent client API (daemon/agent/agent_client.h): what callers pass and
// get back, so the daemon and tools never touch the wire messages of proto/agent.proto.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace supermachine::agent {

// Pong: who answers and since when.
struct PingInfo {
  std::string agent_version;
  double uptime_seconds = 0;
  uint64_t generation = 0;  // Last acknowledged restore generation (0 after a cold boot).
};

struct WindowSize {
  uint32_t rows = 24;
  uint32_t cols = 80;
};

// One command to run in the guest (ExecRequest).
struct ExecOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in the guest's PATH.
  std::vector<std::string> env;   // "KEY=VALUE", added to the workload's env...
  bool replace_env = false;       // ...or replacing it.
  std::string cwd;                // Empty: the workload's working directory.
  std::string user;               // "", "name", "uid", "uid:gid", "name:group".
  bool tty = false;               // Run on a pty: terminal output arrives as stdout, no stderr.
  WindowSize window;              // Initial size when tty.
  // Guest-side limit: the process group is SIGKILLed when it passes. Zero: none.
  absl::Duration timeout = absl::ZeroDuration();
  bool attach_stdin = false;  // false: the process reads /dev/null; WriteStdin is an error.
};

// How a guest process ended (ExecExit).
struct ExitInfo {
  bool signaled = false;  // true: killed by `signal`; false: exited with `code`.
  int code = 0;
  int signal = 0;
  bool timed_out = false;  // Killed because ExecOptions::timeout passed.
  absl::Duration duration;
  uint64_t peak_rss_kib = 0;

  bool success() const { return !signaled && code == 0; }
  // The shell convention: the exit code, or 128 + signal.
  int ShellCode() const { return signaled ? 128 + signal : code; }
  // "exited 0", "killed by signal 9", "killed by signal 9 (timed out)".
  std::string ToString() const;
};

// The workload (the image's main process) has ended (WorkloadExit).
struct WorkloadExitInfo {
  ExitInfo status;
  uint32_t restarts = 0;
};

// stat() of a guest path (FileInfo). A missing path is exists = false, not an error.
struct FileInfo {
  bool exists = false;
  uint64_t size = 0;
  uint32_t mode = 0;  // st_mode: type and permission bits.
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
};

struct WriteFileOptions {
  uint32_t mode = 0644;  // Permission bits.
  bool make_parents = false;
  std::string user;  // Owner; "" = root.
};

// What WaitReady waits for; build one with the factories.
struct ReadyCondition {
  enum class Kind { kListenerPort, kWorkloadExited, kIdle, kParked };
  Kind kind = Kind::kListenerPort;
  uint32_t port = 0;                          // kListenerPort: a TCP socket in LISTEN on it.
  absl::Duration idle = absl::ZeroDuration();  // kIdle: guest CPU idle this long.

  static ReadyCondition ListenerPort(uint32_t p) { return {.kind = Kind::kListenerPort, .port = p}; }
  static ReadyCondition WorkloadExited() { return {.kind = Kind::kWorkloadExited}; }
  static ReadyCondition Idle(absl::Duration d) { return {.kind = Kind::kIdle, .idle = d}; }
  // The workload is held unstarted (launch config "start": "restore") or has exited.
  static ReadyCondition Parked() { return {.kind = Kind::kParked}; }
};

// Sent after a snapshot restore (RestoredRequest).
struct RestoreInfo {
  std::string entropy;  // 32 random bytes for the guest's pool.
  absl::Time wall_clock = absl::UnixEpoch();  // Host CLOCK_REALTIME when sent.
  std::string vm_id;
  std::string hostname;    // Empty: keep.
  std::string machine_id;  // 32 lowercase hex.
  uint64_t generation = 0;
};

}  // namespace supermachine::agent
