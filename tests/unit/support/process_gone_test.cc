// File: process_gone_test.cc
// ProcessGone / WaitProcessGone (tests/support/process_gone.h) on a child of the test: alive,
// exited but not reaped (a zombie is not gone), reaped.
#include "tests/support/process_gone.h"

#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace supermachine::test_support {
namespace {

TEST(ProcessGone, ARunningProcessIsNotGone) {
  EXPECT_FALSE(ProcessGone(::getpid()));
}

TEST(ProcessGone, AnExitedChildIsGoneOnlyOnceReaped) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::_exit(0);
  }
  // Waits for the exit and leaves the child a zombie (WNOWAIT): no sleep, no race.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(ProcessGone(child)) << "a zombie still holds its pid";
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_TRUE(ProcessGone(child));
}

TEST(WaitProcessGone, SeesAReapedChildGone) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::_exit(0);
  }
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_TRUE(WaitProcessGone(child, absl::Minutes(1)));
}

TEST(WaitProcessGone, GivesUpOnALiveProcess) {
  EXPECT_FALSE(WaitProcessGone(::getpid(), absl::Milliseconds(300)));
}

}  // namespace
}  // namespace supermachine::test_support
