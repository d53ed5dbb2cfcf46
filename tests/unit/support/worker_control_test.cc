// File: worker_control_test.cc
// ReplyField (tests/support/worker_control.h): the counters lab tests read out of worker
// control replies, on the reply shapes docs/balloon.md and docs/networking.md show.
#include "tests/support/worker_control.h"

#include <optional>

#include "gtest/gtest.h"

namespace supermachine::test_support {
namespace {

constexpr char kBalloon[] =
    "OK balloon reported_ranges=3 reported_bytes=12288 inflated_pages=7 deflated_pages=0 "
    "actual_pages=7 rejected_chains=0";

TEST(ReplyField, ReadsTheNumberOfTheNamedItem) {
  EXPECT_EQ(ReplyField(kBalloon, "reported_bytes"), std::optional<uint64_t>(12288));
  EXPECT_EQ(ReplyField(kBalloon, "actual_pages"), std::optional<uint64_t>(7));
}

TEST(ReplyField, AZeroCounterIsZeroNotAbsent) {
  EXPECT_EQ(ReplyField(kBalloon, "rejected_chains"), std::optional<uint64_t>(0));
}

TEST(ReplyField, AKeyIsMatchedWholeNotAsTheEndOfAnother) {
  EXPECT_EQ(ReplyField(kBalloon, "pages"), std::nullopt);
  EXPECT_EQ(ReplyField("OK balloon-target pages=45875", "pages"), std::optional<uint64_t>(45875));
}

TEST(ReplyField, AMissingKeyIsNullopt) {
  EXPECT_EQ(ReplyField("OK net=none", "tx_bytes"), std::nullopt);
  EXPECT_EQ(ReplyField("(no control socket at /x)", "tx_bytes"), std::nullopt);
}

TEST(ReplyField, AValueThatIsNotAnUnsignedNumberIsNullopt) {
  EXPECT_EQ(ReplyField("OK net mac=02:5a:8c:11:03:9e", "mac"), std::nullopt);
  EXPECT_EQ(ReplyField("OK net tx_bytes=-1", "tx_bytes"), std::nullopt);
  EXPECT_EQ(ReplyField("OK net tx_bytes=", "tx_bytes"), std::nullopt);
}

TEST(ReplyField, TheLastItemIsReadDespiteTheLinesNewline) {
  EXPECT_EQ(ReplyField("OK net tx_bytes=5 reset_stale=2\n", "reset_stale"),
            std::optional<uint64_t>(2));
}

}  // namespace
}  // namespace supermachine::test_support
