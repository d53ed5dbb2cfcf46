// File: tests/unit/guest-agent-init/launch_source_test.cc
// Tests guest-agent/workload/launch_source.cc: cmdline over file, absence, errors with source.
#include "guest-agent/workload/launch_source.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::WriteFileOrDie;
using ::testing::HasSubstr;

TEST(LoadLaunchConfig, NothingPresentMeansNoConfigAndNoError) {
  TempDir dir;
  WriteFileOrDie(dir.Join("cmdline"), "console=ttyS0\n");
  LoadedLaunchConfig l = LoadLaunchConfig(dir.Join("cmdline"), dir.Join("launch.json"));
  EXPECT_FALSE(l.config);
  EXPECT_EQ(l.error, "");
}

TEST(LoadLaunchConfig, ReadsTheFile) {
  TempDir dir;
  WriteFileOrDie(dir.Join("cmdline"), "console=ttyS0\n");
  WriteFileOrDie(dir.Join("launch.json"), R"({"argv": ["/from-file"]})");
  LoadedLaunchConfig l = LoadLaunchConfig(dir.Join("cmdline"), dir.Join("launch.json"));
  ASSERT_TRUE(l.config) << l.error;
  EXPECT_EQ(l.config->argv[0], "/from-file");
  EXPECT_EQ(l.source, dir.Join("launch.json"));
}

TEST(LoadLaunchConfig, CmdlineWinsOverFile) {
  TempDir dir;
  // base64("{\"argv\":[\"/x\"]}")
  WriteFileOrDie(dir.Join("cmdline"), "quiet supermachine.launch=eyJhcmd2IjpbIi94Il19\n");
  WriteFileOrDie(dir.Join("launch.json"), R"({"argv": ["/from-file"]})");
  LoadedLaunchConfig l = LoadLaunchConfig(dir.Join("cmdline"), dir.Join("launch.json"));
  ASSERT_TRUE(l.config) << l.error;
  EXPECT_EQ(l.config->argv[0], "/x");
  EXPECT_EQ(l.source, "cmdline");
}

TEST(LoadLaunchConfig, InvalidFileIsAnErrorNamingTheFile) {
  TempDir dir;
  WriteFileOrDie(dir.Join("launch.json"), R"({"argv": ["/a"], "bogus": 1})");
  LoadedLaunchConfig l = LoadLaunchConfig(dir.Join("no-cmdline"), dir.Join("launch.json"));
  EXPECT_FALSE(l.config);
  EXPECT_THAT(l.error, HasSubstr(dir.Join("launch.json") + ": launch config: key \"bogus\""));
}

}  // namespace
}  // namespace supermachine::agent
