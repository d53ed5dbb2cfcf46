// File: client_test.cc
// The connect helper's diagnosis of the socket and the messages newcomers see.
#include "cli/client.h"

#include <filesystem>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "worker/base/unique_fd.h"

namespace supermachine::cli {
namespace {

using ::testing::HasSubstr;

// A Unix socket bound at `path`; listening or not.
base::UniqueFd BindSocket(const std::string& path, bool listen) {
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  if (listen) {
    EXPECT_EQ(::listen(fd.get(), 1), 0);
  }
  return fd;
}

TEST(DiagnoseSocket, MissingPathIsMissing) {
  test_support::TempDir dir;
  EXPECT_EQ(DiagnoseSocket(dir.Join("none.sock")).state, SocketState::kMissing);
}

TEST(DiagnoseSocket, RegularFileIsNotASocket) {
  test_support::TempDir dir;
  std::ofstream(dir.Join("f")) << "x";
  EXPECT_EQ(DiagnoseSocket(dir.Join("f")).state, SocketState::kNotSocket);
}

TEST(DiagnoseSocket, SocketNobodyListensOnIsRefused) {
  test_support::TempDir dir;
  base::UniqueFd fd = BindSocket(dir.Join("s.sock"), /*listen=*/false);
  EXPECT_EQ(DiagnoseSocket(dir.Join("s.sock")).state, SocketState::kRefused);
}

TEST(DiagnoseSocket, ListeningSocketIsOk) {
  test_support::TempDir dir;
  base::UniqueFd fd = BindSocket(dir.Join("s.sock"), /*listen=*/true);
  EXPECT_EQ(DiagnoseSocket(dir.Join("s.sock")).state, SocketState::kOk);
}

TEST(ExplainSocketProblem, MissingSocketSaysDaemonIsNotRunningAndHowToStartIt) {
  grpc::Status st = ExplainSocketProblem({.state = SocketState::kMissing}, "/run/x.sock");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), HasSubstr("supermachined is not running (no socket at /run/x.sock)"));
  EXPECT_THAT(st.error_message(), HasSubstr("systemctl start supermachined"));
  EXPECT_THAT(st.error_message(), HasSubstr("supermachined &"));
}

TEST(ExplainSocketProblem, RefusedSocketSaysDaemonIsNotRunning) {
  grpc::Status st = ExplainSocketProblem({.state = SocketState::kRefused}, "/run/x.sock");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(st.error_message(), HasSubstr("supermachined is not running"));
}

TEST(ExplainSocketProblem, PermissionDeniedNamesTheGroupToJoin) {
  grpc::Status st = ExplainSocketProblem(
      {.state = SocketState::kPermissionDenied, .group = "supermachine", .mode = 0660},
      "/run/x.sock");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(st.error_message(), HasSubstr("add yourself to group supermachine"));
  EXPECT_THAT(st.error_message(), HasSubstr("ls -l /run/x.sock"));
  EXPECT_THAT(st.error_message(), HasSubstr("or run as root"));
}

TEST(ResolveSocketPath, FlagBeatsEnvironment) {
  ::setenv("SUPERMACHINE_SOCKET", "/env.sock", 1);
  EXPECT_EQ(ResolveSocketPath("/flag.sock"), "/flag.sock");
  EXPECT_EQ(ResolveSocketPath(""), "/env.sock");
  ::unsetenv("SUPERMACHINE_SOCKET");
}

}  // namespace
}  // namespace supermachine::cli
