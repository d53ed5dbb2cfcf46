// File: tests/unit/guest-agent-init/launch_config_test.cc
// Tests guest-agent/workload/launch_config.cc: strict parsing, key-naming errors, cmdline form.
#include "guest-agent/workload/launch_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(LaunchConfig, ParsesEveryField) {
  LaunchConfigResult r = ParseLaunchConfig(R"({
    "version": 1, "argv": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/bin", "A=b=c"],
    "cwd": "/srv", "user": "app:staff", "hostname": "web-1", "layers": ["l0", "l1"],
    "upper": "disk:rw0", "volumes": [{"disk": "vol0", "path": "/data"}],
    "on_exit": "poweroff", "readiness": {"listener": 8080}})");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_THAT(r.config->argv, ElementsAre("/bin/sh", "-c", "echo hi"));
  EXPECT_THAT(r.config->env, ElementsAre("PATH=/bin", "A=b=c"));
  EXPECT_EQ(r.config->cwd, "/srv");
  EXPECT_EQ(r.config->user, "app:staff");
  EXPECT_EQ(r.config->hostname, "web-1");
  EXPECT_THAT(r.config->layers, ElementsAre("l0", "l1"));
  EXPECT_EQ(r.config->upper_disk, "rw0");
  ASSERT_EQ(r.config->volumes.size(), 1u);
  EXPECT_EQ(r.config->volumes[0].disk, "vol0");
  EXPECT_EQ(r.config->volumes[0].path, "/data");
  EXPECT_TRUE(r.config->poweroff_on_exit);
}

TEST(LaunchConfig, DefaultsAreRootCwdSlashTmpfsUpperAndStay) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"]})");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->cwd, "/");
  EXPECT_EQ(r.config->user, "");
  EXPECT_EQ(r.config->upper_disk, "");
  EXPECT_TRUE(r.config->layers.empty());
  EXPECT_FALSE(r.config->poweroff_on_exit);
  EXPECT_FALSE(r.config->start_on_restore);
}

TEST(LaunchConfig, StartRestoreParksAndBootIsTheDefault) {
  LaunchConfigResult parked = ParseLaunchConfig(R"({"argv": ["/app"], "start": "restore"})");
  ASSERT_TRUE(parked.config) << parked.error;
  EXPECT_TRUE(parked.config->start_on_restore);
  LaunchConfigResult boot = ParseLaunchConfig(R"({"argv": ["/app"], "start": "boot"})");
  ASSERT_TRUE(boot.config) << boot.error;
  EXPECT_FALSE(boot.config->start_on_restore);
}

TEST(LaunchConfig, RejectsUnknownStartMode) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "start": "later"})");
  EXPECT_FALSE(r.config);
  EXPECT_THAT(r.error, HasSubstr("key \"start\": must be \"boot\" or \"restore\", got \"later\""));
}

TEST(LaunchConfig, RejectsUnknownKeyByName) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "entrypoint": ["/x"]})");
  EXPECT_FALSE(r.config);
  EXPECT_THAT(r.error, HasSubstr("key \"entrypoint\": unknown key"));
}

TEST(LaunchConfig, RejectsIllTypedValueNamingKeyAndType) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "env": "A=B"})");
  EXPECT_FALSE(r.config);
  EXPECT_THAT(r.error, HasSubstr("key \"env\": must be an array of strings, got string"));
}

TEST(LaunchConfig, RejectsNonStringArrayElementWithIndex) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app", 3]})");
  EXPECT_THAT(r.error, HasSubstr("key \"argv\": element 1 must be a string, got number"));
}

TEST(LaunchConfig, RejectsMissingArgv) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"cwd": "/"})");
  EXPECT_THAT(r.error, HasSubstr("key \"argv\""));
}

TEST(LaunchConfig, RejectsEnvEntryWithoutEquals) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "env": ["JUSTKEY"]})");
  EXPECT_THAT(r.error, HasSubstr("\"JUSTKEY\" is not KEY=VALUE"));
}

TEST(LaunchConfig, RejectsRelativeCwd) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "cwd": "srv"})");
  EXPECT_THAT(r.error, HasSubstr("key \"cwd\": must be an absolute path"));
}

TEST(LaunchConfig, RejectsHostnameWithSlash) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "hostname": "a/b"})");
  EXPECT_THAT(r.error, HasSubstr("key \"hostname\""));
}

TEST(LaunchConfig, RejectsLayerIdLongerThanVirtioSerial) {
  LaunchConfigResult r =
      ParseLaunchConfig(R"({"argv": ["/app"], "layers": ["abcdefghijklmnopqrstu"]})");
  EXPECT_THAT(r.error, HasSubstr("key \"layers\""));
}

TEST(LaunchConfig, RejectsDuplicateLayerId) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "layers": ["a", "a"]})");
  EXPECT_THAT(r.error, HasSubstr("listed twice"));
}

TEST(LaunchConfig, RejectsUnknownUpperKind) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": ["/app"], "upper": "ramdisk"})");
  EXPECT_THAT(r.error, HasSubstr("key \"upper\": must be \"tmpfs\" or \"disk:<id>\""));
}

TEST(LaunchConfig, RejectsUnknownVolumeKeyWithPath) {
  LaunchConfigResult r = ParseLaunchConfig(
      R"({"argv": ["/app"], "volumes": [{"disk": "v", "path": "/d", "size": 1}]})");
  EXPECT_THAT(r.error, HasSubstr("key \"volumes[0].size\": unknown key"));
}

TEST(LaunchConfig, RejectsOtherVersions) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"version": 2, "argv": ["/app"]})");
  EXPECT_THAT(r.error, HasSubstr("key \"version\""));
}

TEST(LaunchConfig, RejectsNonObjectDocument) {
  LaunchConfigResult r = ParseLaunchConfig(R"(["/app"])");
  EXPECT_THAT(r.error, HasSubstr("must be a JSON object, got array"));
}

TEST(LaunchConfig, RejectsMalformedJson) {
  LaunchConfigResult r = ParseLaunchConfig(R"({"argv": [)");
  EXPECT_THAT(r.error, HasSubstr("not valid JSON"));
}

TEST(LaunchConfigCmdline, AbsentParameterIsNullopt) {
  std::string error;
  EXPECT_FALSE(LaunchConfigFromCmdline("console=ttyS0 quiet\n", &error));
  EXPECT_EQ(error, "");
}

TEST(LaunchConfigCmdline, DecodesBase64WithoutPadding) {
  std::string error;
  // base64("{\"a\":1}") = eyJhIjoxfQ==
  std::optional<std::string> json =
      LaunchConfigFromCmdline("console=ttyS0 supermachine.launch=eyJhIjoxfQ quiet\n", &error);
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, "{\"a\":1}");
  EXPECT_EQ(error, "");
}

TEST(LaunchConfigCmdline, LastParameterWins) {
  std::string error;
  std::optional<std::string> json = LaunchConfigFromCmdline(
      "supermachine.launch=eA== supermachine.launch=eyJhIjoxfQ==", &error);
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, "{\"a\":1}");
}

TEST(LaunchConfigCmdline, RejectsNonBase64) {
  std::string error;
  std::optional<std::string> json = LaunchConfigFromCmdline("supermachine.launch={}", &error);
  ASSERT_TRUE(json);
  EXPECT_THAT(error, HasSubstr("not base64"));
}

}  // namespace
}  // namespace supermachine::agent
