// File: log_test.cc
#include "daemon/config/log.h"

#include "gtest/gtest.h"

namespace supermachine::config {
namespace {

TEST(FormatLogLine, PlainValuesStayBareAndMsgIsQuoted) {
  EXPECT_EQ(FormatLogLine(LogLevel::kInfo, "store opened", {{"path", "/var/lib/x.db"}}),
            "level=info msg=\"store opened\" path=/var/lib/x.db");
}

TEST(FormatLogLine, ValuesWithSpacesQuotesOrNewlinesAreQuotedAndEscaped) {
  EXPECT_EQ(FormatLogLine(LogLevel::kError, "failed", {{"error", "a \"b\"\nc"}, {"empty", ""}}),
            "level=error msg=\"failed\" error=\"a \\\"b\\\"\\nc\" empty=\"\"");
}

TEST(ParseLogLevel, KnowsTheFourLevels) {
  LogLevel level = LogLevel::kInfo;
  EXPECT_TRUE(ParseLogLevel("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarn);
  EXPECT_FALSE(ParseLogLevel("WARN", &level));
}

}  // namespace
}  // namespace supermachine::config
