// File: request_flags_test.cc
#include "cli/request_flags.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::cli {
namespace {

using ::testing::HasSubstr;

TEST(ParsePortFlag, HostColonGuest) {
  v1::PortForward p;
  ASSERT_TRUE(ParsePortFlag("8080:80", &p).ok());
  EXPECT_EQ(p.host_port(), 8080u);
  EXPECT_EQ(p.guest_port(), 80u);
  EXPECT_EQ(p.host_address(), "");
}

TEST(ParsePortFlag, AddressHostGuest) {
  v1::PortForward p;
  ASSERT_TRUE(ParsePortFlag("0.0.0.0:0:443", &p).ok());
  EXPECT_EQ(p.host_address(), "0.0.0.0");
  EXPECT_EQ(p.host_port(), 0u);
  EXPECT_EQ(p.guest_port(), 443u);
}

TEST(ParsePortFlag, RejectsGuestPortZeroAndJunkWithTheFlagText) {
  v1::PortForward p;
  grpc::Status st = ParsePortFlag("8080:0", &p);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("-p '8080:0'"));
  EXPECT_FALSE(ParsePortFlag("80", &p).ok());
  EXPECT_FALSE(ParsePortFlag("a:80", &p).ok());
  EXPECT_FALSE(ParsePortFlag("70000:80", &p).ok());
}

TEST(CheckEnvFlag, NeedsKeyAndEquals) {
  EXPECT_TRUE(CheckEnvFlag("A=").ok());
  EXPECT_FALSE(CheckEnvFlag("A").ok());
  EXPECT_FALSE(CheckEnvFlag("=v").ok());
}

TEST(ParseDurationFlag, AcceptsDockerDurations) {
  uint32_t ms = 1;
  ASSERT_TRUE(ParseDurationFlag("--health-interval", "30s", &ms).ok());
  EXPECT_EQ(ms, 30'000u);
  ASSERT_TRUE(ParseDurationFlag("--health-interval", "1m30s", &ms).ok());
  EXPECT_EQ(ms, 90'000u);
  ASSERT_TRUE(ParseDurationFlag("--health-interval", "500ms", &ms).ok());
  EXPECT_EQ(ms, 500u);
  ASSERT_TRUE(ParseDurationFlag("--health-interval", "0", &ms).ok());
  EXPECT_EQ(ms, 0u);
  for (const char* bad : {"", "30", "s", "1.5s", "10x", "-1s", "9999999999s"}) {
    grpc::Status st = ParseDurationFlag("--health-timeout", bad, &ms);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_NE(st.error_message().find("--health-timeout"), std::string::npos);
  }
}

}  // namespace
}  // namespace supermachine::cli
