// File: net_spec_test.cc
// --net flag and "net" JSON key: accepted forms, and errors that name what is wrong.
#include "gtest/gtest.h"
#include "worker/vmm/launch_config.h"

namespace supermachine::vmm {
namespace {

TEST(NetSpecTest, Forms) {
  auto n = ParseNetSpec("passt");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_TRUE(n->enabled);
  EXPECT_EQ(n->mac, "");
  EXPECT_EQ(n->egress, "");
  n = ParseNetSpec("passt,mac=02:5a:00:00:00:01,egress=allowlist:10.0.2.2,1.2.3.0/24");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->mac, "02:5a:00:00:00:01");
  EXPECT_EQ(n->egress, "allowlist:10.0.2.2,1.2.3.0/24");  // Commas stay in the policy.
}

TEST(NetSpecTest, Errors) {
  struct Case {
    const char* spec;
    const char* mentions;
  } cases[] = {
      {"tap", "passt"},
      {"passtx", "passt"},
      {"passt,mac=zz:00:00:00:00:01", "MAC"},
      {"passt,mac=03:00:00:00:00:01", "multicast"},
      {"passt,egress=allowlist:", "at least one CIDR"},
      {"passt,egress=denylist:10.0.0.1/8", "host bits"},
      {"passt,egress=whatever", "expected allow_all"},
      {"passt,speed=10", "unknown option"},
  };
  for (const Case& c : cases) {
    auto n = ParseNetSpec(c.spec);
    ASSERT_FALSE(n.ok()) << c.spec;
    EXPECT_NE(n.status().message().find(c.mentions), std::string::npos)
        << c.spec << ": " << n.status();
  }
}

TEST(NetSpecTest, FlagAndJson) {
  const char* argv[] = {"w", "--kernel", "k", "--net", "passt,egress=allow_all"};
  auto cl = ParseCommandLine(5, argv);
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_TRUE(cl->config.net.enabled);
  EXPECT_EQ(cl->config.net.egress, "allow_all");
  auto j = ParseLaunchConfigJson(
      R"({"kernel": "k", "net": {"backend": "passt", "egress": "denylist:10.0.0.0/8"}})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(j->net.enabled);
  EXPECT_EQ(j->net.egress, "denylist:10.0.0.0/8");
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"kernel": "k", "net": {"speed": 1}})").ok());
  EXPECT_FALSE(ParseLaunchConfigJson(R"({"kernel": "k", "net": "passt,egress=bad"})").ok());
}

}  // namespace
}  // namespace supermachine::vmm
