// File: egress_policy_test.cc
// CIDR parsing and matching, policy strings, and the allow/deny table for each policy kind.
#include "worker/net/egress_policy.h"

#include "gtest/gtest.h"
#include "tests/unit/net/test_frames.h"

namespace supermachine::net {
namespace {

using testing::Ip;

TEST(CidrTest, ParsesAndRejects) {
  struct Case {
    const char* text;
    bool ok;
    const char* canonical;
  } cases[] = {
      {"10.0.0.0/8", true, "10.0.0.0/8"},
      {"192.168.1.7", true, "192.168.1.7/32"},
      {"0.0.0.0/0", true, "0.0.0.0/0"},
      {"fd00::/8", true, "fd00::/8"},
      {"::1", true, "::1/128"},
      {"10.0.0.1/8", false, ""},  // Host bits set.
      {"10.0.0.0/33", false, ""},
      {"10.0.0.0/", false, ""},
      {"10.0.0.0/-1", false, ""},
      {"10.0.0.0/8x", false, ""},
      {"300.1.1.1", false, ""},
      {"fe80::/129", false, ""},
      {"", false, ""},
      {"example.com", false, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Cidr> got = ParseCidr(c.text);
    EXPECT_EQ(got.ok(), c.ok) << c.text << ": " << got.status();
    if (got.ok()) {
      EXPECT_EQ(ToString(*got), c.canonical);
    }
  }
  EXPECT_NE(ParseCidr("10.0.0.1/8").status().message().find("10.0.0.0/8"), std::string::npos);
}

TEST(CidrTest, Contains) {
  struct Case {
    const char* cidr;
    const char* addr;
    bool in;
  } cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},   {"10.0.0.0/8", "11.0.0.0", false},
      {"100.64.0.0/10", "100.127.255.255", true}, {"100.64.0.0/10", "100.128.0.0", false},
      {"169.254.169.254/32", "169.254.169.254", true}, {"0.0.0.0/0", "8.8.8.8", true},
      {"0.0.0.0/0", "::1", false},  // Families never match each other.
      {"fc00::/7", "fd12::1", true}, {"fc00::/7", "fe00::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true}, {"2001:db8::/33", "2001:db8:8000::1", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseCidr(c.cidr)->Contains(Ip(c.addr)), c.in) << c.cidr << " " << c.addr;
  }
}

TEST(EgressPolicyTest, ParseAndCanonicalForm) {
  struct Case {
    const char* text;
    bool ok;
    const char* canonical;
  } cases[] = {
      {"", true, "deny_private"},
      {"deny_private", true, "deny_private"},
      {"allow_all", true, "allow_all"},
      {"allowlist:1.2.3.0/24, 10.0.2.2", true, "allowlist:1.2.3.0/24,10.0.2.2/32"},
      {"denylist:10.0.0.0/8,10.0.0.0/8,::1", true, "denylist:10.0.0.0/8,::1/128"},
      {"allowlist:", false, ""},
      {"denylist:10.0.0.1/8", false, ""},
      {"allow-all", false, ""},
      {"allowlist 1.2.3.4", false, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<EgressPolicy> p = ParseEgressPolicy(c.text);
    EXPECT_EQ(p.ok(), c.ok) << c.text << ": " << p.status();
    if (p.ok()) {
      EXPECT_EQ(ToString(*p), c.canonical);
      EXPECT_EQ(*ParseEgressPolicy(ToString(*p)), *p);
    }
  }
}

TEST(EgressPolicyTest, Decisions) {
  const EgressPolicy allow_all = *ParseEgressPolicy("allow_all");
  const EgressPolicy deny_private = *ParseEgressPolicy("deny_private");
  const EgressPolicy allowlist = *ParseEgressPolicy("allowlist:10.0.2.2,2001:db8::/32");
  const EgressPolicy denylist = *ParseEgressPolicy("denylist:93.184.0.0/16,10.0.2.3");
  struct Case {
    const EgressPolicy* policy;
    const char* dst;
    bool dns;
    bool allowed;
  } cases[] = {
      {&allow_all, "10.1.2.3", false, true},
      {&allow_all, "169.254.169.254", false, true},
      {&deny_private, "93.184.216.34", false, true},
      {&deny_private, "10.1.2.3", false, false},
      {&deny_private, "172.16.0.1", false, false},
      {&deny_private, "172.32.0.1", false, true},
      {&deny_private, "192.168.0.1", false, false},
      {&deny_private, "127.0.0.1", false, false},
      {&deny_private, "169.254.169.254", false, false},
      {&deny_private, "100.64.0.1", false, false},
      {&deny_private, "224.0.0.251", false, false},
      {&deny_private, "255.255.255.255", false, false},
      {&deny_private, "10.0.2.2", false, false},  // The host, through passt's mapping.
      {&deny_private, "10.0.2.3", true, true},    // DNS to the resolver stays possible.
      {&deny_private, "fd00::1", false, false},
      {&deny_private, "fe80::1", false, false},
      {&deny_private, "ff02::1", false, false},
      {&deny_private, "::1", false, false},
      {&deny_private, "::ffff:10.0.0.1", false, false},
      {&deny_private, "2606:4700::1111", false, true},
      {&allowlist, "10.0.2.2", false, true},
      {&allowlist, "10.0.2.4", false, false},
      {&allowlist, "8.8.8.8", false, false},
      {&allowlist, "2001:db8:1::1", false, true},
      {&allowlist, "10.0.2.3", true, true},  // DNS not listed: still allowed.
      {&denylist, "93.184.216.34", false, false},
      {&denylist, "10.1.2.3", false, true},
      {&denylist, "10.0.2.3", true, false},  // Explicitly denied DNS is denied.
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Allowed(*c.policy, {.addr = Ip(c.dst), .dns_to_resolver = c.dns}), c.allowed)
        << ToString(*c.policy) << " -> " << c.dst << (c.dns ? " (dns)" : "");
  }
}

}  // namespace
}  // namespace supermachine::net
