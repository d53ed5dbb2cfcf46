// File: tests/unit/agent/agent_test_client.cc
// The in-process server harness and minimal frame-codec client (see agent_test_client.h).
#include "tests/unit/agent/agent_test_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>

#include "guest-agent/protocol/frame.h"

namespace supermachine::agent::testing {

std::optional<WorkloadExitInfo> FakeWorkload::WaitExit(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (timeout_ms < 0) {
    cv_.wait(lock, [&] { return exit_.has_value(); });
  } else {
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return exit_.has_value(); });
  }
  return exit_;
}

ExecDefaults FakeWorkload::exec_defaults() const {
  std::lock_guard<std::mutex> lock(mu_);
  return defaults_;
}

void FakeWorkload::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_called_ = true;
}

void FakeWorkload::SetDefaults(ExecDefaults defaults) {
  std::lock_guard<std::mutex> lock(mu_);
  defaults_ = std::move(defaults);
}

void FakeWorkload::Exit(const WorkloadExitInfo& info) {
  std::lock_guard<std::mutex> lock(mu_);
  exit_ = info;
  cv_.notify_all();
}

bool FakeWorkload::shutdown_called() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutdown_called_;
}

bool FakeWorkload::parked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_;
}

std::string FakeWorkload::StartParked() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!parked_) {
    return "";
  }
  ++start_parked_calls_;
  if (start_error_.empty()) {
    parked_ = false;
  }
  return start_error_;
}

void FakeWorkload::Park(std::string start_error) {
  std::lock_guard<std::mutex> lock(mu_);
  parked_ = true;
  start_error_ = std::move(start_error);
}

int FakeWorkload::start_parked_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return start_parked_calls_;
}

int FakeSystem::AddEntropy(const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu);
  calls.push_back("entropy:" + std::to_string(bytes.size()));
  entropy = bytes;
  return 0;
}

int FakeSystem::ReseedCrng() {
  std::lock_guard<std::mutex> lock(mu);
  calls.push_back("reseed");
  return reseed_result;
}

int FakeSystem::SetWallClock(int64_t unix_ns) {
  std::lock_guard<std::mutex> lock(mu);
  calls.push_back("clock:" + std::to_string(unix_ns));
  return 0;
}

int FakeSystem::SetHostname(const std::string& hostname) {
  std::lock_guard<std::mutex> lock(mu);
  calls.push_back("hostname:" + hostname);
  return 0;
}

Conn::~Conn() { Close(); }

void Conn::Close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Conn::Send(const google::protobuf::MessageLite& message) {
  ASSERT_EQ(protocol::WriteMessage(fd_, message), 0) << message.GetTypeName();
}

void Conn::SendRaw(const std::string& bytes) {
  ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

bool Conn::Read(google::protobuf::MessageLite* message) {
  protocol::ReadStatus status = protocol::ReadMessage(fd_, message);
  EXPECT_EQ(status.result, protocol::ReadResult::kOk)
      << "reading " << message->GetTypeName() << ": " << status.message;
  return status.result == protocol::ReadResult::kOk;
}

void Conn::ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

AgentServerTest::AgentServerTest() {
  socket_path_ = dir_.Join("agent.sock");
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::listen(listen_fd_, 128), 0);
  ExecDefaults defaults;
  defaults.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "FROM_WORKLOAD=yes"};
  defaults.cwd = "/";
  workload_.SetDefaults(defaults);
  server_ = std::make_unique<rpc::Server>(rpc::ServerOptions{
      .listen_fd = listen_fd_,
      .workload = &workload_,
      .reaper = &reaper_,
      .agent_version = "test-1.2.3",
      .system = &system_,
      .root_dir = dir_.path(),
  });
  run_ = std::thread([this] { server_->Run(); });
}

AgentServerTest::~AgentServerTest() {
  server_->Stop();
  if (run_.joinable()) {
    run_.join();
  }
  server_.reset();
  ::close(listen_fd_);
}

Conn AgentServerTest::Connect() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return Conn(fd);
}

v1::Response AgentServerTest::Call(const v1::Request& request) {
  Conn conn = Connect();
  conn.Send(request);
  v1::Response response;
  conn.Read(&response);
  return response;
}

v1::ExecRequest AgentServerTest::Command(const std::vector<std::string>& argv) {
  v1::ExecRequest exec;
  for (const std::string& arg : argv) {
    exec.add_argv(arg);
  }
  return exec;
}

ExecResult AgentServerTest::Exec(const v1::ExecRequest& exec, const std::string& stdin_data) {
  ExecResult result;
  Conn conn = Connect();
  v1::Request request;
  *request.mutable_exec() = exec;
  conn.Send(request);
  if (!conn.Read(&result.started) || !result.started.has_exec_started()) {
    return result;
  }
  std::thread feeder;
  if (exec.stdin()) {
    feeder = std::thread([&conn, &stdin_data] {
      v1::ExecInput input;
      for (size_t off = 0; off < stdin_data.size(); off += protocol::kMaxChunkBytes) {
        input.set_stdin(stdin_data.substr(off, protocol::kMaxChunkBytes));
        if (protocol::WriteMessage(conn.fd(), input) != 0) {
          return;
        }
      }
      input.set_stdin_eof(true);
      (void)protocol::WriteMessage(conn.fd(), input);
    });
  }
  while (true) {
    v1::ExecOutput out;
    protocol::ReadStatus status = protocol::ReadMessage(conn.fd(), &out);
    if (status.result != protocol::ReadResult::kOk) {
      break;
    }
    if (out.has_exit()) {
      result.exit = out.exit();
      break;
    }
    result.stdout_data += out.stdout();
    result.stderr_data += out.stderr();
  }
  if (feeder.joinable()) {
    ::shutdown(conn.fd(), SHUT_RDWR);  // Unblocks a feeder the command never read from.
    feeder.join();
  }
  return result;
}

}  // namespace supermachine::agent::testing
