// File: service_manager_test.cc
// The real supermachined under what systemd does to it: READY=1 (then STOPPING=1) on
// $NOTIFY_SOCKET for Type=notify, and socket activation through systemd's own test tool,
// systemd-socket-activate, which binds the socket and passes it as fd 3 with LISTEN_PID and
// LISTEN_FDS set exactly as PID 1 would.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/support/net.h"
#include "worker/base/unique_fd.h"

extern char** environ;

namespace supermachine::test_support {
namespace {

using ::testing::HasSubstr;

grpc::Status UnixHealth(const std::string& path) {
  auto stub = v1::Supermachine::NewStub(
      grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  // Generous: with socket activation this call is what starts the daemon.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ctx.set_wait_for_ready(true);
  v1::HealthRequest req;
  v1::HealthResponse resp;
  return stub->Health(&ctx, req, &resp);
}

std::vector<std::string> EnvironmentWith(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    if (kv.rfind("NOTIFY_SOCKET=", 0) != 0 && kv.rfind("LISTEN_", 0) != 0) {
      env.push_back(kv);
    }
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<std::string> DaemonArgs(const ScratchDir& dir) {
  return {SM_SUPERMACHINED_PATH, "--socket",          dir.File("sm.sock"),
          "--state-dir",         dir.File("state"),   "--metrics-address",
          "127.0.0.1:0"};
}

absl::StatusOr<base::ChildProcess> Spawn(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env,
                                         const std::string& stderr_path) {
  base::UniqueFd err(::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  return base::ChildProcess::Spawn({.argv = argv, .env = env, .stderr_fd = err.get()});
}

// A datagram socket in the abstract namespace, as systemd's notify socket can be.
class NotifyReceiver {
 public:
  NotifyReceiver() : name_("@sm-notify-test-" + std::to_string(::getpid())) {
    fd_ = base::UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
    bound_ = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size())) == 0;
    timeval tv{.tv_sec = 60, .tv_usec = 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  bool bound() const { return bound_; }
  const std::string& name() const { return name_; }
  std::string Receive() {
    char buf[512];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    return n < 0 ? "(nothing within 60 s: " + std::string(std::strerror(errno)) + ")"
                 : std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string name_;
  base::UniqueFd fd_;
  bool bound_ = false;
};

TEST(ServiceManager, NotifiesReadyOnceServingAndStoppingOnSigterm) {
  ScratchDir dir;
  NotifyReceiver notify;
  ASSERT_TRUE(notify.bound());
  absl::StatusOr<base::ChildProcess> daemon =
      Spawn(DaemonArgs(dir), EnvironmentWith({"NOTIFY_SOCKET=" + notify.name()}),
            dir.File("stderr"));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(notify.Receive(), "READY=1\nSTATUS=serving") << ReadWholeFile(dir.File("stderr"));
  // READY means serving: the socket answers without any retry on our side.
  grpc::Status st = UnixHealth(dir.File("sm.sock"));
  EXPECT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(daemon->Signal(SIGTERM).ok());
  EXPECT_EQ(notify.Receive(), "STOPPING=1");
  absl::StatusOr<base::ExitStatus> exit = daemon->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString();
}

TEST(ServiceManager, SocketActivationServesThePassedSocket) {
  ScratchDir dir;
  const std::string activated = dir.File("activated.sock");
  std::vector<std::string> argv = {"systemd-socket-activate", "-l", activated};
  for (const std::string& a : DaemonArgs(dir)) {
    argv.push_back(a);
  }
  absl::StatusOr<base::ChildProcess> daemon =
      Spawn(argv, EnvironmentWith({}), dir.File("stderr"));
  ASSERT_TRUE(daemon.ok()) << daemon.status() << " (systemd-socket-activate is in Debian's systemd)";
  // systemd-socket-activate binds first and starts the daemon on the first connection.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(activated) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_FALSE(daemon->TryWait().has_value()) << ReadWholeFile(dir.File("stderr"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(std::filesystem::exists(activated)) << ReadWholeFile(dir.File("stderr"));
  grpc::Status st = UnixHealth(activated);
  EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << ReadWholeFile(dir.File("stderr"));
  grpc::Status again = UnixHealth(activated);
  EXPECT_TRUE(again.ok()) << again.error_message();
  const std::string log = ReadWholeFile(dir.File("stderr"));
  EXPECT_THAT(log, HasSubstr("socket=" + activated));
  // --socket is not bound when a socket is passed.
  EXPECT_FALSE(std::filesystem::exists(dir.File("sm.sock")));

  ASSERT_TRUE(daemon->Signal(SIGTERM).ok());
  absl::StatusOr<base::ExitStatus> exit = daemon->WaitFor(absl::Seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << ReadWholeFile(dir.File("stderr"));
  // The socket is systemd's: the daemon leaves it for the next activation.
  EXPECT_TRUE(std::filesystem::exists(activated));
}

TEST(ServiceManager, PassedTcpSocketIsRefused) {
  ScratchDir dir;
  const uint16_t port = UnusedLoopbackPort();
  std::vector<std::string> argv = {"systemd-socket-activate", "-l",
                                   "127.0.0.1:" + std::to_string(port)};
  for (const std::string& a : DaemonArgs(dir)) {
    argv.push_back(a);
  }
  absl::StatusOr<base::ChildProcess> daemon =
      Spawn(argv, EnvironmentWith({}), dir.File("stderr"));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  // The first connection starts the daemon, which must refuse the TCP fd (no TLS on it).
  absl::StatusOr<base::ExitStatus> exit = absl::DeadlineExceededError("not started");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ConnectToLoopback(port).valid()) {
      exit = daemon->WaitFor(absl::Seconds(60));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(exit.ok()) << exit.status() << "\n" << ReadWholeFile(dir.File("stderr"));
  EXPECT_EQ(exit->code, 1) << exit->ToString();
  EXPECT_THAT(ReadWholeFile(dir.File("stderr")), HasSubstr("is not a Unix socket"));
}

}  // namespace
}  // namespace supermachine::test_support
