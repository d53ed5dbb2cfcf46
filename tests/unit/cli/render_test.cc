// File: render_test.cc
#include "cli/render.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace supermachine::cli {
namespace {

using ::testing::HasSubstr;

TEST(RenderTable, AlignsColumnsToTheWidestCellWithThreeSpaces) {
  EXPECT_EQ(RenderTable({"NAME", "SIZE"}, {{"redis", "1MB"}, {"a", "12.3MB"}}),
            "NAME    SIZE\n"
            "redis   1MB\n"
            "a       12.3MB\n");
}

TEST(RenderTable, HeaderOnlyWhenNoRows) {
  EXPECT_EQ(RenderTable({"VM ID", "NAME"}, {}), "VM ID   NAME\n");
}

TEST(HumanSize, UsesDecimalUnitsLikeDocker) {
  EXPECT_EQ(HumanSize(0), "0B");
  EXPECT_EQ(HumanSize(999), "999B");
  EXPECT_EQ(HumanSize(1500), "1.5kB");
  EXPECT_EQ(HumanSize(12'300'000), "12.3MB");
}

TEST(HumanAgo, PicksTheLargestWholeUnit) {
  EXPECT_EQ(HumanAgo(0, 500), "just now");
  EXPECT_EQ(HumanAgo(0, 1000), "1 second ago");
  EXPECT_EQ(HumanAgo(0, 5 * 60'000), "5 minutes ago");
  EXPECT_EQ(HumanAgo(0, 3 * 3'600'000), "3 hours ago");
  EXPECT_EQ(HumanAgo(0, 2 * 86'400'000LL), "2 days ago");
}

TEST(VmStatus, EndedVmShowsItsCause) {
  v1::VM vm;
  vm.set_state(v1::VM_STATE_ENDED);
  vm.set_end_cause(v1::END_CAUSE_EXITED);
  vm.set_exit_code(3);
  EXPECT_EQ(VmStatus(vm), "exited (3)");
}

// Supervised VMs (docs/supervision.md): health and restarts follow the state.
TEST(VmStatus, SupervisedVmShowsHealthAndRestarts) {
  v1::VM vm;
  vm.set_state(v1::VM_STATE_RUNNING);
  EXPECT_EQ(VmStatus(vm), "running") << "unsupervised: as before";
  vm.set_health(v1::HEALTH_STATUS_HEALTHY);
  vm.set_restart_count(2);
  EXPECT_EQ(VmStatus(vm), "running (healthy, 2 restarts)");
  vm.set_health(v1::HEALTH_STATUS_UNHEALTHY);
  vm.set_restarting(true);
  vm.set_restart_count(1);
  EXPECT_EQ(VmStatus(vm), "restarting (unhealthy, 1 restart)");
  v1::VM ended;
  ended.set_state(v1::VM_STATE_ENDED);
  ended.set_end_cause(v1::END_CAUSE_EXITED);
  ended.set_exit_code(1);
  ended.set_restart_count(3);
  EXPECT_EQ(VmStatus(ended), "exited (1) (after 3 restarts)");
}

TEST(VmsTable, ShowsPortsAsAddressHostToGuest) {
  v1::ListVMsResponse resp;
  v1::VM* vm = resp.add_vms();
  vm->set_id("vm-1");
  vm->set_snapshot("web");
  vm->set_state(v1::VM_STATE_RUNNING);
  vm->set_created_unix_ms(0);
  v1::PortForward* p = vm->add_ports();
  p->set_host_port(8080);
  p->set_guest_port(80);
  EXPECT_EQ(VmsTable(resp, 60'000),
            "VM ID   NAME   SNAPSHOT   STATUS    PORTS                CREATED\n"
            "vm-1    -      web        running   127.0.0.1:8080->80   1 minute ago\n");
}

TEST(SnapshotsTable, ShortensTheDigest) {
  v1::ListSnapshotsResponse resp;
  v1::Snapshot* s = resp.add_snapshots();
  s->set_name("redis");
  s->set_image("redis:7");
  s->set_image_digest("sha256:0123456789abcdef0123");
  s->set_size_bytes(2000);
  EXPECT_THAT(SnapshotsTable(resp, 0), HasSubstr("sha256:0123456789ab "));
}

TEST(ToJson, UsesProtoFieldNamesAndPrintsZeroValues) {
  v1::HealthResponse resp;
  resp.set_kvm("absent");
  nlohmann::json j = nlohmann::json::parse(ToJson(resp));
  EXPECT_EQ(j["kvm"], "absent");
  EXPECT_EQ(j["serving"], false);
  EXPECT_TRUE(j["problems"].is_array());
}

}  // namespace
}  // namespace supermachine::cli
