// File: guest_net_config_test.cc
// The guest agent's sm.net= parser: the worker's own form, absence, and malformed values.
#include <arpa/inet.h>

#include "gtest/gtest.h"
#include "guest-agent/net/net_config.h"

namespace supermachine::agent::net {
namespace {

std::string Str(in_addr a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

TEST(GuestNetConfigTest, ParsesTheWorkersForm) {
  ParsedNet p = ParseNetCmdline(
      "console=ttyS0 reboot=t sm.net=10.0.2.15/24,10.0.2.2,10.0.2.3 virtio_mmio.device=4K@0xd0000000:5");
  ASSERT_TRUE(p.error.empty()) << p.error;
  ASSERT_TRUE(p.net.has_value());
  EXPECT_EQ(Str(p.net->addr), "10.0.2.15");
  EXPECT_EQ(p.net->prefix_len, 24);
  EXPECT_EQ(Str(p.net->gateway), "10.0.2.2");
  EXPECT_EQ(Str(p.net->dns), "10.0.2.3");
  // The last occurrence wins, like kernel parameters.
  p = ParseNetCmdline("sm.net=1.2.3.4/8,1.0.0.1,1.0.0.2 sm.net=10.0.2.15/24,10.0.2.2,10.0.2.3\n");
  ASSERT_TRUE(p.net.has_value());
  EXPECT_EQ(Str(p.net->addr), "10.0.2.15");
}

TEST(GuestNetConfigTest, AbsentMeansNoNetwork) {
  ParsedNet p = ParseNetCmdline("console=ttyS0 xsm.net=1");
  EXPECT_FALSE(p.net.has_value());
  EXPECT_TRUE(p.error.empty());
}

TEST(GuestNetConfigTest, MalformedValuesAreErrors) {
  for (const char* bad : {"sm.net=", "sm.net=10.0.2.15,10.0.2.2,10.0.2.3",
                          "sm.net=10.0.2.15/33,10.0.2.2,10.0.2.3",
                          "sm.net=10.0.2.15/0,10.0.2.2,10.0.2.3",
                          "sm.net=10.0.2.15/24,10.0.2.2", "sm.net=10.0.2.15/24,gw,10.0.2.3",
                          "sm.net=10.0.2.15/2x,10.0.2.2,10.0.2.3",
                          "sm.net=10.0.2.15/24,10.0.2.2,10.0.2.3,extra"}) {
    ParsedNet p = ParseNetCmdline(bad);
    EXPECT_FALSE(p.net.has_value()) << bad;
    EXPECT_NE(p.error.find("expected ADDR/PREFIX"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace supermachine::agent::net
