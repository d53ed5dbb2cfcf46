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
  std::unique_ptr<VmManager> Make(std::map<std::string, PoolConfig> pools,
                                  bool keep_handed_out_on_stop = false) {
    VmManagerOptions options{
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
        .supervise_interval = absl::Milliseconds(10),
    };
    options.keep_handed_out_on_stop = keep_handed_out_on_stop;
    return std::make_unique<VmManager>(std::move(options));
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

// keep_vms_on_stop: a clean stop leaves the live handed-out VM running with its journal row
// untouched (the next start re-adopts it), and still stops the pool's ready VMs; a handed-out
// VM that had already died is journaled as such, not left behind.
TEST_F(VmManagerTest, KeepHandedOutOnStopLeavesLiveHandedOutVmsForTheNextStart) {
  auto m = Make({{"snap", PoolConfig{.min = 1, .max = 3}}}, /*keep_handed_out_on_stop=*/true);
  ASSERT_TRUE(m->StartPools().ok());
  absl::StatusOr<VmView> kept = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(kept.ok()) << kept.status();
  absl::StatusOr<VmView> dies = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(dies.ok()) << dies.status();
  const std::string kept_id = kept->id;
  const std::string dead_id = dies->id;
  launcher_.State(dead_id)->dead = true;
  ASSERT_TRUE(Eventually([&] { return journal_.EndOf(dead_id).has_value(); }));
  // The pool refills to min 1 after the two hand-outs: a ready VM that is not handed out.
  ASSERT_TRUE(Eventually([&] { return launcher_.launches_ >= 3; }));
  kept = absl::StatusOr<VmView>(absl::CancelledError("drop"));
  dies = absl::StatusOr<VmView>(absl::CancelledError("drop"));
  m.reset();

  EXPECT_TRUE(launcher_.State(kept_id)->detached);
  EXPECT_FALSE(launcher_.State(kept_id)->stopped);
  EXPECT_EQ(journal_.EndOf(kept_id), std::nullopt) << "the kept VM's row must stay running";
  EXPECT_EQ(journal_.EndOf(dead_id), store::EndCause::kWorkerCrash);
  EXPECT_FALSE(launcher_.State(dead_id)->detached);
  // Every other VM the launcher made (the pool's ready ones) was stopped.
  for (const std::string& id : launcher_.Ids()) {
    if (id != kept_id) {
      EXPECT_TRUE(launcher_.State(id)->stopped) << id;
      EXPECT_FALSE(launcher_.State(id)->detached) << id;
    }
  }
  EXPECT_GE(launcher_.Ids().size(), 3u);
}

// Supervision (supervisor.h): a VM acquired with restart policy "always" whose worker dies is
// replaced by a fresh restore under a new id with the same name and host port; the store
// learns the restart count, policy and last exit; the old id says where the VM went.
TEST_F(VmManagerTest, AlwaysRestartsAVmWhoseWorkerDiedWithItsNameAndPort) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap",
                                          .name = "svc",
                                          .labels_json = R"({"tier":"web"})",
                                          .ports = {{.guest_port = 80}},
                                          .restart = {.kind = RestartPolicy::Kind::kAlways}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  const std::string first = vm->id;
  const uint16_t port = vm->ports.at(0).host_port;
  EXPECT_EQ(journal_.AcquiredOf(first)->restart_policy, "always");
  launcher_.State(first)->dead = true;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<VmView> v = m->Get("svc");
    return v.ok() && v->id != first;
  }));
  absl::StatusOr<VmView> now = m->Get("svc");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->restarts, 1u);
  ASSERT_TRUE(now->last_exit.has_value());
  EXPECT_EQ(now->last_exit->cause, "worker_crash");
  ASSERT_EQ(now->ports.size(), 1u);
  EXPECT_EQ(now->ports[0].host_port, port) << "the same host port across the restart";
  EXPECT_EQ(journal_.EndOf(first), store::EndCause::kWorkerCrash);
  std::optional<store::VmRecord> row = journal_.AcquiredOf(now->id);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->name, "svc");
  EXPECT_EQ(row->labels_json, R"({"tier":"web"})");
  EXPECT_EQ(row->restart_policy, "always");
  EXPECT_EQ(row->restart_count, 1);
  EXPECT_EQ(row->last_exit_cause, "worker_crash");
  absl::Status old = m->Release(first);
  EXPECT_TRUE(absl::IsNotFound(old));
  EXPECT_THAT(old.message(), HasSubstr(absl::StrCat("restarted as ", now->id)));
  EXPECT_EQ(crashes_.load(), 1);
  ASSERT_TRUE(m->Release("svc").ok());
  EXPECT_EQ(journal_.EndOf(now->id), store::EndCause::kReleased);
}

TEST_F(VmManagerTest, OnFailure1RestartsOnceThenTheVmStaysEnded) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire(
      {.snapshot = "snap", .name = "svc", .restart = *ParseRestartPolicy("on-failure:1")});
  ASSERT_TRUE(vm.ok()) << vm.status();
  const std::string first = vm->id;
  launcher_.State(first)->dead = true;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<VmView> v = m->Get("svc");
    return v.ok() && v->id != first;
  }));
  const std::string second = m->Get("svc")->id;
  launcher_.State(second)->dead = true;
  ASSERT_TRUE(Eventually([&] { return !m->Get("svc").ok(); }));
  EXPECT_EQ(journal_.EndOf(second), store::EndCause::kWorkerCrash);
  EXPECT_EQ(launcher_.launches_.load(), 2) << "one restart only";
  EXPECT_EQ(m->Running(), 0u);
}

TEST_F(VmManagerTest, AnUnknownHealthCheckIsRefusedAtAcquire) {
  auto m = Make({});
  absl::StatusOr<VmView> vm = m->Acquire(
      {.snapshot = "snap", .health = {.argv = {"true"}, .interval = absl::Milliseconds(1)}});
  EXPECT_TRUE(absl::IsInvalidArgument(vm.status())) << vm.status();
  EXPECT_EQ(launcher_.launches_.load(), 0);
}

// A daemon restart re-adopts a supervised VM with its policy and restart count (persisted in
// the store): its next death is restarted and counted on.
TEST_F(VmManagerTest, AdoptedVmKeepsItsRestartPolicy) {
  auto m = Make({});
  auto state = std::make_shared<testing::FakeVmState>();
  store::VmRecord row;
  row.id = "adopted2";
  row.name = "db";
  row.snapshot_name = "snap";
  row.acquired_ms = 1000;
  row.restart_policy = "on-failure:5";
  row.restart_count = 2;
  row.last_exit_cause = "exited";
  row.last_exit_code = 3;
  ASSERT_TRUE(m->Adopt(std::make_unique<testing::FakeVm>("adopted2", state), row).ok());
  absl::StatusOr<VmView> view = m->Get("db");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(ToString(view->restart), "on-failure:5");
  EXPECT_EQ(view->restarts, 2u);
  EXPECT_EQ(view->last_exit->ToString(), "exited 3");
  state->dead = true;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<VmView> v = m->Get("db");
    return v.ok() && v->id != "adopted2";
  }));
  std::optional<store::VmRecord> next = journal_.AcquiredOf(m->Get("db")->id);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->restart_count, 3);
  EXPECT_EQ(next->restart_policy, "on-failure:5");
}

}  // namespace
}  // namespace supermachine::vm
