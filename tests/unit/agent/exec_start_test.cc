// File: tests/unit/agent/exec_start_test.cc
// The pure parts of starting an exec: env merging and PATH lookup.
#include "guest-agent/rpc/exec_start.h"

#include <errno.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace supermachine::agent::rpc {
namespace {

using ::testing::ElementsAre;
using test_support::TempDir;
using test_support::WriteFileOrDie;

TEST(MergeEnv, AddsRequestEnvAfterWorkloadEnv) {
  v1::ExecRequest request;
  request.add_env("B=2");
  EXPECT_THAT(MergeEnv({"A=1"}, request), ElementsAre("A=1", "B=2"));
}

TEST(MergeEnv, RequestReplacesSameKeyInPlace) {
  v1::ExecRequest request;
  request.add_env("A=new");
  EXPECT_THAT(MergeEnv({"A=old", "C=3"}, request), ElementsAre("A=new", "C=3"));
}

TEST(MergeEnv, KeyIsMatchedWholeNotByPrefix) {
  v1::ExecRequest request;
  request.add_env("PATH=/x");
  EXPECT_THAT(MergeEnv({"PATHS=/y"}, request), ElementsAre("PATHS=/y", "PATH=/x"));
}

TEST(MergeEnv, ReplaceEnvKeepsOnlyTheRequest) {
  v1::ExecRequest request;
  request.add_env("B=2");
  request.set_replace_env(true);
  EXPECT_THAT(MergeEnv({"A=1"}, request), ElementsAre("B=2"));
}

TEST(LookPath, NameWithSlashIsUsedAsIs) {
  int err = 0;
  EXPECT_EQ(LookPath("./run.sh", "/nowhere", &err), "./run.sh");
}

TEST(LookPath, FindsFirstExecutableInPathOrder) {
  TempDir dir;
  WriteFileOrDie(dir.Join("a/tool"), "#!/bin/sh\n");
  WriteFileOrDie(dir.Join("b/tool"), "#!/bin/sh\n");
  chmod(dir.Join("a/tool").c_str(), 0755);
  chmod(dir.Join("b/tool").c_str(), 0755);
  int err = 0;
  EXPECT_EQ(LookPath("tool", dir.Join("missing") + ":" + dir.Join("a") + ":" + dir.Join("b"), &err),
            dir.Join("a/tool"));
}

TEST(LookPath, SkipsDirectoriesNamedLikeTheCommand) {
  TempDir dir;
  WriteFileOrDie(dir.Join("a/tool/inner"), "");
  WriteFileOrDie(dir.Join("b/tool"), "");
  chmod(dir.Join("b/tool").c_str(), 0755);
  int err = 0;
  EXPECT_EQ(LookPath("tool", dir.Join("a") + ":" + dir.Join("b"), &err), dir.Join("b/tool"));
}

TEST(LookPath, MissingCommandIsEnoent) {
  TempDir dir;
  int err = 0;
  EXPECT_EQ(LookPath("tool", dir.path(), &err), "");
  EXPECT_EQ(err, ENOENT);
}

}  // namespace
}  // namespace supermachine::agent::rpc
