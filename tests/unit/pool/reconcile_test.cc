// File: reconcile_test.cc
// Crash recovery at daemon start (daemon/vm/reconcile.h): the plan against a made-up process
// table (every row state × worker alive / gone / pid reused), the /proc parser against a fake
// /proc tree, and Reconcile against real child processes (a surviving "worker" is adopted, a
// pooled one and an unjournaled one are killed, another directory's is left alone).
#include "daemon/vm/reconcile.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_process_table.h"
#include "tests/unit/pool/fake_vm.h"
#include "worker/base/child_process.h"

namespace supermachine::vm {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using testing::FakeJournal;

constexpr char kVmDir[] = "/run/sm/vms";

class FakeProcesses : public testing::FakeProcessTable {
 public:
  void AddWorker(int pid, int64_t start, const std::string& vm_dir, const std::string& id) {
    procs_[pid] = {start,
                   {"supermachine-worker", "--restore", "/snap", "--vsock",
                    absl::StrCat(vm_dir, "/", id, "/vsock"), "--control",
                    absl::StrCat(vm_dir, "/", id, "/control")}};
  }
};

store::VmRecord Row(const std::string& id, const std::string& state, int pid, int64_t start,
                    bool acquired) {
  store::VmRecord r;
  r.id = id;
  r.state = state;
  r.pid = pid;
  r.pid_start_time = start;
  r.control_socket = absl::StrCat(kVmDir, "/", id, "/control");
  if (acquired) {
    r.acquired_ms = 1;
  }
  return r;
}

std::vector<std::string> Ids(const std::vector<store::VmRecord>& rows) {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    out.push_back(r.id);
  }
  return out;
}

std::map<std::string, store::EndCause> Ends(const ReconcilePlan& plan) {
  std::map<std::string, store::EndCause> out;
  for (const auto& [row, end] : plan.end) {
    out[row.id] = end.cause;
  }
  return out;
}

TEST(PlanReconcileTest, EachRowStateAndWorkerFate) {
  FakeProcesses procs;
  procs.AddWorker(100, 5000, kVmDir, "handed");      // handed out, alive: adopt
  procs.AddWorker(101, 5001, kVmDir, "pooled");      // pooled, alive: stop
  procs.AddWorker(102, 5002, kVmDir, "starting");    // restore interrupted: stop
  procs.AddWorker(103, 9999, kVmDir, "reused");      // pid now another process's (start differs)
  procs.AddWorker(104, 5004, kVmDir, "unjournaled"); // spawned, never journaled: kill
  procs.AddWorker(105, 5005, "/elsewhere", "x");     // another daemon's directory: leave
  procs.procs_[106] = {5006, {"bash"}};              // unrelated: leave
  const std::vector<store::VmRecord> rows = {
      Row("handed", "running", 100, 5000, true),
      Row("pooled", "running", 101, 5001, false),
      Row("starting", "starting", 102, 5002, false),
      Row("reused", "running", 103, 5003, true),
      Row("dead", "running", 200, 6000, true),
  };
  ReconcilePlan plan = PlanReconcile(rows, procs, kVmDir);
  EXPECT_THAT(Ids(plan.adopt), ElementsAre("handed"));
  EXPECT_EQ(Ends(plan), (std::map<std::string, store::EndCause>{
                            {"pooled", store::EndCause::kReleased},
                            {"starting", store::EndCause::kReleased},
                            {"reused", store::EndCause::kWorkerCrash},
                            {"dead", store::EndCause::kWorkerCrash},
                        }));
  // pid 103 runs our argv but its start time says it is not the journaled worker: it is an
  // unclaimed worker of our directory all the same, so it goes too.
  std::set<int> killed;
  for (const auto& [pid, start] : plan.kill) {
    killed.insert(pid);
  }
  EXPECT_EQ(killed, (std::set<int>{101, 102, 103, 104}));
}

// A jailed worker is two processes with one argv: the journaled keeper and, as its child, the
// VMM in its own PID namespace. Adopting the VM keeps both; an unclaimed pair goes.
TEST(PlanReconcileTest, TheJailedVmmBelowAnAdoptedKeeperIsKept) {
  FakeProcesses procs;
  procs.AddWorker(100, 5000, kVmDir, "jailed");
  procs.AddWorker(101, 5001, kVmDir, "jailed");
  procs.procs_[101].ppid = 100;
  procs.AddWorker(102, 5002, kVmDir, "stray");
  procs.AddWorker(103, 5003, kVmDir, "stray");
  procs.procs_[103].ppid = 102;
  ReconcilePlan plan = PlanReconcile({Row("jailed", "running", 100, 5000, true)}, procs, kVmDir);
  EXPECT_THAT(Ids(plan.adopt), ElementsAre("jailed"));
  std::set<int> killed;
  for (const auto& [pid, start] : plan.kill) {
    killed.insert(pid);
  }
  EXPECT_EQ(killed, (std::set<int>{102, 103}));
}

TEST(PlanReconcileTest, RowWithoutStartTimeIsNeverTrusted) {
  FakeProcesses procs;
  procs.AddWorker(100, 5000, kVmDir, "a");
  store::VmRecord row = Row("a", "running", 100, 0, true);
  row.pid_start_time.reset();
  ReconcilePlan plan = PlanReconcile({row}, procs, kVmDir);
  EXPECT_THAT(plan.adopt, IsEmpty());
  EXPECT_EQ(Ends(plan).at("a"), store::EndCause::kWorkerCrash);
  ASSERT_EQ(plan.kill.size(), 1u);  // our directory's worker, claimed by nobody
  EXPECT_EQ(plan.kill[0].first, 100);
}

TEST(PlanReconcileTest, VmDirIsComparedNormalised) {
  FakeProcesses procs;
  procs.AddWorker(100, 5000, "/run/sm/./vms/", "a");
  ReconcilePlan plan = PlanReconcile({}, procs, "/run/sm/vms");
  EXPECT_EQ(plan.kill.size(), 1u);
}

TEST(ReconcileTest, CarriesOutThePlanAndKillsWhatCannotBeAdopted) {
  FakeProcesses procs;
  procs.AddWorker(100, 5000, kVmDir, "good");
  procs.AddWorker(101, 5001, kVmDir, "bad");   // adoption fails (agent does not answer)
  procs.AddWorker(102, 5002, kVmDir, "pooled");
  FakeJournal journal;
  std::vector<std::string> adopt_calls;
  ReconcileReport report = Reconcile(
      {Row("good", "running", 100, 5000, true), Row("bad", "running", 101, 5001, true),
       Row("pooled", "running", 102, 5002, false), Row("dead", "running", 300, 1, true)},
      kVmDir,
      {.procs = &procs,
       .journal = &journal,
       .adopt = [&](const store::VmRecord& row) -> absl::Status {
         adopt_calls.push_back(row.id);
         return row.id == "bad" ? absl::UnavailableError("agent silent") : absl::OkStatus();
       },
       .kill_wait = absl::Seconds(1)});
  EXPECT_THAT(adopt_calls, UnorderedElementsAre("good", "bad"));
  EXPECT_THAT(report.adopted, ElementsAre("good"));
  EXPECT_THAT(report.ended, UnorderedElementsAre("bad", "pooled", "dead"));
  EXPECT_EQ(report.killed, 2u);
  EXPECT_EQ(journal.EndOf("bad"), store::EndCause::kWorkerCrash);
  EXPECT_EQ(journal.EndOf("pooled"), store::EndCause::kReleased);
  EXPECT_EQ(journal.EndOf("dead"), store::EndCause::kWorkerCrash);
  EXPECT_FALSE(journal.EndOf("good").has_value());
  EXPECT_EQ(procs.StartTime(100), 5000);  // the adopted worker lives on
  EXPECT_FALSE(procs.StartTime(101).has_value());
  EXPECT_FALSE(procs.StartTime(102).has_value());
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_THAT(report.problems[0], ::testing::HasSubstr("agent silent"));
}

// ProcFs reads a /proc-shaped tree: comm with spaces and parentheses, zombies count as gone,
// argv split at NULs, non-numeric entries skipped.
TEST(ProcFsTest, ParsesAFakeProcTree) {
  const std::string root = ::testing::TempDir() + "/fakeproc";
  std::filesystem::remove_all(root);
  auto write = [&](const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + rel).parent_path());
    std::ofstream(root + "/" + rel, std::ios::binary) << text;
  };
  const std::string tail = " 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ";
  write("41/stat", "41 (supermachine-wo) S" + tail + "123456 1000 2000\n");
  write("41/cmdline", std::string("supermachine-worker\0--control\0/v/x/control\0", 43));
  write("42/stat", "42 (a) (b c)) Z" + tail + "777 0\n");
  write("self/stat", "x");
  write("sys/x", "x");
  ProcFs procs(root);
  std::vector<int> pids = procs.Pids();
  std::sort(pids.begin(), pids.end());
  EXPECT_THAT(pids, ElementsAre(41, 42));
  EXPECT_EQ(procs.StartTime(41), 123456);
  EXPECT_EQ(procs.ParentPid(41), 1);
  EXPECT_FALSE(procs.ParentPid(43).has_value());
  EXPECT_FALSE(procs.StartTime(42).has_value());  // zombie
  EXPECT_FALSE(procs.StartTime(43).has_value());  // absent
  EXPECT_THAT(procs.Argv(41), ElementsAre("supermachine-worker", "--control", "/v/x/control"));
  EXPECT_EQ(WorkerVmDirOf(procs.Argv(41)), "/v");
  EXPECT_THAT(procs.Argv(43), IsEmpty());
  EXPECT_EQ(ParseProcStat("42 (a) (b c)) Z" + tail + "777 0")->state, 'Z');
  EXPECT_FALSE(ParseProcStat("garbage").ok());
  std::filesystem::remove_all(root);
}

TEST(WorkerVmDirOfTest, OnlyAControlSocketInAVmDirectory) {
  EXPECT_EQ(WorkerVmDirOf({"w", "--control", "/a/b/id/control"}), "/a/b");
  EXPECT_EQ(WorkerVmDirOf({"w", "--control", "/a/b/id/other"}), "");
  EXPECT_EQ(WorkerVmDirOf({"w", "--control"}), "");
  EXPECT_EQ(WorkerVmDirOf({"bash"}), "");
}

TEST(WorkerUidOfTest, ReadsTheUidFlagInEitherForm) {
  EXPECT_EQ(WorkerUidOf({"w", "--jail-dir=/v/1/jail", "--uid=5001", "--gid=5001"}), 5001u);
  EXPECT_EQ(WorkerUidOf({"/bin/sh", "fake.sh", "--uid", "5002"}), 5002u);
}

TEST(WorkerUidOfTest, NoUidForRootGarbageOrAMissingFlag) {
  EXPECT_EQ(WorkerUidOf({"w", "--uid=0"}), std::nullopt);
  EXPECT_EQ(WorkerUidOf({"w", "--uid=12x"}), std::nullopt);
  EXPECT_EQ(WorkerUidOf({"w", "--uid"}), std::nullopt);
  EXPECT_EQ(WorkerUidOf({"w", "--gid=5001"}), std::nullopt);
}

// Real processes standing in for workers (a shell whose argv carries --control): Reconcile
// with the real /proc keeps the journaled handed-out one, kills the pooled and the unjournaled
// ones of our VM directory (whole process group: the shell's sleep too), leaves another
// directory's alone.
TEST(ReconcileTest, RealProcesses) {
  const std::string vm_dir = ::testing::TempDir() + "/reconcile-vms";
  auto spawn = [](const std::string& dir, const std::string& id) {
    auto child = base::ChildProcess::Spawn({
        .argv = {"/bin/sh", "-c", "sleep 120; true", "worker", "--control",
                 absl::StrCat(dir, "/", id, "/control")},
        .new_session = true,
    });
    EXPECT_TRUE(child.ok()) << child.status();
    return std::move(*child);
  };
  base::ChildProcess handed = spawn(vm_dir, "handed");
  base::ChildProcess pooled = spawn(vm_dir, "pooled");
  base::ChildProcess stray = spawn(vm_dir, "stray");
  base::ChildProcess other = spawn(vm_dir + "-other", "x");
  ProcFs procs;
  // argv is set by exec: wait until each child shows its own command line, and until the
  // shells' own children (forked for `sleep`, with the shell's argv until they exec) have
  // exec'd: Reconcile would rightly count such a transient copy as one more stray worker.
  const std::set<int> spawned = {handed.pid(), pooled.pid(), stray.pid(), other.pid()};
  ASSERT_TRUE(testing::Eventually([&] {
    std::set<int> named;
    for (int pid : procs.Pids()) {
      if (absl::StrContains(WorkerVmDirOf(procs.Argv(pid)), "/reconcile-vms")) {
        named.insert(pid);
      }
    }
    return named == spawned;
  }));
  auto row = [&](const std::string& id, int pid, bool acquired) {
    store::VmRecord r = Row(id, "running", pid, *procs.StartTime(pid), acquired);
    r.control_socket = absl::StrCat(vm_dir, "/", id, "/control");
    return r;
  };
  FakeJournal journal;
  // Private volume copies: the ended VM's go, the adopted VM's stay.
  for (const char* id : {"handed", "pooled"}) {
    std::filesystem::create_directories(absl::StrCat(vm_dir, "/", id, "/volumes"));
    std::ofstream(absl::StrCat(vm_dir, "/", id, "/volumes/v0.img")) << "ext4";
    std::ofstream(absl::StrCat(vm_dir, "/", id, "/console.log")) << "log";
  }
  ReconcileReport report =
      Reconcile({row("handed", handed.pid(), true), row("pooled", pooled.pid(), false)}, vm_dir,
                {.procs = &procs,
                 .journal = &journal,
                 .adopt = [](const store::VmRecord&) { return absl::OkStatus(); },
                 .kill_wait = absl::Seconds(10)});
  EXPECT_THAT(report.adopted, ElementsAre("handed"));
  EXPECT_EQ(report.killed, 2u);
  EXPECT_THAT(report.problems, IsEmpty());
  EXPECT_EQ(journal.EndOf("pooled"), store::EndCause::kReleased);
  EXPECT_FALSE(std::filesystem::exists(vm_dir + "/pooled/volumes"));
  EXPECT_TRUE(std::filesystem::exists(vm_dir + "/pooled/console.log"));
  EXPECT_TRUE(std::filesystem::exists(vm_dir + "/handed/volumes/v0.img"));
  auto killed = [](base::ChildProcess& c) {
    absl::StatusOr<base::ExitStatus> st = c.WaitFor(absl::Seconds(10));
    return st.ok() && st->signaled && st->signal == SIGKILL;
  };
  EXPECT_TRUE(killed(pooled));
  EXPECT_TRUE(killed(stray));
  EXPECT_TRUE(handed.running());
  EXPECT_FALSE(handed.TryWait().has_value());
  EXPECT_FALSE(other.TryWait().has_value());
}

}  // namespace
}  // namespace supermachine::vm
