// File: control_socket_test.cc
// The control socket's line protocol (worker/vmm/control_socket.h) and the vCPU pause gate
// (worker/vmm/vcpu_pause.h), without a VM.
#include "worker/vmm/control_socket.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "tests/support/temp_dir.h"
#include "worker/base/unique_fd.h"
#include "worker/vmm/vcpu_pause.h"

namespace supermachine::vmm {
namespace {

using ::testing::HasSubstr;

TEST(ParseControlCommand, ReadsSnapshotDirectory) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand("  snapshot /tmp/snap 1 \n");

  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->verb, ControlVerb::kSnapshot);
  EXPECT_EQ(cmd->argument, "/tmp/snap 1");
}

TEST(ParseControlCommand, RejectsSnapshotWithoutDirectory) {
  EXPECT_THAT(ParseControlCommand("snapshot").status().message(), HasSubstr("usage"));
}

TEST(ParseControlCommand, RejectsUnknownVerbListingTheKnownOnes) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand("hibernate");

  EXPECT_THAT(cmd.status().message(), HasSubstr("pause, resume, snapshot DIR, exit"));
}

TEST(ParseControlCommand, ReadsBalloonWithoutArgument) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand("balloon\n");
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->verb, ControlVerb::kBalloon);
  EXPECT_FALSE(ParseControlCommand("balloon 5").ok());
}

TEST(ParseControlCommand, ReadsBalloonTargetPages) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand(" balloon-target  91750 \n");
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->verb, ControlVerb::kBalloonTarget);
  EXPECT_EQ(cmd->pages, 91750u);
  cmd = ParseControlCommand("balloon-target 0");
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->pages, 0u) << "0 deflates fully";
  cmd = ParseControlCommand("balloon-target 4294967295");
  ASSERT_TRUE(cmd.ok()) << cmd.status() << " (the RAM bound is the VM's, not the parser's)";
  EXPECT_EQ(cmd->pages, 4294967295u);
}

TEST(ParseControlCommand, RejectsBalloonTargetWithoutANumber) {
  for (const char* line : {"balloon-target", "balloon-target   ", "balloon-target lots",
                           "balloon-target 12k", "balloon-target -1", "balloon-target +5",
                           "balloon-target 1.5", "balloon-target 5 6", "balloon-target 0x10"}) {
    absl::StatusOr<ControlCommand> cmd = ParseControlCommand(line);
    ASSERT_FALSE(cmd.ok()) << line;
    EXPECT_THAT(cmd.status().message(), HasSubstr("usage: balloon-target PAGES")) << line;
  }
}

TEST(ParseControlCommand, RejectsBalloonTargetBeyondThe32BitConfigField) {
  absl::StatusOr<ControlCommand> cmd = ParseControlCommand("balloon-target 4294967296");
  ASSERT_FALSE(cmd.ok());
  EXPECT_THAT(cmd.status().message(), HasSubstr("4294967295"));
  EXPECT_FALSE(ParseControlCommand("balloon-target 99999999999999999999999").ok());
}

TEST(ParseControlCommand, RejectsArgumentToPause) {
  EXPECT_FALSE(ParseControlCommand("pause now").ok());
}

base::UniqueFd Connect(const std::string& path) {
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

std::string ReadLine(int fd) {
  std::string out;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') {
    out.push_back(c);
  }
  return out;
}

TEST(ControlSocket, AnswersEachLineWithTheHandlersReply) {
  test_support::TempDir dir;
  absl::StatusOr<std::unique_ptr<ControlSocket>> cs = ControlSocket::Listen(
      dir.Join("ctl"), [](absl::string_view line) { return "OK got " + std::string(line); });
  ASSERT_TRUE(cs.ok()) << cs.status();
  base::UniqueFd client = Connect(dir.Join("ctl"));
  (*cs)->Process();  // Accept.
  ASSERT_EQ(write(client.get(), "pause\nres", 9), 9);
  (*cs)->Process();
  ASSERT_EQ(write(client.get(), "ume\n", 4), 4);
  (*cs)->Process();

  EXPECT_EQ(ReadLine(client.get()), "OK got pause");
  EXPECT_EQ(ReadLine(client.get()), "OK got resume");
}

TEST(ControlSocket, RemovesItsSocketFileOnDestruction) {
  test_support::TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<ControlSocket>> cs =
        ControlSocket::Listen(dir.Join("ctl"), [](absl::string_view) { return "OK"; });
    ASSERT_TRUE(cs.ok());
    EXPECT_EQ(dir.List(), std::vector<std::string>{"ctl"});
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(PauseGate, WaitParkedReturnsOnceEveryThreadParkedAndReleaseLetsThemGo) {
  PauseGate gate;
  kvm_run runs[2]{};
  gate.RequestPause({&runs[0], &runs[1]});
  std::thread a([&] { gate.Park(&runs[0]); });
  std::thread b([&] { gate.Park(&runs[1]); });

  absl::Status st = gate.WaitParked(2, absl::Seconds(10));

  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(gate.leave_run().load());
  EXPECT_EQ(runs[0].immediate_exit, 1);
  gate.Release();
  a.join();
  b.join();
  EXPECT_FALSE(gate.leave_run().load());
  EXPECT_EQ(runs[0].immediate_exit, 0);
  EXPECT_EQ(runs[1].immediate_exit, 0);
}

TEST(PauseGate, WaitParkedFailsWhenAThreadExitedInstead) {
  PauseGate gate;
  kvm_run run{};
  gate.RequestPause({&run});
  gate.MarkExited();

  absl::Status st = gate.WaitParked(1, absl::Seconds(10));

  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PauseGate, WaitParkedTimesOutNamingTheMissingVcpus) {
  PauseGate gate;
  kvm_run run{};
  gate.RequestPause({&run});

  absl::Status st = gate.WaitParked(1, absl::Milliseconds(20));

  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(st.message(), HasSubstr("1 of 1 vCPUs"));
}

TEST(PauseGate, StopWakesParkedThreadsAndKeepsThemOut) {
  PauseGate gate;
  kvm_run run{};
  gate.RequestPause({&run});
  std::thread t([&] { gate.Park(&run); });
  ASSERT_TRUE(gate.WaitParked(1, absl::Seconds(10)).ok());

  gate.Stop();
  t.join();

  EXPECT_TRUE(gate.stopping());
  EXPECT_TRUE(gate.leave_run().load());
}

}  // namespace
}  // namespace supermachine::vmm
