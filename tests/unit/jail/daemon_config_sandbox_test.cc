// File: daemon_config_sandbox_test.cc
// supermachined's sandbox settings in the config file: read, validated (mode names, ids that
// are not root, uid and gid together, ids only with the jail, a uid range of its own shape that
// excludes the single uid); jail and uid range unset ("auto") by default, which
// worker_sandbox_resolve_test.cc resolves against the host.
#include "daemon/config/daemon_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::config {
namespace {

using ::testing::HasSubstr;

DaemonConfig Valid() {
  DaemonConfig c;
  c.socket = "/run/s.sock";
  c.state_dir = "/var/lib/s";
  return c;
}

TEST(SandboxConfig, AutoByDefault) {
  DaemonConfig c;
  EXPECT_EQ(c.worker_seccomp, "");
  EXPECT_FALSE(c.worker_jail.has_value());
  EXPECT_EQ(c.worker_uid, 0u);
  EXPECT_FALSE(c.worker_uid_range.has_value());
  EXPECT_EQ(c.worker_cgroup_parent, "");
}

TEST(SandboxConfig, AutoAndOffAreWords) {
  DaemonConfig c = Valid();
  absl::Status applied = ApplyJsonConfig(R"({"worker_jail": false, "worker_uid_range": "off"})", &c);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(c.worker_jail, std::optional<bool>(false));
  ASSERT_TRUE(c.worker_uid_range.has_value());
  EXPECT_EQ(c.worker_uid_range->count, 0u);
  EXPECT_TRUE(ValidateDaemonConfig(c).ok()) << "a range that is off needs no jail";
  ASSERT_TRUE(ApplyJsonConfig(R"({"worker_jail": "auto", "worker_uid_range": "auto"})", &c).ok());
  EXPECT_FALSE(c.worker_jail.has_value());
  EXPECT_FALSE(c.worker_uid_range.has_value());
  EXPECT_THAT(ApplyJsonConfig(R"({"worker_jail": "on"})", &c).message(),
              HasSubstr("true, false or \"auto\""));
}

TEST(SandboxConfig, ReadsEveryField) {
  DaemonConfig c = Valid();
  ASSERT_TRUE(ApplyJsonConfig(R"({"worker_seccomp": "on", "worker_jail": true,
                                  "worker_uid": 4000, "worker_gid": 4001,
                                  "worker_cgroup_parent": "/sys/fs/cgroup/supermachine"})",
                              &c)
                  .ok());
  EXPECT_EQ(c.worker_seccomp, "on");
  EXPECT_EQ(c.worker_jail, std::optional<bool>(true));
  EXPECT_EQ(c.worker_uid, 4000u);
  EXPECT_EQ(c.worker_gid, 4001u);
  EXPECT_EQ(c.worker_cgroup_parent, "/sys/fs/cgroup/supermachine");
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
}

TEST(SandboxConfig, RefusesBadValues) {
  DaemonConfig c = Valid();
  EXPECT_THAT(ApplyJsonConfig(R"({"worker_seccomp": "strict"})", &c).message(),
              HasSubstr("on, off or trap"));
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_jail": "yes"})", &c).ok());
  EXPECT_THAT(ApplyJsonConfig(R"({"worker_uid": 0})", &c).message(), HasSubstr("not root"));
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_gid": -5})", &c).ok());
}

TEST(SandboxConfig, IdsNeedEachOtherAndTheJail) {
  DaemonConfig c = Valid();
  c.worker_uid = 4000;
  c.worker_jail = true;
  EXPECT_THAT(ValidateDaemonConfig(c).message(), HasSubstr("both"));
  c.worker_gid = 4000;
  c.worker_jail = false;
  EXPECT_THAT(ValidateDaemonConfig(c).message(), HasSubstr("worker_jail"));
  c.worker_jail = true;
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
  c.worker_jail.reset();
  EXPECT_TRUE(ValidateDaemonConfig(c).ok()) << "auto: the host decides (worker_sandbox.h)";
}

TEST(SandboxConfig, ReadsAUidRange) {
  DaemonConfig c = Valid();
  ASSERT_TRUE(ApplyJsonConfig(R"({"worker_jail": true,
                                  "worker_uid_range": {"first": 100000, "count": 1000}})",
                              &c)
                  .ok());
  ASSERT_TRUE(c.worker_uid_range.has_value());
  EXPECT_EQ(c.worker_uid_range->first, 100000u);
  EXPECT_EQ(c.worker_uid_range->count, 1000u);
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
}

TEST(SandboxConfig, RefusesAMisshapenUidRange) {
  DaemonConfig c = Valid();
  EXPECT_THAT(ApplyJsonConfig(R"({"worker_uid_range": "100000-1000"})", &c).message(),
              HasSubstr("{\"first\": N, \"count\": M}"));
  EXPECT_THAT(ApplyJsonConfig(R"({"worker_uid_range": {"first": 0, "count": 10}})", &c).message(),
              HasSubstr("not root"));
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_uid_range": {"first": 100, "count": 0}})", &c).ok());
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_uid_range": {"first": 100}})", &c).ok());
  EXPECT_FALSE(
      ApplyJsonConfig(R"({"worker_uid_range": {"first": 4294967290, "count": 10}})", &c).ok());
  EXPECT_THAT(
      ApplyJsonConfig(R"({"worker_uid_range": {"first": 1, "count": 2, "step": 1}})", &c)
          .message(),
      HasSubstr("unknown field 'step'"));
  EXPECT_FALSE(c.worker_uid_range.has_value()) << "a refused range leaves the config as it was";
}

TEST(SandboxConfig, UidRangeExcludesTheSingleUidAndNeedsTheJail) {
  DaemonConfig c = Valid();
  c.worker_uid_range = DaemonConfig::UidRange{.first = 100000, .count = 10};
  c.worker_jail = false;
  EXPECT_THAT(ValidateDaemonConfig(c).message(), HasSubstr("worker_jail"));
  c.worker_jail = true;
  c.worker_uid = 4000;
  c.worker_gid = 4000;
  EXPECT_THAT(ValidateDaemonConfig(c).message(), HasSubstr("exclude each other"));
  c.worker_uid = 0;
  c.worker_gid = 0;
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
}

}  // namespace
}  // namespace supermachine::config
