#include "daemon/store/store.h"

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::store {
namespace {

using ::supermachine::test_support::TempDir;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.Join("store.db"), [this] { return now_; });
    ASSERT_TRUE(s.ok()) << s.status();
    store_.emplace(std::move(*s));
  }
  Store& store() { return *store_; }

  SnapshotRecord Snapshot(const std::string& name) {
    EXPECT_TRUE(store().PutLayer({"sha256:aa", "/c/layers/aa.sqfs", 10}).ok());
    EXPECT_TRUE(store().PutLayer({"sha256:bb", "/c/layers/bb.sqfs", 20}).ok());
    SnapshotRecord r;
    r.name = name;
    r.bake_key = "key-" + name;
    r.path = "/s/" + name;
    r.created_ms = 5;
    r.size_bytes = 4096;
    r.metadata_json = "{}";
    r.layer_digests = {"sha256:aa", "sha256:bb"};
    return r;
  }

  TempDir dir_;
  int64_t now_ = 1000;
  std::optional<Store> store_;
};

TEST_F(StoreTest, BakeLifecycleRecordsResult) {
  auto id = store().BeginBake("k1", "{\"image\":\"busybox\"}", "/tmp/bake-1");
  ASSERT_TRUE(id.ok()) << id.status();
  now_ = 1500;
  ASSERT_TRUE(store().FinishBake(*id, true, "", "{\"total\":500}").ok());
  auto bake = store().GetBake(*id);
  ASSERT_TRUE(bake.ok());
  EXPECT_EQ(bake->status, "succeeded");
  EXPECT_EQ(bake->started_ms, 1000);
  EXPECT_EQ(bake->finished_ms, 1500);
  EXPECT_EQ(bake->timings_json, "{\"total\":500}");
}

TEST_F(StoreTest, BakeKeysAreRecordedAfterBegin) {
  auto id = store().BeginBake("", "{}", "/tmp/b");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store().SetBakeKeys(*id, "cheap", "delta", "full").ok());
  auto bake = store().GetBake(*id);
  ASSERT_TRUE(bake.ok());
  EXPECT_EQ(bake->cheap_key, "cheap");
  EXPECT_EQ(bake->delta_key, "delta");
  EXPECT_EQ(bake->bake_key, "full");
  EXPECT_EQ(store().SetBakeKeys(*id + 100, "a", "b", "c").code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, SnapshotCheapKeyRoundTripsAndIsUpdatable) {
  SnapshotRecord r = Snapshot("web");
  r.cheap_key = "c1";
  ASSERT_TRUE(store().PutSnapshot(r).ok());
  EXPECT_EQ(store().GetSnapshot("web")->cheap_key, "c1");
  ASSERT_TRUE(store().SetSnapshotCheapKey("web", "c2").ok());
  EXPECT_EQ(store().GetSnapshot("web")->cheap_key, "c2");
  EXPECT_EQ(store().SetSnapshotCheapKey("nope", "c").code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, FinishingABakeTwiceIsRefused) {
  auto id = store().BeginBake("k1", "{}", "");
  ASSERT_TRUE(store().FinishBake(*id, false, "boom", "").ok());
  EXPECT_EQ(store().FinishBake(*id, true, "", "").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, InterruptedBakesAreMarkedFailedOnRecovery) {
  auto running = store().BeginBake("k1", "{}", "/tmp/bake-running");
  auto done = store().BeginBake("k2", "{}", "/tmp/bake-done");
  ASSERT_TRUE(store().FinishBake(*done, true, "", "").ok());

  auto recovered = store().RecoverInterruptedBakes();
  ASSERT_TRUE(recovered.ok());
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].temp_dir, "/tmp/bake-running");
  auto bake = store().GetBake(*running);
  EXPECT_EQ(bake->status, "failed");
  EXPECT_NE(bake->error.find("interrupted"), std::string::npos);
  EXPECT_EQ(store().GetBake(*done)->status, "succeeded");
}

TEST_F(StoreTest, SnapshotRoundTripsWithOrderedLayers) {
  ASSERT_TRUE(store().PutSnapshot(Snapshot("redis")).ok());
  auto got = store().GetSnapshot("redis");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bake_key, "key-redis");
  EXPECT_EQ(got->layer_digests, (std::vector<std::string>{"sha256:aa", "sha256:bb"}));
}

TEST_F(StoreTest, SnapshotWithUnknownLayerIsRejectedWhole) {
  SnapshotRecord r = Snapshot("redis");
  r.layer_digests.push_back("sha256:missing");
  absl::Status st = store().PutSnapshot(r);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("sha256:missing"), std::string::npos);
  EXPECT_EQ(store().GetSnapshot("redis").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, UnknownSnapshotIsNotFound) {
  EXPECT_EQ(store().GetSnapshot("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().RemoveSnapshot("nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, SnapshotInUseCannotBeRemoved) {
  ASSERT_TRUE(store().PutSnapshot(Snapshot("redis")).ok());
  VmRecord vm;
  vm.id = "vm-1";
  vm.snapshot_name = "redis";
  ASSERT_TRUE(store().JournalVm(vm).ok());
  EXPECT_EQ(store().RemoveSnapshot("redis").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store().EndVm("vm-1", EndCause::kReleased, std::nullopt, std::nullopt).ok());
  EXPECT_TRUE(store().RemoveSnapshot("redis").ok());
  // The ended VM's history survives its snapshot.
  EXPECT_EQ(store().GetVm("vm-1")->snapshot_name, "");
}

TEST_F(StoreTest, LayersBecomeUnreferencedWhenTheirSnapshotGoes) {
  ASSERT_TRUE(store().PutSnapshot(Snapshot("redis")).ok());
  EXPECT_TRUE(store().UnreferencedLayers()->empty());
  EXPECT_FALSE(store().RemoveLayer("sha256:aa").ok());
  ASSERT_TRUE(store().RemoveSnapshot("redis").ok());
  auto unref = store().UnreferencedLayers();
  ASSERT_EQ(unref->size(), 2u);
  EXPECT_EQ((*unref)[0].digest, "sha256:aa");
  EXPECT_TRUE(store().RemoveLayer("sha256:aa").ok());
}

TEST_F(StoreTest, VmJournalKeepsPidAndStartTime) {
  VmRecord vm;
  vm.id = "vm-1";
  vm.pid = 4242;
  vm.pid_start_time = 987654;
  vm.control_socket = "/run/sm/vm-1.sock";
  ASSERT_TRUE(store().JournalVm(vm).ok());
  ASSERT_TRUE(store().MarkVmRunning("vm-1").ok());
  auto got = store().GetVm("vm-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, "running");
  EXPECT_EQ(got->pid, 4242);
  EXPECT_EQ(got->pid_start_time, 987654);
}

// Migration 3: the hand-out (name, ports, labels, egress override, time) survives in the row,
// so a restarted daemon re-adopts the VM with them; a VM that is not running cannot be marked.
TEST_F(StoreTest, MarkVmAcquiredKeepsNamePortsAndLabels) {
  VmRecord vm;
  vm.id = "vm-1";
  vm.pid = 4242;
  vm.pid_start_time = 1;
  ASSERT_TRUE(store().JournalVm(vm).ok());
  EXPECT_EQ(store().MarkVmAcquired({.id = "vm-1", .name = "web"}).code(),
            absl::StatusCode::kFailedPrecondition);  // still starting
  ASSERT_TRUE(store().MarkVmRunning("vm-1").ok());
  EXPECT_FALSE(store().GetVm("vm-1")->acquired_ms.has_value());  // pooled
  now_ = 777;
  ASSERT_TRUE(store()
                  .MarkVmAcquired({.id = "vm-1",
                                   .name = "web",
                                   .ports_json = R"([{"host_port":8080}])",
                                   .labels_json = R"({"a":"b"})",
                                   .egress_policy = "deny"})
                  .ok());
  auto got = store().GetVm("vm-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "web");
  EXPECT_EQ(got->ports_json, R"([{"host_port":8080}])");
  EXPECT_EQ(got->labels_json, R"({"a":"b"})");
  EXPECT_EQ(got->egress_policy, "deny");
  EXPECT_EQ(got->acquired_ms, 777);
  EXPECT_EQ(got->pid, 4242);
  ASSERT_TRUE(store().EndVm("vm-1", EndCause::kReleased, std::nullopt, std::nullopt).ok());
  EXPECT_EQ(store().MarkVmAcquired({.id = "vm-1"}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store().MarkVmAcquired({.id = "nope"}).code(), absl::StatusCode::kFailedPrecondition);
}

// Migration 4: the supervision of a handed-out VM (policy, health check, restarts, last exit)
// is kept with it, so a restarted daemon re-adopts it supervised as before.
TEST_F(StoreTest, MarkVmAcquiredKeepsSupervision) {
  VmRecord vm;
  vm.id = "vm-2";
  ASSERT_TRUE(store().JournalVm(vm).ok());
  ASSERT_TRUE(store().MarkVmRunning("vm-2").ok());
  EXPECT_EQ(store().GetVm("vm-2")->restart_count, 0);
  ASSERT_TRUE(store()
                  .MarkVmAcquired({.id = "vm-2",
                                   .name = "svc",
                                   .restart_policy = "on-failure:3",
                                   .health_json = R"({"argv":["true"]})",
                                   .restart_count = 2,
                                   .last_exit_cause = "exited",
                                   .last_exit_code = 1,
                                   .last_exit_ms = 1234})
                  .ok());
  auto got = store().GetVm("vm-2");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->restart_policy, "on-failure:3");
  EXPECT_EQ(got->health_json, R"({"argv":["true"]})");
  EXPECT_EQ(got->restart_count, 2);
  EXPECT_EQ(got->last_exit_cause, "exited");
  EXPECT_EQ(got->last_exit_code, 1);
  EXPECT_FALSE(got->last_exit_signal.has_value());
  EXPECT_EQ(got->last_exit_ms, 1234);
  // Listed with it too (smctl ps reads ListVms).
  auto all = store().ListVms(false);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].restart_count, 2);
}

TEST_F(StoreTest, FirstEndCauseWins) {
  VmRecord vm;
  vm.id = "vm-1";
  ASSERT_TRUE(store().JournalVm(vm).ok());
  ASSERT_TRUE(store().EndVm("vm-1", EndCause::kExited, 3, std::nullopt).ok());
  absl::Status again = store().EndVm("vm-1", EndCause::kReleased, std::nullopt, std::nullopt);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  auto got = store().GetVm("vm-1");
  EXPECT_EQ(got->end_cause, "exited");
  EXPECT_EQ(got->exit_code, 3);
}

TEST_F(StoreTest, ListVmsHidesEndedUnlessAsked) {
  VmRecord a, b;
  a.id = "vm-a";
  b.id = "vm-b";
  ASSERT_TRUE(store().JournalVm(a).ok());
  ASSERT_TRUE(store().JournalVm(b).ok());
  ASSERT_TRUE(store().EndVm("vm-a", EndCause::kWorkerCrash, std::nullopt, std::nullopt).ok());
  EXPECT_EQ(store().ListVms(false)->size(), 1u);
  EXPECT_EQ(store().ListVms(true)->size(), 2u);
}

TEST_F(StoreTest, DuplicateVmIdIsRejected) {
  VmRecord vm;
  vm.id = "vm-1";
  ASSERT_TRUE(store().JournalVm(vm).ok());
  EXPECT_EQ(store().JournalVm(vm).code(), absl::StatusCode::kAlreadyExists);
}

// Named volumes: create, one live VM at a time, handed over to a restarted run, freed when
// the holding VM's row ends or on detach, removable only while free.
TEST_F(StoreTest, VolumeAttachesToOneLiveVmAtATime) {
  ASSERT_TRUE(store().CreateVolume({.name = "db", .path = "/v/db.ext4", .size_bytes = 1 << 20}).ok());
  EXPECT_EQ(store().CreateVolume({.name = "db", .path = "/x"}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store().AttachVolume("nope", "vm-1", "/data").code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store().JournalVm({.id = "vm-1"}).ok());
  ASSERT_TRUE(store().AttachVolume("db", "vm-1", "/data").ok());
  EXPECT_TRUE(store().AttachVolume("db", "vm-1", "/data").ok()) << "idempotent";
  absl::Status second = store().AttachVolume("db", "vm-2", "/data");
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.message().find("vm-1"), std::string::npos) << second.message();
  EXPECT_EQ(store().RemoveVolume("db").code(), absl::StatusCode::kFailedPrecondition);

  auto got = store().GetVolume("db");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->attached_vm, "vm-1");
  EXPECT_EQ(got->guest_path, "/data");
  EXPECT_EQ(got->size_bytes, 1 << 20);
  EXPECT_EQ(got->created_ms, 1000);

  // A supervised restart hands it over to the next run.
  ASSERT_TRUE(store().AttachVolume("db", "vm-3", "/data", /*replacing=*/"vm-1").ok());
  EXPECT_EQ(store().GetVolume("db")->attached_vm, "vm-3");
  ASSERT_TRUE(store().DetachVolumes("vm-3").ok());
  EXPECT_EQ(store().GetVolume("db")->attached_vm, "");
  EXPECT_EQ(store().GetVolume("db")->guest_path, "");

  // The holder's row ending frees it without a detach (a crash in between strands nothing).
  ASSERT_TRUE(store().AttachVolume("db", "vm-1", "/data").ok());
  ASSERT_TRUE(store().EndVm("vm-1", EndCause::kReleased, std::nullopt, std::nullopt).ok());
  EXPECT_EQ(store().GetVolume("db")->attached_vm, "");
  ASSERT_TRUE(store().AttachVolume("db", "vm-2", "/srv").ok());
  ASSERT_TRUE(store().DetachVolumes("vm-2", "other").ok());
  EXPECT_EQ(store().GetVolume("db")->attached_vm, "vm-2") << "detach of another name";
  ASSERT_TRUE(store().DetachVolumes("vm-2", "db").ok());

  ASSERT_TRUE(store().CreateVolume({.name = "a", .path = "/v/a.ext4"}).ok());
  auto all = store().ListVolumes();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");
  ASSERT_TRUE(store().RemoveVolume("db").ok());
  EXPECT_EQ(store().GetVolume("db").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store().RemoveVolume("db").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace supermachine::store
