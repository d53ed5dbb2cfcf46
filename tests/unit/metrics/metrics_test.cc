// File: metrics_test.cc
#include "daemon/metrics/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::metrics {
namespace {

using ::testing::HasSubstr;

TEST(DaemonMetrics, BuildInfoCarriesTheVersion) {
  DaemonMetrics m("4.5.6");
  EXPECT_THAT(m.SerializeForTest(),
              HasSubstr("supermachine_build_info{api=\"supermachine.v1\",version=\"4.5.6\"} 1"));
}

TEST(DaemonMetrics, RpcCounterIsLabelledByMethodAndCode) {
  DaemonMetrics m("1");
  m.CountRpc("ListVMs", "OK");
  m.CountRpc("ListVMs", "OK");
  m.CountRpc("Acquire", "UNIMPLEMENTED");
  std::string text = m.SerializeForTest();
  EXPECT_THAT(text, HasSubstr("supermachine_rpcs_total{code=\"OK\",method=\"ListVMs\"} 2"));
  EXPECT_THAT(text, HasSubstr("supermachine_rpcs_total{code=\"UNIMPLEMENTED\",method=\"Acquire\"} 1"));
}

TEST(DaemonMetrics, HealthGaugeCountsVmsPerStateAndRestartsAreCounted) {
  DaemonMetrics m("1");
  m.SetVmsHealth(1, 2, 3);
  m.CountVmRestart(true);
  m.CountVmRestart(true);
  m.CountVmRestart(false);
  std::string text = m.SerializeForTest();
  EXPECT_THAT(text, HasSubstr("supermachine_vms_health{state=\"starting\"} 1"));
  EXPECT_THAT(text, HasSubstr("supermachine_vms_health{state=\"healthy\"} 2"));
  EXPECT_THAT(text, HasSubstr("supermachine_vms_health{state=\"unhealthy\"} 3"));
  EXPECT_THAT(text, HasSubstr("supermachine_vm_restarts_total{result=\"ok\"} 2"));
  EXPECT_THAT(text, HasSubstr("supermachine_vm_restarts_total{result=\"failed\"} 1"));
}

TEST(DaemonMetrics, BalloonGaugeAndInflationCounter) {
  DaemonMetrics m("1");
  m.SetVmsBalloonInflated(3);
  m.CountBalloonInflation();
  m.CountBalloonInflation();
  std::string text = m.SerializeForTest();
  EXPECT_THAT(text, HasSubstr("supermachine_vms_balloon_inflated 3"));
  EXPECT_THAT(text, HasSubstr("supermachine_balloon_inflations_total 2"));
}

TEST(DaemonMetrics, ServeOnTakenPortIsUnavailableNamingTheAddress) {
  DaemonMetrics first("1");
  ASSERT_TRUE(first.Serve("127.0.0.1:0", nullptr).ok());
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  DaemonMetrics second("1");
  absl::Status st = second.Serve(taken, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr(taken));
}

}  // namespace
}  // namespace supermachine::metrics
