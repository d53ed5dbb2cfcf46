// File: tests/unit/guest-agent-init/supervisor_test.cc
// Tests guest-agent/workload/supervisor.cc as an ordinary process: the reaper reaps this test
// binary's children, and power-off is a recorder. Dropping to another uid needs root.
#include "guest-agent/workload/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::ReadFileOrDie;
using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::WriteFileOrDie;
using ::testing::HasSubstr;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      FAIL() << "starting a workload as another user needs root: run the tests as root";
    }
    WriteFileOrDie(dir_.Join("console"), "");
    WriteFileOrDie(dir_.Join("etc/passwd"), "app:x:4242:4343:App:/home/app:/bin/sh\n");
    WriteFileOrDie(dir_.Join("etc/group"), "app:x:4343:\nextra:x:4444:app\n");
  }
  SupervisorOptions Options() {
    return {.console = dir_.Join("console"),
            .stop_grace = std::chrono::milliseconds(300),
            .passwd_root = dir_.path(),
            .power_off = [this] { powered_off_ = true; }};
  }

  TempDir dir_;
  Reaper reaper_;
  std::atomic<bool> powered_off_{false};
};

TEST_F(SupervisorTest, RunsAsConfiguredUserWithEnvAndCwdAndReportsExitCode) {
  LaunchConfig c{.argv = {"/bin/sh", "-c", "echo \"$(id -u):$(id -g):$(id -G):$GREETING:$HOME:$(pwd)\"; exit 7"},
                 .env = {"GREETING=hi"},
                 .cwd = "/",
                 .user = "app"};
  Supervisor s(&reaper_, c, Options());
  EXPECT_EQ(s.Start(), "");
  std::optional<WorkloadExitInfo> exit = s.WaitExit(10000);
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->status.signaled);
  EXPECT_EQ(exit->status.exit_code, 7);
  EXPECT_EQ(ReadFileOrDie(dir_.Join("console")), "4242:4343:4343 4444:hi:/home/app:/\n");
}

TEST_F(SupervisorTest, WaitExitTimesOutWhileRunning) {
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/bin/sleep", "5"}}, Options());
  ASSERT_EQ(s.Start(), "");
  EXPECT_FALSE(s.WaitExit(50));
  s.Forward(SIGKILL);
  std::optional<WorkloadExitInfo> exit = s.WaitExit(10000);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->status.signaled);
  EXPECT_EQ(exit->status.signal, SIGKILL);
}

TEST_F(SupervisorTest, UnknownUserCountsAsExit126WithMessage) {
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/bin/true"}, .user = "nobody-here"}, Options());
  EXPECT_THAT(s.Start(), HasSubstr("workload user \"nobody-here\""));
  std::optional<WorkloadExitInfo> exit = s.WaitExit(0);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status.exit_code, 126);
}

TEST_F(SupervisorTest, ShutdownKillsAWorkloadIgnoringSigtermThenPowersOff) {
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 5"}},
               Options());
  ASSERT_EQ(s.Start(), "");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Let the trap be set.
  s.Shutdown();
  std::optional<WorkloadExitInfo> exit = s.WaitExit(10000);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->status.signaled);
  EXPECT_EQ(exit->status.signal, SIGKILL);
  for (int i = 0; i < 100 && !powered_off_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(powered_off_);
}

TEST_F(SupervisorTest, StartOnRestoreParksUntilStartParkedThenRunsAfterTheHook) {
  const std::string marker = dir_.Join("ran");
  LaunchConfig c{.argv = {"/bin/sh", "-c", "echo ran > " + marker + "; exit 3"},
                 .start_on_restore = true};
  SupervisorOptions o = Options();
  std::atomic<int> hook_calls{0};
  o.before_parked_start = [&] {
    // The hook runs before the workload: the marker must not exist yet.
    EXPECT_NE(access(marker.c_str(), F_OK), 0);
    ++hook_calls;
    return std::string();
  };
  Supervisor s(&reaper_, c, o);
  ASSERT_EQ(s.Start(), "");
  EXPECT_TRUE(s.parked());
  EXPECT_FALSE(s.WaitExit(200));  // Parked: nothing runs, nothing exits.
  EXPECT_NE(access(marker.c_str(), F_OK), 0);

  EXPECT_EQ(s.StartParked(), "");
  EXPECT_FALSE(s.parked());
  std::optional<WorkloadExitInfo> exit = s.WaitExit(10000);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status.exit_code, 3);
  EXPECT_EQ(ReadFileOrDie(marker), "ran\n");
  EXPECT_EQ(s.StartParked(), "");  // Only the first call starts anything.
  EXPECT_EQ(hook_calls.load(), 1);
}

TEST_F(SupervisorTest, StartParkedHookFailureCountsAsExit126WithTheReason) {
  SupervisorOptions o = Options();
  o.before_parked_start = [] { return std::string("volume disk \"v0\" not found"); };
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/bin/true"}, .start_on_restore = true}, o);
  ASSERT_EQ(s.Start(), "");
  EXPECT_THAT(s.StartParked(), HasSubstr("volume disk \"v0\" not found"));
  std::optional<WorkloadExitInfo> exit = s.WaitExit(0);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status.exit_code, 126);
}

TEST_F(SupervisorTest, WithoutStartOnRestoreNothingIsParked) {
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/bin/true"}}, Options());
  ASSERT_EQ(s.Start(), "");
  EXPECT_FALSE(s.parked());
  ASSERT_TRUE(s.WaitExit(10000));
  EXPECT_EQ(s.StartParked(), "");
}

TEST_F(SupervisorTest, ExecDefaultsCarryEnvWithDefaultPathCwdAndUser) {
  Supervisor s(&reaper_, LaunchConfig{.argv = {"/app"}, .env = {"A=1"}, .cwd = "/srv",
                                      .user = "app"},
               Options());
  ExecDefaults d = s.exec_defaults();
  EXPECT_THAT(d.env, ::testing::ElementsAre("A=1", HasSubstr("PATH=/usr/local/sbin:")));
  EXPECT_EQ(d.cwd, "/srv");
  EXPECT_EQ(d.user, "app");
}

}  // namespace
}  // namespace supermachine::agent
