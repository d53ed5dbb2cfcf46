// File: launch_config_test.cc
// Docker's entrypoint/cmd rules, env overrides by key, and the empty-argv error.
#include "daemon/image/launch_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ImageConfig Nginx() {
  ImageConfig c;
  c.entrypoint = std::vector<std::string>{"/docker-entrypoint.sh"};
  c.cmd = std::vector<std::string>{"nginx", "-g", "daemon off;"};
  c.env = {"PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"};
  c.working_dir = "/etc/nginx";
  c.user = "nginx";
  return c;
}

TEST(LaunchConfig, NoOverridesIsEntrypointPlusCmd) {
  auto lc = ResolveLaunchConfig(Nginx(), {});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->argv, ElementsAre("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"));
  EXPECT_EQ(lc->working_dir, "/etc/nginx");
  EXPECT_EQ(lc->user, "nginx");
}

TEST(LaunchConfig, CmdOverrideKeepsEntrypoint) {
  auto lc = ResolveLaunchConfig(Nginx(), {.cmd = std::vector<std::string>{"nginx", "-t"}});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->argv, ElementsAre("/docker-entrypoint.sh", "nginx", "-t"));
}

TEST(LaunchConfig, EntrypointOverrideClearsImageCmd) {
  auto lc = ResolveLaunchConfig(Nginx(), {.entrypoint = std::vector<std::string>{"/bin/sh"}});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->argv, ElementsAre("/bin/sh"));
}

TEST(LaunchConfig, EntrypointAndCmdOverridesCombine) {
  auto lc = ResolveLaunchConfig(Nginx(), {.entrypoint = std::vector<std::string>{"/bin/sh"},
                                          .cmd = std::vector<std::string>{"-c", "echo hi"}});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->argv, ElementsAre("/bin/sh", "-c", "echo hi"));
}

TEST(LaunchConfig, ExtraEnvReplacesByKeyAndAppendsNew) {
  auto lc = ResolveLaunchConfig(Nginx(), {.extra_env = {"NGINX_VERSION=2", "NEW=x=y"}});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->env, ElementsAre("PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=2", "NEW=x=y"));
}

TEST(LaunchConfig, WorkdirAndUserOverrides) {
  auto lc = ResolveLaunchConfig(Nginx(), {.working_dir = std::string("/tmp"), .user = std::string("0")});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_EQ(lc->working_dir, "/tmp");
  EXPECT_EQ(lc->user, "0");
}

TEST(LaunchConfig, DefaultsPathAndWorkdir) {
  ImageConfig c;
  c.cmd = std::vector<std::string>{"sh"};
  auto lc = ResolveLaunchConfig(c, {});
  ASSERT_TRUE(lc.ok()) << lc.status();
  EXPECT_THAT(lc->env, ElementsAre(kDefaultPath));
  EXPECT_EQ(lc->working_dir, "/");
}

TEST(LaunchConfig, EmptyArgvIsAClearError) {
  auto lc = ResolveLaunchConfig(ImageConfig{}, {});
  EXPECT_EQ(lc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(lc.status().message()), HasSubstr("no Entrypoint or Cmd"));
}

TEST(LaunchConfig, EntrypointOverrideToEmptyWithNoCmdIsAnError) {
  auto lc = ResolveLaunchConfig(Nginx(), {.entrypoint = std::vector<std::string>{}});
  EXPECT_THAT(std::string(lc.status().message()), HasSubstr("no Entrypoint or Cmd"));
}

TEST(LaunchConfig, EnvWithoutEqualsIsRejected) {
  auto lc = ResolveLaunchConfig(Nginx(), {.extra_env = {"JUSTAKEY"}});
  EXPECT_THAT(std::string(lc.status().message()), HasSubstr("'JUSTAKEY' must look like KEY=VALUE"));
}

TEST(LaunchConfig, RelativeWorkdirIsRejected) {
  auto lc = ResolveLaunchConfig(Nginx(), {.working_dir = std::string("srv")});
  EXPECT_THAT(std::string(lc.status().message()), HasSubstr("must be an absolute path"));
}

TEST(ArgvJson, ParsesArrayOfStrings) {
  auto argv = ParseArgvJson(R"(["sh","-c","echo \"hi\""])");
  ASSERT_TRUE(argv.ok()) << argv.status();
  EXPECT_THAT(*argv, ElementsAre("sh", "-c", "echo \"hi\""));
}

TEST(ArgvJson, RejectsAString) {
  auto argv = ParseArgvJson(R"("sh -c x")");
  EXPECT_THAT(std::string(argv.status().message()), HasSubstr("must be a JSON array of strings"));
}

TEST(ArgvJson, RejectsNonStringElements) {
  auto argv = ParseArgvJson(R"(["sh", 1])");
  EXPECT_THAT(std::string(argv.status().message()), HasSubstr("every element must be a string"));
}

}  // namespace
}  // namespace supermachine::image
