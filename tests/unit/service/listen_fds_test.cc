// File: listen_fds_test.cc
// LISTEN_PID/LISTEN_FDS parsing, and the check on what a passed fd is.
#include "daemon/service/listen_fds.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "worker/base/unique_fd.h"

namespace supermachine::service {
namespace {

using base::UniqueFd;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr pid_t kSelf = 4242;

TEST(ParseListenFds, UnsetMeansNotActivated) {
  absl::StatusOr<std::vector<int>> fds = ParseListenFds(nullptr, nullptr, kSelf);
  ASSERT_TRUE(fds.ok());
  EXPECT_THAT(*fds, IsEmpty());
}

TEST(ParseListenFds, OurPidGivesFdsFromThree) {
  absl::StatusOr<std::vector<int>> fds = ParseListenFds("4242", "2", kSelf);
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_THAT(*fds, ElementsAre(3, 4));
}

TEST(ParseListenFds, AnotherPidMeansTheFdsAreNotOurs) {
  absl::StatusOr<std::vector<int>> fds = ParseListenFds("4241", "1", kSelf);
  ASSERT_TRUE(fds.ok());
  EXPECT_THAT(*fds, IsEmpty());
}

TEST(ParseListenFds, MalformedValuesAreRefused) {
  for (const auto& [pid, n] : std::vector<std::pair<const char*, const char*>>{
           {"4242", "0"}, {"4242", "-1"}, {"4242", "x"}, {"4242", ""}, {"4242", "17"},
           {"42x", "1"}, {"", "1"}, {"4242", "1 "}}) {
    absl::StatusOr<std::vector<int>> fds = ParseListenFds(pid, n, kSelf);
    EXPECT_EQ(fds.status().code(), absl::StatusCode::kInvalidArgument)
        << "LISTEN_PID=" << pid << " LISTEN_FDS=" << n;
  }
}

TEST(ParseListenFds, OnlyOneVariableSetIsRefused) {
  EXPECT_FALSE(ParseListenFds("4242", nullptr, kSelf).ok());
  EXPECT_FALSE(ParseListenFds(nullptr, "1", kSelf).ok());
}

UniqueFd UnixStream(const std::string& name, bool listen) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') {
    addr.sun_path[0] = '\0';
  } else {
    len += 1;
  }
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  if (listen) {
    EXPECT_EQ(::listen(fd.get(), 8), 0);
  }
  return fd;
}

TEST(UnixListenerPath, ListeningPathSocketGivesItsPath) {
  test_support::TempDir dir;
  UniqueFd fd = UnixStream(dir.Join("api.sock"), true);
  absl::StatusOr<std::string> path = UnixListenerPath(fd.get());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir.Join("api.sock"));
}

TEST(UnixListenerPath, AbstractSocketGivesAtName) {
  const std::string name = "@sm-listen-fds-test-" + std::to_string(::getpid());
  UniqueFd fd = UnixStream(name, true);
  absl::StatusOr<std::string> path = UnixListenerPath(fd.get());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, name);
}

TEST(UnixListenerPath, NotListeningIsRefused) {
  test_support::TempDir dir;
  UniqueFd fd = UnixStream(dir.Join("idle.sock"), false);
  absl::StatusOr<std::string> path = UnixListenerPath(fd.get());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(path.status().message(), HasSubstr("not a listening stream socket"));
}

TEST(UnixListenerPath, TcpSocketIsRefusedWithTheReason) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd.get(), 8), 0);
  absl::StatusOr<std::string> path = UnixListenerPath(fd.get());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(path.status().message(), HasSubstr("not a Unix socket"));
}

TEST(UnixListenerPath, NotASocketIsRefused) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]);
  UniqueFd w(pipe_fds[1]);
  absl::StatusOr<std::string> path = UnixListenerPath(r.get());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(path.status().message(), HasSubstr("not a socket"));
}

}  // namespace
}  // namespace supermachine::service
