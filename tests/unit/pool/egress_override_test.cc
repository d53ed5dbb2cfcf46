// File: egress_override_test.cc
// The per-Acquire egress policy override in daemon/vm: it is part of the pool key (a VM
// pooled for one policy is never handed out for another, nor for "the snapshot's own"), it
// reaches the launcher, and the real launcher turns it into the worker's --net flag.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/vm/vm_manager.h"
#include "daemon/vm/worker_launcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Eventually;
using testing::FakeJournal;
using testing::FakeLauncher;

// Records the policy of every launch, then makes a fake VM.
class RecordingLauncher : public VmLauncher {
 public:
  explicit RecordingLauncher(FakeJournal* journal) : fake_(journal) {}
  absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                    absl::Time deadline) override {
    {
      absl::MutexLock lock(&mu_);
      policies_[request.vm_id] = request.egress_policy;
    }
    return fake_.Launch(request, deadline);
  }
  std::string PolicyOf(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto it = policies_.find(id);
    return it == policies_.end() ? "<not launched>" : it->second;
  }

 private:
  FakeLauncher fake_;
  absl::Mutex mu_;
  std::map<std::string, std::string> policies_;
};

class EgressOverrideTest : public ::testing::Test {
 protected:
  std::unique_ptr<VmManager> Make(std::map<std::string, PoolConfig> pools) {
    return std::make_unique<VmManager>(VmManagerOptions{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [](const std::string& name) -> absl::StatusOr<std::string> {
          if (name == "snap") {
            return std::string("/snapshots/snap");
          }
          return absl::NotFoundError("no such snapshot");
        },
        .pools = std::move(pools),
        .default_pool = {.min = 0, .max = 4},
        .monitor_interval = absl::Milliseconds(10),
    });
  }
  FakeJournal journal_;
  RecordingLauncher launcher_{&journal_};
};

TEST_F(EgressOverrideTest, WarmVmOfTheSnapshotsOwnPolicyIsNotHandedOutForAnOverride) {
  auto m = Make({{"snap", PoolConfig{.min = 1, .max = 4}}});
  ASSERT_TRUE(m->StartPools().ok());
  ASSERT_TRUE(Eventually([&] {
    auto stats = m->PoolStatistics();
    return stats.size() == 1 && stats[0].stats.ready == 1;
  }));
  absl::StatusOr<VmView> over = m->Acquire({.snapshot = "snap", .egress_policy = "allow_all"});
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_FALSE(over->pool_hit) << "the warm VM was restored with the snapshot's own policy";
  EXPECT_EQ(launcher_.PolicyOf(over->id), "allow_all");
  EXPECT_EQ(over->egress_policy, "allow_all");

  absl::StatusOr<VmView> plain = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->pool_hit) << "the warm VM is still there for callers without an override";
  EXPECT_EQ(launcher_.PolicyOf(plain->id), "");
  EXPECT_EQ(plain->egress_policy, "");
}

TEST_F(EgressOverrideTest, EachPolicyHasItsOwnPoolAndStats) {
  auto m = Make({});
  absl::StatusOr<VmView> a = m->Acquire({.snapshot = "snap", .egress_policy = "allow_all"});
  absl::StatusOr<VmView> b =
      m->Acquire({.snapshot = "snap", .egress_policy = "denylist:10.0.0.0/8"});
  absl::StatusOr<VmView> c = m->Acquire({.snapshot = "snap", .egress_policy = "allow_all"});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(launcher_.PolicyOf(a->id), "allow_all");
  EXPECT_EQ(launcher_.PolicyOf(b->id), "denylist:10.0.0.0/8");
  EXPECT_EQ(launcher_.PolicyOf(c->id), "allow_all");
  std::vector<std::string> keys;
  for (const NamedPoolStats& p : m->PoolStatistics()) {
    EXPECT_EQ(p.snapshot, "snap");
    keys.push_back(p.egress_policy + "=" + std::to_string(p.stats.in_use));
  }
  EXPECT_THAT(keys, ElementsAre("allow_all=2", "denylist:10.0.0.0/8=1"));
}

TEST_F(EgressOverrideTest, AnOverridePoolKeepsNoWarmVms) {
  auto m = Make({{"snap", PoolConfig{.min = 2, .max = 4}}});
  absl::StatusOr<VmView> a = m->Acquire({.snapshot = "snap", .egress_policy = "allow_all"});
  ASSERT_TRUE(a.ok()) << a.status();
  absl::SleepFor(absl::Milliseconds(300));  // several refill rounds
  for (const NamedPoolStats& p : m->PoolStatistics()) {
    if (p.egress_policy == "allow_all") {
      EXPECT_EQ(p.stats.ready + p.stats.starting, 0u);
    }
  }
}

TEST(WorkerLauncherEgressTest, OverrideBecomesTheWorkersNetFlagAndNoneWithout) {
  std::string dir = ::testing::TempDir() + "/wl-egress";
  std::filesystem::create_directories(dir);
  // A stand-in worker that records its arguments and exits as a refused restore does.
  std::string fake = dir + "/fake-worker.sh";
  std::ofstream(fake) << "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > \"$(dirname \"$0\")/args.$$\"\n"
                         "cp \"$(dirname \"$0\")/args.$$\" \"$(dirname \"$0\")/args.last\"\nexit 2\n";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  FakeJournal journal;
  WorkerLauncher launcher({.worker_binary = fake, .runtime_dir = dir, .journal = &journal});
  auto args = [&] {
    std::ifstream in(dir + "/args.last");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  ASSERT_FALSE(launcher
                   .Launch({.vm_id = "e1",
                            .snapshot_dir = "/snaps/s",
                            .egress_policy = "allowlist:192.168.0.0/16"},
                           absl::Now() + absl::Seconds(10))
                   .ok());
  EXPECT_THAT(args(), HasSubstr("\n--net\npasst,egress=allowlist:192.168.0.0/16\n"));
  ASSERT_FALSE(
      launcher.Launch({.vm_id = "e2", .snapshot_dir = "/snaps/s"}, absl::Now() + absl::Seconds(10))
          .ok());
  EXPECT_THAT(args(), HasSubstr("--restore\n/snaps/s\n"));
  EXPECT_THAT(args(), ::testing::Not(HasSubstr("--net")));
}

}  // namespace
}  // namespace supermachine::vm
