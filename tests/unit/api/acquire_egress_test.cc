// File: acquire_egress_test.cc
// AcquireRequest.egress_policy: validated with the worker's parser (a bad string is
// InvalidArgument naming it, before any VM is touched), canonicalised so two spellings of one
// policy share a pool, absent = the snapshot's own policy.
#include "daemon/api/vm_rpcs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::api {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<vm::AcquireOptions> Convert(const std::string& egress) {
  v1::AcquireRequest req;
  req.set_snapshot("web");
  req.set_egress_policy(egress);
  return AcquireOptionsFromProto(req, absl::InfiniteFuture());
}

TEST(AcquireEgressTest, AbsentMeansTheSnapshotsOwnPolicy) {
  absl::StatusOr<vm::AcquireOptions> o = Convert("");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->egress_policy, "");
}

TEST(AcquireEgressTest, ValidPoliciesAreCanonical) {
  EXPECT_EQ(Convert("allow_all")->egress_policy, "allow_all");
  EXPECT_EQ(Convert("deny_private")->egress_policy, "deny_private");
  // Spaces and a repeated CIDR do not make another pool.
  EXPECT_EQ(Convert("allowlist: 127.0.0.1, 10.0.0.0/8,127.0.0.1/32")->egress_policy,
            Convert("allowlist:127.0.0.1/32,10.0.0.0/8")->egress_policy);
  EXPECT_EQ(Convert("denylist:fd00::/8")->egress_policy, "denylist:fd00::/8");
}

TEST(AcquireEgressTest, BadPolicyIsInvalidArgumentQuotingIt) {
  for (const char* bad : {"allow-all", "allowlist:", "denylist:10.0.0.1/8", "allowlist:300.1.1.1",
                          "denylist:fd00::/129"}) {
    absl::StatusOr<vm::AcquireOptions> o = Convert(bad);
    ASSERT_FALSE(o.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(o.status())) << o.status();
    EXPECT_THAT(o.status().message(), HasSubstr("egress policy")) << bad;
  }
  EXPECT_THAT(Convert("allow-all").status().message(), HasSubstr("allow_all, deny_private"));
}

}  // namespace
}  // namespace supermachine::api
