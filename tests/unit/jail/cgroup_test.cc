// File: cgroup_test.cc
// cgroup v2 file writing against a temp directory that stands in for a cgroup (the files a
// real cgroup's kernel provides are pre-created; a missing one must be an error).
#include "worker/jail/cgroup.h"

#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::jail {
namespace {

using ::testing::HasSubstr;
using test_support::ReadFileOrDie;
using test_support::TempDir;
using test_support::WriteFileOrDie;

TEST(Cgroup, LimitsFollowGuestRamAndVcpus) {
  const CgroupLimits l = LimitsForVm(256, 2);
  EXPECT_EQ(l.memory_max_bytes, (256ull << 20) + kVmmOverheadBytes);
  EXPECT_EQ(l.cpus, 2u);
  EXPECT_EQ(l.pids_max, kPidsMax + 2);
}

TEST(Cgroup, WritesEachLimitFile) {
  TempDir parent;
  const std::string dir = parent.Join("vm-1");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  for (const char* f : {"memory.max", "memory.swap.max", "cpu.max", "pids.max", "cgroup.procs"}) {
    WriteFileOrDie(dir + "/" + f, "max\n");
  }
  ASSERT_TRUE(CreateWorkerCgroup(dir, LimitsForVm(128, 2)).ok());
  EXPECT_EQ(ReadFileOrDie(dir + "/memory.max"), std::to_string((128ull << 20) + kVmmOverheadBytes));
  EXPECT_EQ(ReadFileOrDie(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(ReadFileOrDie(dir + "/cpu.max"), "200000 100000");
  EXPECT_EQ(ReadFileOrDie(dir + "/pids.max"), std::to_string(kPidsMax + 2));
  ASSERT_TRUE(JoinCgroup(dir, 4242).ok());
  EXPECT_EQ(ReadFileOrDie(dir + "/cgroup.procs"), "4242");
}

TEST(Cgroup, MissingControllerFileIsAnError) {
  TempDir parent;
  const std::string dir = parent.Join("vm-2");  // Created by CreateWorkerCgroup, but empty.
  absl::Status st = CreateWorkerCgroup(dir, LimitsForVm(64, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("memory.max"));
  EXPECT_THAT(st.message(), HasSubstr("subtree_control"));
}

TEST(Cgroup, ZeroLimitsWriteNothing) {
  TempDir parent;
  const std::string dir = parent.Join("vm-3");
  EXPECT_TRUE(CreateWorkerCgroup(dir, CgroupLimits{}).ok());
  EXPECT_TRUE(test_support::ListDir(dir).empty());
}

TEST(Cgroup, ReadsTheOomKillCounter) {
  TempDir dir;
  EXPECT_FALSE(OomKillCount(dir.path()).has_value());  // No memory.events: unknown.
  WriteFileOrDie(dir.Join("memory.events"),
                 "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n");
  EXPECT_EQ(OomKillCount(dir.path()), 1u);
}

TEST(Cgroup, RemoveToleratesAGoneDirectory) {
  TempDir parent;
  const std::string dir = parent.Join("vm-4");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  EXPECT_TRUE(RemoveCgroup(dir).ok());
  EXPECT_TRUE(RemoveCgroup(dir).ok());
}

}  // namespace
}  // namespace supermachine::jail
