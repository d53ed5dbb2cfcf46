// File: launcher_sandbox_test.cc
// The daemon's launcher and the worker sandbox, with stand-in workers (shell scripts, no KVM):
// the sandbox flags reach the worker; a worker killed by SIGSYS is reported as a seccomp
// violation (error message and an audit line in worker.log); a worker whose cgroup counted an
// OOM kill ends as guest_oom, and its cgroup directory is removed. With a uid pool
// (worker_uid_range), live workers that completed the restore handshake with a fake agent run
// as different uids, a full range refuses before spawning, a uid is freed when its worker ends,
// and a re-adopted worker's uid (read back from its argv) is held again.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "daemon/vm/uid_pool.h"
#include "daemon/vm/worker_launcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"
#include "tests/unit/pool/fake_vm.h"
#include "worker/base/child_process.h"
#include "worker/base/status_macros.h"

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

// Generous: the fake agent answers at once, but CI machines can be slow and loaded.
absl::Time Deadline() { return absl::Now() + absl::Seconds(60); }

// A stand-in worker that stays up until stopped (the shell and its sleep share the worker's
// process group).
std::string LiveWorker(const TempDir& dir) { return Script(dir, "sleep 600 &\nwait\n"); }

// A process's argv from /proc once it shows `flag`: posix_spawn (vfork) can return before the
// exec has set the new command line, and a file the script wrote could still be missing when
// the fake agent has already answered. "" if it never does.
std::string ArgvOnceItHas(int pid, const std::string& flag) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string argv;
  while (absl::Now() < deadline) {
    argv = absl::StrJoin(ProcFs().Argv(pid), " ");
    if (absl::StrContains(argv, flag)) {
      return argv;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return "";
}

// The guest side of the restore handshake for VM `id`, listening where the launcher dials.
std::unique_ptr<agent::testing::FakeAgent> AgentFor(const TempDir& dir, const std::string& id) {
  const std::string vm_dir = dir.Join("vms/" + id);
  std::filesystem::create_directories(vm_dir);
  return std::make_unique<agent::testing::FakeAgent>(
      vm_dir + "/vsock",
      [](int fd, const agent::v1::Request& req) {
        agent::v1::Response r;
        if (req.has_restored()) {
          r.mutable_restored()->set_generation(req.restored().generation());
        } else {
          r.mutable_pong()->set_agent_version("fake");
        }
        agent::testing::Send(fd, r);
      },
      agent::testing::FakeAgent::Options{.hybrid = true});
}

WorkerLauncherOptions UidPoolOptions(const TempDir& dir, const std::string& worker,
                                     VmJournal* journal, std::shared_ptr<UidPool> pool) {
  return {.worker_binary = worker,
          .runtime_dir = dir.Join("vms"),
          .journal = journal,
          .jail = true,
          .uid_pool = std::move(pool)};
}

TEST(LauncherUidPool, TwoLiveVmsRunAsDifferentUids) {
  TempDir dir;
  auto agent1 = AgentFor(dir, "v1");
  auto agent2 = AgentFor(dir, "v2");
  testing::FakeJournal journal;
  auto pool = std::make_shared<UidPool>(5000, 10);
  WorkerLauncher launcher(UidPoolOptions(dir, LiveWorker(dir), &journal, pool));

  auto vm1 = launcher.Launch({.vm_id = "v1", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                             Deadline());
  auto vm2 = launcher.Launch({.vm_id = "v2", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                             Deadline());

  ASSERT_TRUE(vm1.ok()) << vm1.status();
  ASSERT_TRUE(vm2.ok()) << vm2.status();
  EXPECT_THAT(ArgvOnceItHas((*vm1)->pid(), "--uid="), HasSubstr("--uid=5000 --gid=5000"));
  EXPECT_THAT(ArgvOnceItHas((*vm2)->pid(), "--uid="), HasSubstr("--uid=5001 --gid=5001"));
  EXPECT_EQ(pool->InUse(), 2u);
}

TEST(LauncherUidPool, StoppedWorkerFreesItsUid) {
  TempDir dir;
  auto agent1 = AgentFor(dir, "v1");
  testing::FakeJournal journal;
  auto pool = std::make_shared<UidPool>(5000, 1);
  WorkerLauncher launcher(UidPoolOptions(dir, LiveWorker(dir), &journal, pool));
  auto vm = launcher.Launch({.vm_id = "v1", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                            Deadline());
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_EQ(pool->InUse(), 1u);

  (*vm)->Stop(absl::Seconds(5));

  EXPECT_EQ(pool->InUse(), 0u);
}

TEST(LauncherUidPool, WorkerThatDiesFreesItsUid) {
  TempDir dir;
  testing::FakeJournal journal;
  auto pool = std::make_shared<UidPool>(5000, 1);
  WorkerLauncher launcher(UidPoolOptions(dir, Script(dir, "exit 1\n"), &journal, pool));

  auto vm = launcher.Launch({.vm_id = "v1", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                            Deadline());

  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(pool->InUse(), 0u);
  EXPECT_TRUE(pool->Acquire().ok());
}

TEST(LauncherUidPool, FullRangeRefusesBeforeSpawningAnything) {
  TempDir dir;
  testing::FakeJournal journal;
  auto pool = std::make_shared<UidPool>(5000, 1);
  UidLease held = pool->MarkTaken(5000);
  WorkerLauncher launcher(UidPoolOptions(dir, LiveWorker(dir), &journal, pool));

  auto vm = launcher.Launch({.vm_id = "v3", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
                            Deadline());

  ASSERT_FALSE(vm.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(vm.status())) << vm.status();
  EXPECT_THAT(vm.status().message(), HasSubstr("worker_uid_range"));
  EXPECT_FALSE(std::filesystem::exists(dir.Join("vms/v3"))) << "nothing spawned";
  EXPECT_EQ(journal.EndCount(), 0u) << "nothing journaled";
}

// A stand-in for a worker a previous daemon started for VM `id` (argv: its control socket plus
// `extra_args`), still running, and the store row that journals it.
struct RunningWorker {
  base::ChildProcess process;
  store::VmRecord row;
};
absl::StatusOr<RunningWorker> StartAdoptable(const TempDir& dir, const std::string& id,
                                             const std::vector<std::string>& extra_args) {
  const std::string control = dir.Join("vms/" + id + "/control");
  std::vector<std::string> argv = {"/bin/sh", Script(dir, "sleep 600 &\nwait\n"), "--control",
                                   control};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  SM_ASSIGN_OR_RETURN(base::ChildProcess process,
                      base::ChildProcess::Spawn({.argv = argv, .new_session = true}));
  SM_ASSIGN_OR_RETURN(int64_t start, ProcessStartTime(process.pid()));
  store::VmRecord row{
      .id = id, .pid = process.pid(), .pid_start_time = start, .control_socket = control};
  return RunningWorker{std::move(process), std::move(row)};
}

TEST(LauncherUidPool, AdoptedWorkersUidIsHeldUntilItStops) {
  TempDir dir;
  auto agent = AgentFor(dir, "a1");
  // A worker a previous daemon started as uid 5001 (its argv says so), still running.
  absl::StatusOr<RunningWorker> worker = StartAdoptable(dir, "a1", {"--uid=5001", "--gid=5001"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  ASSERT_NE(ArgvOnceItHas(worker->process.pid(), "--uid=5001"), "");
  testing::FakeJournal journal;
  auto pool = std::make_shared<UidPool>(5000, 2);
  WorkerLauncher launcher(UidPoolOptions(dir, "/nonexistent", &journal, pool));

  auto vm = launcher.Adopt(worker->row, Deadline());

  ASSERT_TRUE(vm.ok()) << vm.status();
  absl::StatusOr<UidLease> fresh = pool->Acquire();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->uid(), 5000u);
  EXPECT_FALSE(pool->Acquire().ok()) << "5001 is the adopted worker's";
  (*vm)->Stop(absl::Seconds(5));
  EXPECT_EQ(pool->InUse(), 1u) << "only the fresh lease is left";
}

// A worker a previous daemon started in <parent>/sm-<id>: the re-adopted VM knows its cgroup
// again, so its end removes it (and would read its OOM kills), as for a VM started here.
TEST(LauncherCgroup, AdoptedWorkersCgroupIsRemovedWhenItStops) {
  TempDir dir;
  auto agent = AgentFor(dir, "a1");
  const std::string parent = dir.Join("cgroups");
  // A plain directory stands in for the cgroup: removal is an rmdir either way, and without
  // memory.events there is no OOM count to read.
  std::filesystem::create_directories(parent + "/sm-a1");
  std::filesystem::create_directories(parent + "/sm-other");
  absl::StatusOr<RunningWorker> worker =
      StartAdoptable(dir, "a1", {"--cgroup=" + parent + "/sm-other"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  testing::FakeJournal journal;
  WorkerLauncher launcher({.worker_binary = "/nonexistent",
                           .runtime_dir = dir.Join("vms"),
                           .journal = &journal,
                           .cgroup_parent = parent});

  auto vm = launcher.Adopt(worker->row, Deadline());
  ASSERT_TRUE(vm.ok()) << vm.status();
  (*vm)->Stop(absl::Seconds(5));

  EXPECT_FALSE(std::filesystem::exists(parent + "/sm-a1")) << "the VM's cgroup left behind";
  EXPECT_TRUE(std::filesystem::exists(parent + "/sm-other"))
      << "what the worker's own argv names is not trusted";
}

}  // namespace
}  // namespace supermachine::vm
