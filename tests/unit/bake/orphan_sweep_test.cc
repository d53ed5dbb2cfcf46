// File: orphan_sweep_test.cc
// The startup sweep of bake workers a daemon crash orphaned (daemon/bake/orphan_sweep.h):
// against a made-up process table, only workers whose console names one of this daemon's
// interrupted bakes' temp dirs are selected (not another daemon's bake worker, not a VM worker,
// not a process that merely mentions the path); a pid reused before the signal is spared; the
// worker's /tmp/smbake-* socket dir goes with it; and Baker::Create runs the sweep.
#include "daemon/bake/orphan_sweep.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "daemon/bake/baker.h"
#include "daemon/bake/worker_booter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_process_table.h"

namespace supermachine::bake {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::supermachine::test_support::TempDir;

class FakeProcesses : public vm::testing::FakeProcessTable {
 public:
  // A bake worker as worker_booter.cc starts it.
  void AddBakeWorker(int pid, int64_t start, const std::string& work_dir,
                     const std::string& sock_dir = "/tmp/smbake-abc123") {
    procs_[pid] = {start,
                   {"/usr/libexec/supermachine-worker", "--kernel", "/k", "--cmdline", "quiet",
                    "--mem-mib", "512", "--vcpus", "1", "--disk", "/d.sqfs,ro,id=delta",
                    "--serial", "file:" + work_dir + "/console.log", "--vsock", sock_dir + "/vsock",
                    "--control", sock_dir + "/control"}};
  }
};

std::vector<int> Pids(const std::vector<OrphanBakeWorker>& ws) {
  std::vector<int> out;
  out.reserve(ws.size());
  for (const OrphanBakeWorker& w : ws) {
    out.push_back(w.pid);
  }
  return out;
}

TEST(BakeWorkDirOf, IsTheConsoleDirOfABakeWorkerOnly) {
  FakeProcesses p;
  p.AddBakeWorker(10, 1, "/var/lib/sm/snapshots/.tmp-bake-1-2-3");
  EXPECT_EQ(BakeWorkDirOf(p.Argv(10)), "/var/lib/sm/snapshots/.tmp-bake-1-2-3");
  EXPECT_EQ(BakeWorkDirOf({"w", "--serial", "file:/a/b/../c/console.log"}), "/a/c");
  EXPECT_EQ(BakeWorkDirOf({"w", "--serial", "file:/a/other.log"}), "");
  EXPECT_EQ(BakeWorkDirOf({"w", "--serial", "file:rel/console.log"}), "");
  EXPECT_EQ(BakeWorkDirOf({"w", "--serial", "stdio"}), "");
  EXPECT_EQ(BakeWorkDirOf({"w", "--serial"}), "");
  // argv[0] is never a flag.
  EXPECT_EQ(BakeWorkDirOf({"--serial", "file:/a/console.log"}), "");
  EXPECT_EQ(BakeWorkDirOf({}), "");
}

TEST(FindOrphanBakeWorkers, SelectsOnlyWorkersOfThisDaemonsInterruptedBakes) {
  const std::string ours1 = "/var/lib/sm/snapshots/.tmp-bake-77-1000-0";
  const std::string ours2 = "/srv/custom-snaps/.tmp-bake-77-1001-1";  // a request's own dir
  FakeProcesses p;
  p.AddBakeWorker(100, 5000, ours1, "/tmp/smbake-aaaaaa");
  p.AddBakeWorker(101, 5001, ours2 + "/", "/tmp/smbake-bbbbbb");
  // Another supermachined (other state dir) baking right now: not ours.
  p.AddBakeWorker(200, 5002, "/var/lib/other/snapshots/.tmp-bake-88-1000-0");
  // Another bake in our snapshots dir that our store does not list (not ours either).
  p.AddBakeWorker(201, 5003, "/var/lib/sm/snapshots/.tmp-bake-88-1000-1");
  // A VM worker of this daemon (reconcile's business) and bystanders naming the path.
  p.procs_[300] = {5004, {"supermachine-worker", "--restore", "/snap", "--control",
                          "/run/sm/vms/vm-1/control"}};
  p.procs_[301] = {5005, {"tail", "-f", ours1 + "/console.log"}};
  p.procs_[302] = {5006, {"grep", "--serial", ours1 + "/console.log"}};
  p.procs_[303] = {5007, {}};  // kernel thread
  p.procs_[1] = {1, {"init", "--serial", "file:" + ours1 + "/console.log"}};

  std::vector<OrphanBakeWorker> found = FindOrphanBakeWorkers(p, {ours1, ours2, ""});
  EXPECT_THAT(Pids(found), UnorderedElementsAre(100, 101));
  for (const OrphanBakeWorker& w : found) {
    if (w.pid == 100) {
      EXPECT_EQ(w.start_time, 5000);
      EXPECT_EQ(w.work_dir, ours1);
      EXPECT_EQ(w.socket_dir, "/tmp/smbake-aaaaaa");
    } else {
      EXPECT_EQ(w.work_dir, ours2);
      EXPECT_EQ(w.socket_dir, "/tmp/smbake-bbbbbb");
    }
  }
  EXPECT_THAT(FindOrphanBakeWorkers(p, {}), IsEmpty());
}

TEST(FindOrphanBakeWorkers, NeverNamesASocketDirOutsideTmpSmbake) {
  FakeProcesses p;
  p.AddBakeWorker(100, 1, "/s/.tmp-bake-1", "/home/user");
  p.AddBakeWorker(101, 1, "/s/.tmp-bake-2", "/tmp/smbake-x/../../etc");
  std::vector<OrphanBakeWorker> found = FindOrphanBakeWorkers(p, {"/s/.tmp-bake-1", "/s/.tmp-bake-2"});
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].socket_dir, "");
  EXPECT_EQ(found[1].socket_dir, "");
}

TEST(KillOrphanBakeWorkers, KillsAndRemovesTheSocketDirButSparesAReusedPid) {
  std::string sock = absl::StrCat(kBakeSocketDirPrefix, "XXXXXX");
  ASSERT_NE(::mkdtemp(sock.data()), nullptr);
  std::ofstream(sock + "/control") << "";
  FakeProcesses p;
  p.AddBakeWorker(100, 5000, "/s/.tmp-bake-1", sock);
  p.AddBakeWorker(101, 5001, "/s/.tmp-bake-2", "/tmp/smbake-gone00");
  std::vector<OrphanBakeWorker> found = FindOrphanBakeWorkers(p, {"/s/.tmp-bake-1", "/s/.tmp-bake-2"});
  ASSERT_EQ(found.size(), 2u);
  // Between the scan and the kill, 101 exits and its pid goes to an unrelated process.
  p.procs_[101] = {9999, {"bash"}};

  OrphanSweepReport r = KillOrphanBakeWorkers(p, found, absl::Seconds(1));
  EXPECT_THAT(Pids(r.killed), ElementsAre(100));
  EXPECT_THAT(p.signals_, ElementsAre(std::make_pair(100, SIGKILL)));
  EXPECT_TRUE(p.procs_.count(101) == 1) << "the reused pid was signalled";
  EXPECT_THAT(r.problems, IsEmpty());
  struct stat st {};
  EXPECT_NE(::stat(sock.c_str(), &st), 0) << sock << " was left behind";
}

TEST(KillOrphanBakeWorkers, AWorkerThatSurvivesIsAProblemNotAKill) {
  FakeProcesses p;
  p.AddBakeWorker(100, 5000, "/s/.tmp-bake-1");
  p.unkillable_.insert(100);
  OrphanSweepReport r =
      KillOrphanBakeWorkers(p, FindOrphanBakeWorkers(p, {"/s/.tmp-bake-1"}), absl::Milliseconds(50));
  EXPECT_THAT(r.killed, IsEmpty());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0], ::testing::HasSubstr("pid 100 survived SIGKILL"));
}

void WriteFile(const std::string& path, const std::string& data) { std::ofstream(path) << data; }

TEST(BakerCreate, KillsTheWorkersOfInterruptedBakesOnly) {
  TempDir dir;
  for (const char* f : {"vmlinux", "agent", "worker"}) {
    WriteFile(dir.Join(f), f);
  }
  auto s = store::Store::Open(dir.Join("store.db"), [] { return int64_t{1000}; });
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Mutex mu;
  const std::string snaps = dir.Join("state") + "/snapshots";
  const std::string interrupted = snaps + "/.tmp-bake-1-2-3";
  ASSERT_EQ(::system(("mkdir -p '" + interrupted + "'").c_str()), 0);
  auto id = s->BeginBake("", "{}", interrupted);
  ASSERT_TRUE(id.ok()) << id.status();

  FakeProcesses p;
  p.AddBakeWorker(100, 5000, interrupted);
  p.AddBakeWorker(200, 5001, "/elsewhere/snapshots/.tmp-bake-9-9-9");  // another daemon's
  auto baker = Baker::Create({.with_store = LockedStoreAccess(&*s, &mu),
                              .state_dir = dir.Join("state"),
                              .kernel_path = dir.Join("vmlinux"),
                              .agent_path = dir.Join("agent"),
                              .worker_path = dir.Join("worker"),
                              .procs = &p});
  ASSERT_TRUE(baker.ok()) << baker.status();
  const BakeRecovery& rec = (*baker)->recovery();
  EXPECT_EQ(rec.interrupted_bakes, 1u);
  EXPECT_THAT(Pids(rec.killed_workers), ElementsAre(100));
  EXPECT_THAT(rec.problems, IsEmpty());
  EXPECT_THAT(p.signals_, ElementsAre(std::make_pair(100, SIGKILL)));
  EXPECT_EQ(p.procs_.count(200), 1u);
  EXPECT_EQ(s->GetBake(*id)->status, "failed");
  struct stat st {};
  EXPECT_NE(::stat(interrupted.c_str(), &st), 0);
}

}  // namespace
}  // namespace supermachine::bake
