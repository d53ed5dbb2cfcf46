// File: inspect_test.cc
// `smctl inspect`'s text: the network block for a VM with a device (counters, whose policy),
// one without, and one whose worker could not be asked.
#include "cli/commands/commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::InspectVMResponse Base() {
  v1::InspectVMResponse r;
  r.mutable_vm()->set_id("3f9c0a1b2c4d");
  r.mutable_vm()->set_snapshot("web");
  r.mutable_vm()->set_worker_pid(81234);
  return r;
}

TEST(InspectVmText, ShowsPolicyAndCounters) {
  v1::InspectVMResponse r = Base();
  v1::VMNetwork* n = r.mutable_network();
  n->set_enabled(true);
  n->set_mac("02:5a:8c:11:03:9e");
  n->set_egress_policy("allowlist:10.0.2.2/32");
  n->set_egress_policy_override("allowlist:10.0.2.2/32");
  n->set_tx_packets(14);
  n->set_tx_bytes(1380);
  n->set_rx_packets(12);
  n->set_rx_bytes(2210);
  n->set_dropped_policy(2);
  const std::string text = InspectVmText(r);
  EXPECT_THAT(text, HasSubstr("MAC 02:5a:8c:11:03:9e\n"));
  EXPECT_THAT(text, HasSubstr("Egress:    allowlist:10.0.2.2/32 (acquire override)\n"));
  EXPECT_THAT(text, HasSubstr("Sent:      14 packets, 1380 bytes\n"));
  EXPECT_THAT(text, HasSubstr("Received:  12 packets, 2210 bytes\n"));
  EXPECT_THAT(text, HasSubstr("Dropped:   2 by egress policy, 0 malformed"));
  EXPECT_THAT(text, Not(HasSubstr("Reset:")));
  n->clear_egress_policy_override();
  EXPECT_THAT(InspectVmText(r), HasSubstr("allowlist:10.0.2.2/32 (the snapshot's)\n"));
}

TEST(InspectVmText, NoNetworkDevice) {
  const std::string text = InspectVmText(Base());
  EXPECT_THAT(text, HasSubstr("Network:   none"));
  EXPECT_THAT(text, Not(HasSubstr("Egress:")));
}

TEST(InspectVmText, WorkerThatCouldNotBeAskedSaysWhy) {
  v1::InspectVMResponse r = Base();
  r.set_network_error("connect to the worker control socket /x: Connection refused");
  r.mutable_network()->set_egress_policy_override("allow_all");
  const std::string text = InspectVmText(r);
  EXPECT_THAT(text, HasSubstr("Network:   unknown (connect to the worker control socket /x"));
  EXPECT_THAT(text, HasSubstr("Egress:    allow_all (acquire override)\n"));
  EXPECT_THAT(text, Not(HasSubstr("Sent:")));
}

TEST(InspectVmText, SupervisedVmShowsPolicyRestartsLastExitAndHealth) {
  v1::InspectVMResponse r = Base();
  r.mutable_vm()->set_restart_policy("on-failure:3");
  r.mutable_vm()->set_restart_count(2);
  r.mutable_vm()->mutable_last_exit()->set_cause("exited");
  r.mutable_vm()->mutable_last_exit()->set_exit_code(1);
  r.mutable_vm()->set_health(v1::HEALTH_STATUS_UNHEALTHY);
  const std::string text = InspectVmText(r);
  EXPECT_THAT(text, HasSubstr("Restart:   on-failure:3, 2 restarts\n"));
  EXPECT_THAT(text, HasSubstr("Last exit: exited 1\n"));
  EXPECT_THAT(text, HasSubstr("Health:    unhealthy\n"));
  EXPECT_THAT(InspectVmText(Base()), Not(HasSubstr("Restart:")));
}

}  // namespace
}  // namespace supermachine::cli
