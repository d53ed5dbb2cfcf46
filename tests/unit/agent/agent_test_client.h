// File: tests/unit/agent/agent_test_client.h
// Host-side harness for the guest agent's RPC server: the Server runs in-process on a Unix
// socket (ListenVsock is the only vsock-specific piece), with a fake WorkloadView and a
// recording System, and a minimal client built on the frame codec drives it. The client is
// deliberately separate from daemon/agent: these tests pin the wire behaviour themselves.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "guest-agent/process/reaper.h"
#include "guest-agent/rpc/restore_hook.h"
#include "guest-agent/rpc/server.h"
#include "guest-agent/workload/workload_view.h"
#include "proto/agent.pb.h"
#include "tests/support/temp_dir.h"

namespace supermachine::agent::testing {

class FakeWorkload : public WorkloadView {
 public:
  std::optional<WorkloadExitInfo> WaitExit(int timeout_ms) override;
  ExecDefaults exec_defaults() const override;
  void Shutdown() override;
  bool parked() const override;
  std::string StartParked() override;

  void SetDefaults(ExecDefaults defaults);
  void Exit(const WorkloadExitInfo& info);
  bool shutdown_called() const;
  // Parks the fake workload; StartParked() then answers `start_error` (and unparks on "").
  void Park(std::string start_error = "");
  int start_parked_calls() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  ExecDefaults defaults_;
  std::optional<WorkloadExitInfo> exit_;
  bool shutdown_called_ = false;
  bool parked_ = false;
  std::string start_error_;
  int start_parked_calls_ = 0;
};

// Records what the restore hook asked for instead of doing it.
class FakeSystem : public rpc::System {
 public:
  int AddEntropy(const std::string& bytes) override;
  int ReseedCrng() override;
  int SetWallClock(int64_t unix_ns) override;
  int SetHostname(const std::string& hostname) override;

  std::mutex mu;
  std::vector<std::string> calls;  // In order: "entropy:<n>", "reseed", "clock:<ns>", "hostname:<h>".
  std::string entropy;
  int reseed_result = 0;
};

struct ExecResult {
  v1::Response started;  // exec_started, or error.
  std::string stdout_data;
  std::string stderr_data;
  std::optional<v1::ExecExit> exit;  // nullopt: the stream ended without one.
};

// An open connection to the server.
class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  ~Conn();
  Conn(Conn&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  int fd() const { return fd_; }
  void Send(const google::protobuf::MessageLite& message);
  void SendRaw(const std::string& bytes);
  // Reads one message; fails the test (and returns false) on anything but a frame.
  bool Read(google::protobuf::MessageLite* message);
  void ShutdownWrite();
  void Close();

 private:
  int fd_;
};

class AgentServerTest : public ::testing::Test {
 protected:
  AgentServerTest();
  ~AgentServerTest() override;

  Conn Connect();
  // Sends `request` on a new connection and reads the Response.
  v1::Response Call(const v1::Request& request);
  // Runs an exec to completion: `stdin_data` is sent (then stdin_eof) from a second thread
  // while output is collected.
  ExecResult Exec(const v1::ExecRequest& exec, const std::string& stdin_data = "");
  static v1::ExecRequest Command(const std::vector<std::string>& argv);

  test_support::TempDir dir_;
  Reaper reaper_;
  FakeWorkload workload_;
  FakeSystem system_;
  std::string socket_path_;
  int listen_fd_ = -1;
  std::unique_ptr<rpc::Server> server_;
  std::thread run_;
};

}  // namespace supermachine::agent::testing
