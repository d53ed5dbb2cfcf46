// File: tests/unit/agent/readiness_test.cc
// The pure /proc parsers and the idle tracker behind wait_ready.
#include "guest-agent/rpc/readiness.h"

#include <gtest/gtest.h>

namespace supermachine::agent::rpc {
namespace {

constexpr char kTcp[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "12345 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:0050 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 "
    "12346 1 0000000000000000 20 4 30 10 -1\n";

constexpr char kTcp6[] =
    "  sl  local_address                         remote_address                        st\n"
    "   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 999 1\n";

TEST(HasTcpListener, FindsListenerOnPort) { EXPECT_TRUE(HasTcpListener(kTcp, 8080)); }

TEST(HasTcpListener, IgnoresEstablishedConnectionOnPort) {
  EXPECT_FALSE(HasTcpListener(kTcp, 80));  // 0x0050 is in state 01 only.
}

TEST(HasTcpListener, IgnoresListenerOnOtherPort) { EXPECT_FALSE(HasTcpListener(kTcp, 8081)); }

TEST(HasTcpListener, ReadsIpv6Table) { EXPECT_TRUE(HasTcpListener(kTcp6, 5432)); }

TEST(HasTcpListener, HeaderOnlyHasNoListener) {
  EXPECT_FALSE(HasTcpListener("  sl  local_address rem_address   st\n", 0));
}

TEST(HasTcpListener, SkipsMalformedLines) {
  EXPECT_FALSE(HasTcpListener("   0: garbage 0A\n   1: 0100007F:ZZZZ 00000000:0000 0A\n", 0));
}

TEST(HasTcpListener, EmptyTableHasNoListener) { EXPECT_FALSE(HasTcpListener("", 8080)); }

TEST(ParseProcStat, SumsAggregateCpuLine) {
  auto t = ParseProcStat("cpu  10 20 30 400 50 6 7 8 100 100\ncpu0 1 2 3 4 5 6 7 8 0 0\n");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->idle, 450u);
  EXPECT_EQ(t->total, 531u);  // guest/guest_nice are already inside user/nice.
}

TEST(ParseProcStat, AcceptsOldKernelsWithFourFields) {
  auto t = ParseProcStat("cpu 1 2 3 4\n");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->idle, 4u);
  EXPECT_EQ(t->total, 10u);
}

TEST(ParseProcStat, RejectsMissingCpuLine) { EXPECT_FALSE(ParseProcStat("intr 1 2 3\n").has_value()); }

TEST(ParseProcStat, RejectsNonNumericField) {
  EXPECT_FALSE(ParseProcStat("cpu 1 x 3 4\n").has_value());
}

TEST(IdleFraction, ComputesIdleShareBetweenSamples) {
  EXPECT_DOUBLE_EQ(IdleFraction({.idle = 100, .total = 200}, {.idle = 190, .total = 300}), 0.9);
}

TEST(IdleFraction, NoElapsedTimeCountsAsIdle) {
  EXPECT_DOUBLE_EQ(IdleFraction({.idle = 5, .total = 10}, {.idle = 5, .total = 10}), 1.0);
}

}  // namespace
}  // namespace supermachine::agent::rpc

// The idle tracker, driven with synthetic samples and times (the real CPU's idleness on a
// shared test machine is not something a test can assert).
namespace supermachine::agent::rpc {
namespace {
using std::chrono::milliseconds;
const IdleTracker::TimePoint kT0{};

TEST(IdleTracker, ReadyOnlyAfterTheRequestedIdleTime) {
  IdleTracker t(milliseconds(100));
  EXPECT_FALSE(t.Observe({.idle = 0, .total = 0}, kT0));
  EXPECT_FALSE(t.Observe({.idle = 99, .total = 100}, kT0 + milliseconds(50)));
  EXPECT_TRUE(t.Observe({.idle = 198, .total = 200}, kT0 + milliseconds(100)));
}

TEST(IdleTracker, ABusyIntervalRestartsTheClock) {
  IdleTracker t(milliseconds(100));
  EXPECT_FALSE(t.Observe({.idle = 0, .total = 0}, kT0));
  EXPECT_FALSE(t.Observe({.idle = 95, .total = 100}, kT0 + milliseconds(60)));   // 95 %: idle
  EXPECT_FALSE(t.Observe({.idle = 105, .total = 200}, kT0 + milliseconds(90)));  // 10 %: busy
  EXPECT_FALSE(t.Observe({.idle = 205, .total = 300}, kT0 + milliseconds(150)));
  EXPECT_TRUE(t.Observe({.idle = 305, .total = 400}, kT0 + milliseconds(190)));
}

TEST(IdleTracker, AlwaysBusyNeverReady) {
  IdleTracker t(milliseconds(10));
  for (int i = 0; i < 50; ++i) {
    const auto n = static_cast<uint64_t>(i);
    EXPECT_FALSE(t.Observe({.idle = n, .total = 100 * n}, kT0 + milliseconds(20 * i))) << i;
  }
}
}  // namespace
}  // namespace supermachine::agent::rpc
