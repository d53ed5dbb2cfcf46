// File: image_config_test.cc
// Image config parsing: runtime fields, diff_ids, type errors named by field.
#include "daemon/image/image_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ImageConfig, ParsesRuntimeFieldsAndDiffIds) {
  auto c = ParseImageConfig(R"({"architecture":"amd64","os":"linux",
    "config":{"Env":["PATH=/usr/bin","A=1"],"WorkingDir":"/srv","User":"1000:1000",
              "Entrypoint":["/init"],"Cmd":["serve","--port","80"],
              "ExposedPorts":{"80/tcp":{},"53/udp":{}},"StopSignal":"SIGQUIT","Labels":{"k":"v"}},
    "rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_THAT(c->env, ElementsAre("PATH=/usr/bin", "A=1"));
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_THAT(*c->entrypoint, ElementsAre("/init"));
  EXPECT_THAT(*c->cmd, ElementsAre("serve", "--port", "80"));
  EXPECT_THAT(c->exposed_ports, ElementsAre("53/udp", "80/tcp"));
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  ASSERT_EQ(c->diff_ids.size(), 1u);
}

TEST(ImageConfig, NullEntrypointIsUnset) {
  auto c = ParseImageConfig(R"({"config":{"Entrypoint":null,"Cmd":["sh"]}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->entrypoint.has_value());
}

TEST(ImageConfig, MissingConfigSectionIsEmpty) {
  auto c = ParseImageConfig(R"({"os":"linux"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->env.empty());
  EXPECT_FALSE(c->cmd.has_value());
}

TEST(ImageConfig, RejectsCmdOfWrongType) {
  auto c = ParseImageConfig(R"({"config":{"Cmd":"sh -c x"}})");
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("field 'Cmd' must be an array of strings"));
}

TEST(ImageConfig, RejectsBadDiffId) {
  auto c = ParseImageConfig(R"({"rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}})");
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("diff_ids"));
}

TEST(ImageConfig, RejectsNonObject) {
  auto c = ParseImageConfig("[]");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::image
