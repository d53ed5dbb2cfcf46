// File: tests/unit/agent/reaper_test.cc
// The PID-1 reaper: registered children's statuses (with rusage) reach Wait(), timeouts leave
// them registered, and orphans are reaped without being reported.
#include "guest-agent/process/reaper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace supermachine::agent {
namespace {

pid_t ForkExit(int code) {
  pid_t pid = fork();
  if (pid == 0) {
    _exit(code);
  }
  return pid;
}

TEST(Reaper, ReportsExitCodeOfRegisteredChild) {
  Reaper reaper;
  pid_t pid = reaper.Spawn([] { return ForkExit(7); });
  ASSERT_GT(pid, 0);
  auto status = reaper.Wait(pid, 5000);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(status->wait_status));
  EXPECT_EQ(WEXITSTATUS(status->wait_status), 7);
}

TEST(Reaper, ReportsPeakRssOfChild) {
  Reaper reaper;
  pid_t pid = reaper.Spawn([] {
    pid_t p = fork();
    if (p == 0) {
      // Touch 32 MiB so ru_maxrss clearly reflects the child, not a constant.
      static char block[32 << 20];
      for (size_t i = 0; i < sizeof(block); i += 4096) {
        block[i] = 1;
      }
      _exit(block[4096] == 1 ? 0 : 1);
    }
    return p;
  });
  auto status = reaper.Wait(pid, 5000);
  ASSERT_TRUE(status.has_value());
  EXPECT_GE(status->usage.ru_maxrss, 32 * 1024);
}

TEST(Reaper, WaitTimesOutAndChildStaysRegistered) {
  Reaper reaper;
  pid_t pid = reaper.Spawn([] {
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    return p;
  });
  EXPECT_FALSE(reaper.Wait(pid, 50).has_value());
  kill(pid, SIGKILL);
  auto status = reaper.Wait(pid, 5000);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFSIGNALED(status->wait_status));
  EXPECT_EQ(WTERMSIG(status->wait_status), SIGKILL);
}

TEST(Reaper, SpawnFailureRegistersNothing) {
  Reaper reaper;
  EXPECT_EQ(reaper.Spawn([] { return -EAGAIN; }), -EAGAIN);
}

TEST(Reaper, ReapsOrphansAsSubreaper) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  Reaper reaper;
  pid_t parent = reaper.Spawn([&] {
    pid_t p = fork();
    if (p == 0) {
      pid_t grandchild = fork();
      if (grandchild == 0) {
        usleep(100 * 1000);
        _exit(0);
      }
      (void)!write(pipefd[1], &grandchild, sizeof(grandchild));
      _exit(0);
    }
    return p;
  });
  pid_t grandchild = 0;
  ASSERT_EQ(read(pipefd[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  ASSERT_TRUE(reaper.Wait(parent, 5000).has_value());
  // The orphan re-parents to us and exits; the reaper must collect it (no zombie left).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gone = kill(grandchild, 0) != 0 && errno == ESRCH;
  }
  EXPECT_TRUE(gone);
  close(pipefd[0]);
  close(pipefd[1]);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(Reaper, DestructorReturnsWhileChildrenStillRun) {
  pid_t pid;
  {
    Reaper reaper;
    pid = reaper.Spawn([] {
      pid_t p = fork();
      if (p == 0) {
        pause();
        _exit(0);
      }
      return p;
    });
  }
  kill(pid, SIGKILL);
  EXPECT_EQ(waitpid(pid, nullptr, 0), pid);
}

}  // namespace
}  // namespace supermachine::agent
