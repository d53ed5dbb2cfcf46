// File: request_text_test.cc
// The text form of a request (flags / gRPC fields) → BakeRequest: defaults and error naming.
#include "daemon/bake/request_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::bake {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseBakeRequest, ZeroAndEmptyMeanDefaults) {
  absl::StatusOr<BakeRequest> r = ParseBakeRequest({.image = "redis:7"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->memory_mib, 256u);
  EXPECT_EQ(r->vcpus, 1u);
  EXPECT_EQ(r->pull_policy, image::PullPolicy::kMissing);
  EXPECT_FALSE(r->cmd.has_value());
  EXPECT_FALSE(r->readiness.has_value());
  EXPECT_FALSE(r->health.has_value());
  EXPECT_EQ(r->egress.kind, EgressPolicy::Kind::kDenyPrivate);
}

TEST(ParseBakeRequest, ParsesEverySpecField) {
  absl::StatusOr<BakeRequest> r = ParseBakeRequest({
      .image = "redis:7",
      .guest_port = 6379,
      .memory_mib = 512,
      .vcpus = 2,
      .pull_policy = "never",
      .cmd_json = R"(["redis-server","--save",""])",
      .entrypoint_json = R"(["/entry"])",
      .extra_files = {"/h/redis.conf:/etc/redis.conf"},
      .volumes = {"data:/data:2G"},
      .restart = "on-failure:3",
      .health_cmd = "redis-cli ping",
      .health_interval = "5s",
      .readiness = "listener,settle=100",
      .egress = "allowlist:10.0.0.0/8",
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->memory_mib, 512u);
  EXPECT_EQ(r->pull_policy, image::PullPolicy::kNever);
  EXPECT_THAT(*r->cmd, ElementsAre("redis-server", "--save", ""));
  EXPECT_THAT(*r->entrypoint, ElementsAre("/entry"));
  EXPECT_EQ(r->extra_files[0].guest_path, "/etc/redis.conf");
  EXPECT_EQ(r->volumes[0].size_bytes, 2ull << 30);
  EXPECT_EQ(r->restart.max_retries, 3u);
  EXPECT_EQ(r->health->interval_ms, 5000u);
  EXPECT_EQ(r->readiness->settle_ms, 100u);
  EXPECT_EQ(r->egress.kind, EgressPolicy::Kind::kAllowlist);
}

TEST(ParseBakeRequest, BadCmdJsonNamesField) {
  EXPECT_THAT(ParseBakeRequest({.image = "x", .cmd_json = "echo hi"}).status().message(),
              HasSubstr("cmd 'echo hi'"));
}

TEST(ParseBakeRequest, BadVolumeNamesSpec) {
  EXPECT_THAT(ParseBakeRequest({.image = "x", .volumes = {"data"}}).status().message(),
              HasSubstr("volume 'data'"));
}

TEST(ParseBakeRequest, BadPullPolicyIsRejected) {
  EXPECT_THAT(ParseBakeRequest({.image = "x", .pull_policy = "sometimes"}).status().message(),
              HasSubstr("pull policy 'sometimes'"));
}

}  // namespace
}  // namespace supermachine::bake
