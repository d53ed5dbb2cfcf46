// File: vm_net_stats_test.cc
// The worker `stats` reply parser (the exact line docs/networking.md shows, net=none, errors,
// unknown keys from a newer worker), reading it over a Unix socket from a stand-in worker, and
// the per-VM Prometheus series built from it at scrape time.
#include "daemon/metrics/vm_net_stats.h"

#include <string>

#include "daemon/metrics/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_worker_control.h"
#include "tests/support/temp_dir.h"

namespace supermachine::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDocLine[] =
    "OK net mac=02:5a:8c:11:03:9e egress=deny_private rx_packets=12 rx_bytes=2210 "
    "tx_packets=14 tx_bytes=1380 dropped_policy=2 dropped_malformed=0 dropped_rx=0 reset_stale=0";

TEST(ParseStatsReply, ReadsEveryCounterOfTheDocumentedLine) {
  absl::StatusOr<VmNetStats> s = ParseStatsReply(kDocLine);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->enabled);
  EXPECT_EQ(s->mac, "02:5a:8c:11:03:9e");
  EXPECT_EQ(s->egress_policy, "deny_private");
  EXPECT_EQ(s->rx_packets, 12u);
  EXPECT_EQ(s->rx_bytes, 2210u);
  EXPECT_EQ(s->tx_packets, 14u);
  EXPECT_EQ(s->tx_bytes, 1380u);
  EXPECT_EQ(s->dropped_policy, 2u);
}

TEST(ParseStatsReply, NoNetworkDevice) {
  absl::StatusOr<VmNetStats> s = ParseStatsReply("OK net=none\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->enabled);
  EXPECT_EQ(*s, VmNetStats{});
}

TEST(ParseStatsReply, UnknownCountersOfANewerWorkerAreIgnored) {
  absl::StatusOr<VmNetStats> s =
      ParseStatsReply("OK net mac=02:00:00:00:00:01 egress=allowlist:10.0.0.0/8,fd00::/8 "
                      "tx_bytes=5 rx_something_new=9");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->egress_policy, "allowlist:10.0.0.0/8,fd00::/8");
  EXPECT_EQ(s->tx_bytes, 5u);
}

TEST(ParseStatsReply, ErrorsAndGarbageAreInvalidArgumentQuotingTheLine) {
  for (const char* bad : {"ERR unknown command 'stats'", "OK paused", "OK net tx_bytes=-1",
                          "OK net tx_bytes=1x", "OK net nonsense"}) {
    absl::StatusOr<VmNetStats> s = ParseStatsReply(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(s.status()));
    EXPECT_THAT(s.status().message(), HasSubstr(bad));
  }
}

using test_support::FakeWorkerControl;

TEST(ReadVmNetStats, AsksStatsAndParsesTheReply) {
  test_support::TempDir dir;
  FakeWorkerControl worker(dir.Join("control"), std::string(kDocLine) + "\n");
  absl::StatusOr<VmNetStats> s = ReadVmNetStats(dir.Join("control"), absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tx_bytes, 1380u);
  EXPECT_EQ(worker.got(), "stats\n");
}

TEST(ReadVmNetStats, MissingSocketIsUnavailableNamingIt) {
  test_support::TempDir dir;
  absl::StatusOr<VmNetStats> s = ReadVmNetStats(dir.Join("gone"), absl::Now() + absl::Seconds(5));
  EXPECT_TRUE(absl::IsUnavailable(s.status())) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr(dir.Join("gone")));
}

TEST(ReadVmNetStats, SilentWorkerIsUnavailableAtTheDeadline) {
  test_support::TempDir dir;
  // A worker that never answers.
  FakeWorkerControl worker(dir.Join("control"), "", FakeWorkerControl::Then::kHold);
  absl::StatusOr<VmNetStats> s =
      ReadVmNetStats(dir.Join("control"), absl::Now() + absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsUnavailable(s.status())) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("deadline"));
}

TEST(VmNetSeries, EachVmWithANetworkGetsCountersAndInfo) {
  DaemonMetrics m("1");
  EXPECT_THAT(m.SerializeForTest(), Not(HasSubstr("supermachine_vm_net_tx_bytes_total{")));
  m.SetVmNetSource([] {
    std::vector<DaemonMetrics::VmNetSample> out;
    out.push_back({.vm_id = "aaa", .snapshot = "web", .stats = *ParseStatsReply(kDocLine)});
    out.push_back({.vm_id = "bbb", .snapshot = "web", .stats = *ParseStatsReply("OK net=none")});
    return out;
  });
  const std::string text = m.SerializeForTest();
  EXPECT_THAT(text, HasSubstr("# TYPE supermachine_vm_net_tx_bytes_total counter"));
  EXPECT_THAT(text, HasSubstr("supermachine_vm_net_tx_bytes_total{snapshot=\"web\",vm=\"aaa\"} 1380"));
  EXPECT_THAT(text, HasSubstr("supermachine_vm_net_rx_packets_total{snapshot=\"web\",vm=\"aaa\"} 12"));
  EXPECT_THAT(text,
              HasSubstr("supermachine_vm_net_dropped_policy_total{snapshot=\"web\",vm=\"aaa\"} 2"));
  EXPECT_THAT(text, HasSubstr("supermachine_vm_net_info{egress_policy=\"deny_private\",mac=\"02:"
                              "5a:8c:11:03:9e\",snapshot=\"web\",vm=\"aaa\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("vm=\"bbb\""))) << "no network device, no series";
}

}  // namespace
}  // namespace supermachine::metrics
