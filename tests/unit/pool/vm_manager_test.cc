// File: vm_manager_test.cc
// VmManager with a fake launcher: unknown snapshots, release never returns a VM to the pool,
// a handed-out VM whose worker dies is journaled as a crash and answers NotFound saying so.
#include "daemon/vm/vm_manager.h"

#include "daemon/vm/ports_json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;
using testing::Eventually;
using testing::FakeJournal;
using testing::FakeLauncher;

class VmManagerTest : public ::testing::Test {
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
        .default_pool = {.min = 0, .max = 2},
        .on_acquire = [this](const std::string&, bool hit, absl::Duration) {
          (hit ? hits_ : misses_)++;
        },
        .on_worker_crash = [this] { crashes_++; },
        .monitor_interval = absl::Milliseconds(10),
    });
  }
  FakeJournal journal_;
  FakeLauncher launcher_{&journal_};
  std::atomic<int> hits_{0};
  std::atomic<int> misses_{0};
  std::atomic<int> crashes_{0};
};

TEST_F(VmManagerTest, UnknownSnapshotIsNotFoundWithAHint) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "nope"});
  EXPECT_TRUE(absl::IsNotFound(vm.status())) << vm.status();
  EXPECT_THAT(vm.status().message(), HasSubstr("smctl bake"));
}

TEST_F(VmManagerTest, ReleaseDestroysTheVmAndThePoolRefillsWithAFreshOne) {
  auto m = Make({{"snap", PoolConfig{.min = 1, .max = 3}}});
  ASSERT_TRUE(m->StartPools().ok());
  absl::StatusOr<VmView> vm;
  ASSERT_TRUE(Eventually([&] {
    auto stats = m->PoolStatistics();
    return !stats.empty() && stats[0].stats.ready == 1;
  }));
  vm = m->Acquire({.snapshot = "snap", .name = "web"});
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_TRUE(vm->pool_hit);
  EXPECT_EQ(hits_.load(), 1);
  const std::string id = vm->id;
  EXPECT_TRUE(m->Get("web").ok()) << "found by name";
  ASSERT_TRUE(m->Release("web").ok());
  EXPECT_TRUE(launcher_.State(id)->stopped);
  EXPECT_EQ(journal_.EndOf(id), store::EndCause::kReleased);
  absl::Status again = m->Release(id);
  EXPECT_TRUE(absl::IsNotFound(again)) << again;
  EXPECT_THAT(again.message(), HasSubstr("released"));
  // The next VM is another one: a used VM never goes back to the pool.
  absl::StatusOr<VmView> next = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(next->id, id);
}

TEST_F(VmManagerTest, DeadHandedOutVmIsJournaledAsCrashAndGone) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_FALSE(vm->pool_hit);
  launcher_.State(vm->id)->dead = true;
  ASSERT_TRUE(Eventually([&] { return journal_.EndOf(vm->id).has_value(); }));
  EXPECT_EQ(*journal_.EndOf(vm->id), store::EndCause::kWorkerCrash);
  EXPECT_EQ(crashes_.load(), 1);
  absl::StatusOr<VmView> gone = m->Get(vm->id);
  EXPECT_TRUE(absl::IsNotFound(gone.status()));
  EXPECT_THAT(gone.status().message(), HasSubstr("worker process died"));
  EXPECT_EQ(m->Running(), 0u);
}

TEST_F(VmManagerTest, BadGuestPortIsInvalidArgumentAndStartsNothing) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap", .ports = {{.guest_port = 0}}});
  EXPECT_TRUE(absl::IsInvalidArgument(vm.status()));
  EXPECT_EQ(launcher_.launches_.load(), 0);
}

TEST_F(VmManagerTest, HostPortInUseDestroysTheVmAndSaysSo) {
  auto m = Make({});
  absl::StatusOr<VmView> first =
      m->Acquire({.snapshot = "snap", .ports = {{.host_port = 0, .guest_port = 80}}});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->ports.size(), 1u);
  const uint16_t taken = first->ports[0].host_port;
  EXPECT_NE(taken, 0);
  absl::StatusOr<VmView> second =
      m->Acquire({.snapshot = "snap", .ports = {{.host_port = taken, .guest_port = 80}}});
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("already in use"));
  EXPECT_EQ(m->Running(), 1u);
  EXPECT_EQ(journal_.EndCount(), 1u) << "the VM that could not get its port was ended";
}

// Acquire journals the hand-out (what a restarted daemon re-adopts from): name, labels and
// the ports as bound, before the caller sees the VM.
TEST_F(VmManagerTest, AcquireJournalsNameLabelsAndBoundPorts) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap",
                                          .name = "web",
                                          .labels_json = R"({"team":"a"})",
                                          .ports = {{.host_port = 0, .guest_port = 80}}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  std::optional<store::VmRecord> rec = journal_.AcquiredOf(vm->id);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->name, "web");
  EXPECT_EQ(rec->labels_json, R"({"team":"a"})");
  absl::StatusOr<std::vector<PortSpec>> ports = PortsFromJson(rec->ports_json);
  ASSERT_TRUE(ports.ok()) << ports.status() << rec->ports_json;
  ASSERT_EQ(ports->size(), 1u);
  EXPECT_EQ((*ports)[0].host_port, vm->ports[0].host_port);
  EXPECT_NE((*ports)[0].host_port, 0);
  EXPECT_EQ((*ports)[0].guest_port, 80u);
  EXPECT_EQ((*ports)[0].host_address, "127.0.0.1");
}

// A re-adopted VM is handed out again under its name with its forward on the same host port,
// counts against the pool's max, and ends like any other.
TEST_F(VmManagerTest, AdoptedVmIsBackWithNamePortAndPoolSlot) {
  auto m = Make({});  // default pool: max 2
  // A free port, as the dead daemon had bound it.
  uint16_t port = 0;
  {
    auto probe = PortForwarder::Start("127.0.0.1", 0, [](absl::Time) {
      return absl::StatusOr<base::UniqueFd>(absl::UnavailableError("probe"));
    });
    ASSERT_TRUE(probe.ok());
    port = (*probe)->port();
  }
  auto state = std::make_shared<testing::FakeVmState>();
  store::VmRecord row;
  row.id = "adopted1";
  row.name = "web";
  row.snapshot_name = "snap";
  row.acquired_ms = 1000;
  row.ports_json = PortsToJson({{.host_address = "127.0.0.1", .host_port = port, .guest_port = 80}});
  absl::StatusOr<std::vector<std::string>> warnings =
      m->Adopt(std::make_unique<testing::FakeVm>("adopted1", state), row);
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, ::testing::IsEmpty());
  absl::StatusOr<VmView> view = m->Get("web");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->id, "adopted1");
  EXPECT_EQ(view->acquired, absl::FromUnixMillis(1000));
  ASSERT_EQ(view->ports.size(), 1u);
  EXPECT_EQ(view->ports[0].host_port, port);
  // The port is bound again (by us): a second forwarder on it is refused.
  EXPECT_FALSE(PortForwarder::Start("127.0.0.1", port, [](absl::Time) {
                 return absl::StatusOr<base::UniqueFd>(absl::UnavailableError("x"));
               }).ok());
  // One slot of max 2 is the adopted VM's.
  ASSERT_TRUE(m->Acquire({.snapshot = "snap"}).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(m->Acquire({.snapshot = "snap"}).status()));
  ASSERT_TRUE(m->Release("web").ok());
  EXPECT_TRUE(state->stopped);
  EXPECT_EQ(journal_.EndOf("adopted1"), store::EndCause::kReleased);
  EXPECT_TRUE(m->Acquire({.snapshot = "snap"}).ok()) << "the adopted VM's slot is free again";
}

TEST_F(VmManagerTest, AdoptRejectsUnreadablePorts) {
  auto m = Make({});
  store::VmRecord row;
  row.id = "x";
  row.snapshot_name = "snap";
  row.ports_json = "{not json";
  auto state = std::make_shared<testing::FakeVmState>();
  EXPECT_TRUE(absl::IsInvalidArgument(
      m->Adopt(std::make_unique<testing::FakeVm>("x", state), row).status()));
  EXPECT_FALSE(m->Get("x").ok());
}

TEST_F(VmManagerTest, DestructionReleasesEverything) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(vm.ok());
  const std::string id = vm->id;
  vm = absl::StatusOr<VmView>(absl::CancelledError("drop"));  // drop our reference
  m.reset();
  EXPECT_TRUE(launcher_.State(id)->stopped);
  EXPECT_EQ(journal_.EndOf(id), store::EndCause::kReleased);
}

}  // namespace
}  // namespace supermachine::vm
