// File: launch_spec_test.cc
// Override precedence for what the guest runs (Docker's rules; docs/bake.md lists where
// upstream differs).
#include "daemon/bake/launch_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::bake {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Argv = std::vector<std::string>;

image::ImageConfig NginxLike() {
  image::ImageConfig c;
  c.entrypoint = Argv{"/docker-entrypoint.sh"};
  c.cmd = Argv{"nginx", "-g", "daemon off;"};
  c.env = {"PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"};
  c.working_dir = "/srv";
  c.user = "nginx";
  return c;
}

BakeRequest Request() { return BakeRequest{.image = "nginx"}; }

TEST(ResolveLaunchSpec, WithoutOverridesRunsEntrypointThenCmd) {
  absl::StatusOr<LaunchSpec> s = ResolveLaunchSpec(NginxLike(), Request());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->argv, ElementsAre("/docker-entrypoint.sh", "nginx", "-g", "daemon off;"));
  EXPECT_EQ(s->workdir, "/srv");
  EXPECT_EQ(s->user, "nginx");
}

TEST(ResolveLaunchSpec, CmdOverrideReplacesCmdAndKeepsEntrypoint) {
  BakeRequest r = Request();
  r.cmd = Argv{"nginx", "-T"};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->argv,
              ElementsAre("/docker-entrypoint.sh", "nginx", "-T"));
}

TEST(ResolveLaunchSpec, EntrypointOverrideDropsImageCmd) {
  BakeRequest r = Request();
  r.entrypoint = Argv{"/bin/sh"};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->argv, ElementsAre("/bin/sh"));
}

TEST(ResolveLaunchSpec, EntrypointAndCmdOverridesCombine) {
  BakeRequest r = Request();
  r.entrypoint = Argv{"/bin/sh", "-c"};
  r.cmd = Argv{"echo hi"};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->argv, ElementsAre("/bin/sh", "-c", "echo hi"));
}

TEST(ResolveLaunchSpec, EmptyCmdOverrideLeavesEntrypointAlone) {
  BakeRequest r = Request();
  r.cmd = Argv{};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->argv, ElementsAre("/docker-entrypoint.sh"));
}

TEST(ResolveLaunchSpec, FailsWhenNothingToRun) {
  image::ImageConfig c;
  absl::Status st = ResolveLaunchSpec(c, Request()).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("no Entrypoint or Cmd"));
}

TEST(ResolveLaunchSpec, CmdOverrideAloneRunsImageWithoutCommand) {
  image::ImageConfig c;
  BakeRequest r = Request();
  r.cmd = Argv{"/bin/busybox", "httpd", "-f"};
  EXPECT_THAT(ResolveLaunchSpec(c, r)->argv, ElementsAre("/bin/busybox", "httpd", "-f"));
}

TEST(ResolveLaunchSpec, EnvAdditionReplacesInPlaceAndAppendsNew) {
  BakeRequest r = Request();
  r.env = {"NGINX_VERSION=custom", "DEBUG=1"};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->env,
              ElementsAre("PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=custom", "DEBUG=1"));
}

TEST(ResolveLaunchSpec, LaterDuplicateEnvAdditionWins) {
  BakeRequest r = Request();
  r.env = {"A=1", "A=2"};
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->env, ::testing::Contains("A=2"));
  EXPECT_THAT(ResolveLaunchSpec(NginxLike(), r)->env, ::testing::Not(::testing::Contains("A=1")));
}

TEST(ResolveLaunchSpec, DefaultsPathWhenImageHasNone) {
  image::ImageConfig c;
  c.cmd = Argv{"/app"};
  EXPECT_THAT(ResolveLaunchSpec(c, Request())->env, ElementsAre(image::kDefaultPath));
}

TEST(ResolveLaunchSpec, WorkdirOverrideWins) {
  BakeRequest r = Request();
  r.workdir = "/tmp";
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->workdir, "/tmp");
}

TEST(ResolveLaunchSpec, EmptyWorkdirOverrideMeansRoot) {
  BakeRequest r = Request();
  r.workdir = "";
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->workdir, "/");
}

TEST(ResolveLaunchSpec, WorkdirDefaultsToRoot) {
  image::ImageConfig c;
  c.cmd = Argv{"/app"};
  EXPECT_EQ(ResolveLaunchSpec(c, Request())->workdir, "/");
}

TEST(ResolveLaunchSpec, EmptyUserOverrideMeansRoot) {
  BakeRequest r = Request();
  r.user = "";
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->user, "");
}

TEST(ResolveLaunchSpec, UserOverrideWins) {
  BakeRequest r = Request();
  r.user = "1000:1000";
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->user, "1000:1000");
}

TEST(ResolveLaunchSpec, HostnameDefaults) {
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), Request())->hostname, "supermachine");
}

TEST(ResolveLaunchSpec, HostnameFromRequest) {
  BakeRequest r = Request();
  r.hostname = "web-1";
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->hostname, "web-1");
}

TEST(ResolveLaunchSpec, CarriesRestartPolicy) {
  BakeRequest r = Request();
  r.restart = *ParseRestartPolicy("on-failure:3");
  EXPECT_EQ(ResolveLaunchSpec(NginxLike(), r)->restart, r.restart);
}

}  // namespace
}  // namespace supermachine::bake
