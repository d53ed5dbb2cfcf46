#include "worker/base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "worker/base/unique_fd.h"

namespace supermachine::base {
namespace {

TEST(ChildProcess, ReportsExitCode) {
  auto child = ChildProcess::Spawn({.argv = {"sh", "-c", "exit 7"}});
  ASSERT_TRUE(child.ok()) << child.status();
  auto st = child->Wait();
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 7);
}

TEST(ChildProcess, ReportsSignal) {
  auto child = ChildProcess::Spawn({.argv = {"sh", "-c", "kill -TERM $$"}});
  ASSERT_TRUE(child.ok());
  auto st = child->Wait();
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->signal, SIGTERM);
}

TEST(ChildProcess, SpawnOfMissingProgramFails) {
  auto child = ChildProcess::Spawn({.argv = {"/nonexistent/program"}});
  EXPECT_EQ(child.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChildProcess, WaitForTimesOutOnRunningChild) {
  auto child = ChildProcess::Spawn({.argv = {"sleep", "10"}});
  ASSERT_TRUE(child.ok());
  auto st = child->WaitFor(absl::Milliseconds(20));
  EXPECT_EQ(st.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ChildProcess, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto child = ChildProcess::Spawn({.argv = {"sleep", "10"}});
    ASSERT_TRUE(child.ok());
    pid = child->pid();
  }
  // Reaped: the pid no longer names our child (ESRCH) rather than a zombie.
  EXPECT_EQ(::kill(pid, 0), -1);
}

// Release: the child outlives its ChildProcess (a daemon leaving a worker for its next start).
TEST(ChildProcess, ReleasedChildOutlivesTheObject) {
  pid_t pid;
  {
    auto child = ChildProcess::Spawn({.argv = {"sleep", "10"}});
    ASSERT_TRUE(child.ok());
    pid = child->Release();
    EXPECT_GT(pid, 0);
    EXPECT_FALSE(child->running());
    EXPECT_EQ(child->Release(), -1);
  }
  ASSERT_EQ(::kill(pid, 0), 0) << "the released child was killed";
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "it was reaped: it is not running";
  ::kill(pid, SIGKILL);
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
}

TEST(ChildProcess, TerminateEscalatesToKill) {
  auto child = ChildProcess::Spawn({.argv = {"sh", "-c", "trap '' TERM; sleep 10"}});
  ASSERT_TRUE(child.ok());
  absl::SleepFor(absl::Milliseconds(100));  // let the shell install its trap
  auto st = child->Terminate(absl::Milliseconds(100));
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->signal, SIGKILL);
}

TEST(ChildProcess, RedirectsStdout) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  auto child = ChildProcess::Spawn({.argv = {"echo", "hello"}, .stdout_fd = w.get()});
  ASSERT_TRUE(child.ok());
  w.Reset();
  ASSERT_TRUE(child->Wait().ok());
  char buf[16] = {};
  ASSERT_EQ(::read(r.get(), buf, sizeof(buf)), 6);
  EXPECT_STREQ(buf, "hello\n");
}

}  // namespace
}  // namespace supermachine::base
