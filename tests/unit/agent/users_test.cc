// File: tests/unit/agent/users_test.cc
// User spec resolution against a fake rootfs's /etc/passwd and /etc/group.
#include "guest-agent/process/users.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::WriteFileOrDie;
using ::testing::ElementsAre;

class ResolveUserTest : public ::testing::Test {
 protected:
  ResolveUserTest() {
    WriteFileOrDie(root_.Join("etc/passwd"),
                   "# comment\n"
                   "root:x:0:0:root:/root:/bin/sh\n"
                   "app:x:1000:1000:App:/home/app:/bin/sh\n"
                   "nohome:x:1001:1001::\n"
                   "broken:x:notanumber:1:::\n");
    WriteFileOrDie(root_.Join("etc/group"),
                   "root:x:0:\n"
                   "app:x:1000:\n"
                   "audio:x:29:app,other\n"
                   "video:x:44:other,app\n"
                   "staff:x:50:\n");
  }
  TempDir root_;
};

TEST_F(ResolveUserTest, EmptySpecIsRootWithRootsHome) {
  UserResult r = ResolveUser("", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 0u);
  EXPECT_EQ(r.user.gid, 0u);
  EXPECT_EQ(r.user.home, "/root");
  EXPECT_THAT(r.user.groups, ElementsAre(0u));
}

TEST_F(ResolveUserTest, NameGivesPasswdIdsHomeAndMemberGroups) {
  UserResult r = ResolveUser("app", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 1000u);
  EXPECT_EQ(r.user.gid, 1000u);
  EXPECT_EQ(r.user.name, "app");
  EXPECT_EQ(r.user.home, "/home/app");
  EXPECT_THAT(r.user.groups, ElementsAre(1000u, 29u, 44u));
}

TEST_F(ResolveUserTest, NumericUidWithEntryUsesItsGidAndHome) {
  UserResult r = ResolveUser("1000", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.gid, 1000u);
  EXPECT_EQ(r.user.home, "/home/app");
}

TEST_F(ResolveUserTest, NumericUidWithoutEntryRunsAsGidZeroHomeSlash) {
  UserResult r = ResolveUser("4242", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 4242u);
  EXPECT_EQ(r.user.gid, 0u);
  EXPECT_EQ(r.user.home, "/");
  EXPECT_TRUE(r.user.name.empty());
  EXPECT_THAT(r.user.groups, ElementsAre(0u));
}

TEST_F(ResolveUserTest, UidColonGidNeedsNoEntries) {
  UserResult r = ResolveUser("4242:4343", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 4242u);
  EXPECT_EQ(r.user.gid, 4343u);
  EXPECT_THAT(r.user.groups, ElementsAre(4343u));
}

TEST_F(ResolveUserTest, NameColonGroupOverridesPrimaryGid) {
  UserResult r = ResolveUser("app:staff", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 1000u);
  EXPECT_EQ(r.user.gid, 50u);
  EXPECT_THAT(r.user.groups, ElementsAre(50u, 29u, 44u));
}

TEST_F(ResolveUserTest, EmptyHomeFieldFallsBackToSlash) {
  UserResult r = ResolveUser("nohome", root_.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.home, "/");
}

TEST_F(ResolveUserTest, UnknownNameIsAnErrorNamingPasswd) {
  UserResult r = ResolveUser("ghost", root_.path());
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("ghost"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("/etc/passwd"), std::string::npos) << r.error;
}

TEST_F(ResolveUserTest, UnknownGroupIsAnErrorNamingGroupFile) {
  UserResult r = ResolveUser("app:ghosts", root_.path());
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("/etc/group"), std::string::npos) << r.error;
}

TEST_F(ResolveUserTest, RejectsUidOutOfRange) {
  EXPECT_FALSE(ResolveUser("4294967296", root_.path()).ok);
}

TEST_F(ResolveUserTest, RejectsEmptyGroupAfterColon) {
  EXPECT_FALSE(ResolveUser("app:", root_.path()).ok);
}

TEST(ResolveUser, NumericSpecWorksWithoutAnyEtcFiles) {
  TempDir empty_root;
  UserResult r = ResolveUser("7:8", empty_root.path());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user.uid, 7u);
  EXPECT_EQ(r.user.gid, 8u);
}

}  // namespace
}  // namespace supermachine::agent
