// File: launcher_sandbox_test.cc
// The daemon's launcher and the worker sandbox, with stand-in workers (shell scripts, no KVM):
// the sandbox flags reach the worker; a worker killed by SIGSYS is reported as a seccomp
// violation (error message and an audit line in worker.log); a worker whose cgroup counted an
// OOM kill ends as guest_oom, and its cgroup directory is removed.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "daemon/vm/worker_launcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;
using test_support::ReadFileOrDie;
using test_support::TempDir;
using test_support::WriteFileOrDie;

std::string Script(const TempDir& dir, const std::string& body) {
  const std::string path = dir.Join("fake-worker.sh");
  WriteFileOrDie(path, "#!/bin/sh\n" + body);
  chmod(path.c_str(), 0755);
  return path;
}

TEST(LauncherSandbox, PassesTheSandboxFlagsAndReportsSigsysAsASeccompViolation) {
  TempDir dir;
  // Records its argv, then dies the way a seccomp kill ends a worker.
  const std::string fake = Script(dir, "echo \"$@\" > " + dir.Join("argv") + "\nkill -SYS $$\n");
  testing::FakeJournal journal;
  WorkerLauncher launcher({.worker_binary = fake,
                           .runtime_dir = dir.Join("vms"),
                           .journal = &journal,
                           .seccomp = "on",
                           .jail = true,
                           .jail_uid = 4000,
                           .jail_gid = 4001});
  auto vm = launcher.Launch({.vm_id = "v1", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                            absl::Now() + absl::Seconds(20));
  ASSERT_FALSE(vm.ok());
  EXPECT_THAT(vm.status().message(), HasSubstr("seccomp violation"));
  const std::string argv = ReadFileOrDie(dir.Join("argv"));
  EXPECT_THAT(argv, HasSubstr("--seccomp=on"));
  EXPECT_THAT(argv, HasSubstr("--jail-dir=" + dir.Join("vms") + "/v1/jail"));
  EXPECT_THAT(argv, HasSubstr("--uid=4000 --gid=4001"));
  EXPECT_THAT(argv, ::testing::Not(HasSubstr("--cgroup")));
  EXPECT_THAT(ReadFileOrDie(dir.Join("vms") + "/v1/worker.log"),
              HasSubstr("supermachined: VM v1: seccomp violation"));
  EXPECT_EQ(journal.EndOf("v1"), store::EndCause::kWorkerCrash);
}

TEST(LauncherSandbox, AnOomKillCountedByTheCgroupEndsTheVmAsGuestOom) {
  TempDir dir;
  const std::string parent = dir.Join("cgroup");
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0);
  // Stands in for the worker and the kernel: creates its cgroup (as --cgroup says), has the
  // OOM killer's count recorded there, and dies by SIGKILL as an OOM kill does.
  const std::string fake = Script(dir,
                                  "for a in \"$@\"; do case $a in --cgroup=*) cg=${a#--cgroup=};; "
                                  "esac; done\n"
                                  "mkdir -p $cg && echo \"$cg\" > " +
                                      dir.Join("cgroup-arg") +
                                      "\nprintf 'oom 1\\noom_kill 1\\n' > $cg/memory.events\n"
                                      "kill -KILL $$\n");
  testing::FakeJournal journal;
  WorkerLauncher launcher({.worker_binary = fake,
                           .runtime_dir = dir.Join("vms"),
                           .journal = &journal,
                           .cgroup_parent = parent});
  auto vm = launcher.Launch({.vm_id = "v2", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                            absl::Now() + absl::Seconds(20));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(ReadFileOrDie(dir.Join("cgroup-arg")), parent + "/sm-v2\n");
  EXPECT_THAT(vm.status().message(), HasSubstr("OOM killer"));
  EXPECT_EQ(journal.EndOf("v2"), store::EndCause::kGuestOom);
  EXPECT_THAT(ReadFileOrDie(dir.Join("vms") + "/v2/worker.log"), HasSubstr("OOM killer"));
}

}  // namespace
}  // namespace supermachine::vm
