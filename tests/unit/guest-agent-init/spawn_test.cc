// File: tests/unit/guest-agent-init/spawn_test.cc
// Tests guest-agent/workload/spawn.cc: PATH lookup, env/cwd/stdio, exec failure reporting.
#include "guest-agent/workload/spawn.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::ReadFileOrDie;
using ::supermachine::test_support::TempDir;
using ::testing::ElementsAre;

TEST(ExecCandidates, PathWithSlashIsUsedAsIs) {
  EXPECT_THAT(ExecCandidates("./run", "/bin:/usr/bin"), ElementsAre("./run"));
}

TEST(ExecCandidates, BareNameIsTriedInEachPathEntryAndEmptyMeansCwd) {
  EXPECT_THAT(ExecCandidates("sh", "/usr/bin::/bin"),
              ElementsAre("/usr/bin/sh", "sh", "/bin/sh"));
}

TEST(EnvValue, FindsExactKeyOnly) {
  EXPECT_EQ(EnvValue({"PATHX=1", "PATH=/bin"}, "PATH", "dflt"), "/bin");
  EXPECT_EQ(EnvValue({"PATHX=1"}, "PATH", "dflt"), "dflt");
}

TEST(SpawnProcess, RunsWithEnvCwdAndStdoutFromSpec) {
  TempDir dir;
  int out = open(dir.Join("out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(out, 0);
  Reaper reaper;
  SpawnResult r = SpawnProcess(&reaper, {.argv = {"sh", "-c", "echo \"$GREETING $(pwd)\""},
                                         .env = {"PATH=/usr/bin:/bin", "GREETING=hi"},
                                         .cwd = dir.path(),
                                         .user = {.uid = getuid(), .gid = getgid(),
                                                  .groups = {getgid()}},
                                         .stdout_fd = out});
  close(out);
  ASSERT_GT(r.pid, 0) << r.error;
  EXPECT_EQ(r.error, "");
  std::optional<ReapedStatus> st = reaper.Wait(r.pid, 10000);
  ASSERT_TRUE(st);
  EXPECT_EQ(WEXITSTATUS(st->wait_status), 0);
  EXPECT_EQ(ReadFileOrDie(dir.Join("out")), "hi " + dir.path() + "\n");
}

TEST(SpawnProcess, MissingProgramReportsExecErrorAndExits127) {
  Reaper reaper;
  SpawnResult r = SpawnProcess(&reaper, {.argv = {"/nonexistent/prog"},
                                         .user = {.uid = getuid(), .gid = getgid(),
                                                  .groups = {getgid()}}});
  ASSERT_GT(r.pid, 0);
  EXPECT_EQ(r.error, "exec /nonexistent/prog: No such file or directory");
  std::optional<ReapedStatus> st = reaper.Wait(r.pid, 10000);
  ASSERT_TRUE(st);
  EXPECT_EQ(WEXITSTATUS(st->wait_status), 127);
}

TEST(SpawnProcess, MissingCwdIsReported) {
  Reaper reaper;
  SpawnResult r = SpawnProcess(&reaper, {.argv = {"/bin/true"},
                                         .cwd = "/nonexistent-dir",
                                         .user = {.uid = getuid(), .gid = getgid(),
                                                  .groups = {getgid()}}});
  ASSERT_GT(r.pid, 0);
  EXPECT_EQ(r.error, "chdir /nonexistent-dir: No such file or directory");
  EXPECT_TRUE(reaper.Wait(r.pid, 10000));
}

}  // namespace
}  // namespace supermachine::agent
