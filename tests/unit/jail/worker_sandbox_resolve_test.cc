// File: worker_sandbox_resolve_test.cc
// The sandbox supermachined runs restored workers in, as resolved at start from the config
// file and the host (daemon/config/worker_sandbox.h): jail on by default for a root daemon,
// per-VM uids from the 'supermachine' subordinate id range when the host reserved one, the
// file's explicit choices winning, and a clear refusal where the host cannot honour them.
#include "daemon/config/worker_sandbox.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::config {
namespace {

using ::testing::HasSubstr;

SandboxHost Root(std::string subuid = "", std::string subgid = "") {
  return {.root = true, .owner_uid = 998, .subuid = std::move(subuid),
          .subgid = std::move(subgid)};
}

TEST(ResolveWorkerSandbox, RootGetsTheJailAndTheReservedRange) {
  absl::StatusOr<WorkerSandbox> s =
      ResolveWorkerSandbox(DaemonConfig{}, Root("alice:100000:65536\nsupermachine:165536:65536\n",
                                                "supermachine:165536:65536\nalice:100000:65536\n"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->jail);
  EXPECT_EQ(s->uid_range.first, 165536u);
  EXPECT_EQ(s->uid_range.count, 65536u);
  EXPECT_EQ(s->uid, 0u);
  EXPECT_THAT(s->summary, HasSubstr("jail on (auto: the daemon runs as root)"));
  EXPECT_THAT(s->summary, HasSubstr("per-VM uids 165536..231071"));
}

TEST(ResolveWorkerSandbox, RootWithoutARangeIsJailedAsUidZeroAndSaysHowToFixIt) {
  absl::StatusOr<WorkerSandbox> s = ResolveWorkerSandbox(DaemonConfig{}, Root());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->jail);
  EXPECT_EQ(s->uid_range.count, 0u);
  EXPECT_THAT(s->summary, HasSubstr("per-VM uids off"));
  EXPECT_THAT(s->summary, HasSubstr("deploy/setup.sh"));
}

TEST(ResolveWorkerSandbox, NotRootMeansNoJailByDefault) {
  absl::StatusOr<WorkerSandbox> s = ResolveWorkerSandbox(
      DaemonConfig{}, {.root = false, .subuid = "supermachine:165536:65536",
                       .subgid = "supermachine:165536:65536"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->jail);
  EXPECT_EQ(s->uid_range.count, 0u) << "no jail, so no uid switch either";
  EXPECT_THAT(s->summary, HasSubstr("jail off (auto: the daemon does not run as root"));
}

TEST(ResolveWorkerSandbox, AJailAskedForWithoutRootFailsTheStart) {
  DaemonConfig c;
  c.worker_jail = true;
  absl::StatusOr<WorkerSandbox> s = ResolveWorkerSandbox(c, {.root = false});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("\"worker_jail\": true"));
  EXPECT_THAT(s.status().message(), HasSubstr("run it as root"));

  DaemonConfig ids;
  ids.worker_uid_range = DaemonConfig::UidRange{.first = 5000, .count = 10};
  EXPECT_EQ(ResolveWorkerSandbox(ids, {.root = false}).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "auto jail resolves off, so an explicit range cannot be honoured";
}

TEST(ResolveWorkerSandbox, TheFilesChoicesWin) {
  const SandboxHost host = Root("supermachine:165536:65536", "supermachine:165536:65536");
  DaemonConfig off;
  off.worker_jail = false;
  absl::StatusOr<WorkerSandbox> s = ResolveWorkerSandbox(off, host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->jail);
  EXPECT_EQ(s->uid_range.count, 0u);
  EXPECT_THAT(s->summary, HasSubstr("jail off (set in the config file)"));

  DaemonConfig own;
  own.worker_uid_range = DaemonConfig::UidRange{.first = 5000, .count = 10};
  s = ResolveWorkerSandbox(own, host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->uid_range.first, 5000u);
  EXPECT_EQ(s->uid_range.count, 10u);

  DaemonConfig no_ids;
  no_ids.worker_uid_range = DaemonConfig::UidRange{};
  s = ResolveWorkerSandbox(no_ids, host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->jail);
  EXPECT_EQ(s->uid_range.count, 0u);
  EXPECT_THAT(s->summary, HasSubstr("per-VM uids off (config file)"));

  DaemonConfig single;
  single.worker_uid = 4000;
  single.worker_gid = 4001;
  s = ResolveWorkerSandbox(single, host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->uid, 4000u);
  EXPECT_EQ(s->gid, 4001u);
  EXPECT_EQ(s->uid_range.count, 0u) << "one uid for all excludes the reserved range";

  DaemonConfig cg;
  cg.worker_cgroup_parent = "/sys/fs/cgroup/supermachine";
  s = ResolveWorkerSandbox(cg, host);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->summary, HasSubstr("cgroups under /sys/fs/cgroup/supermachine"));
}

TEST(ReservedSubidRange, NeedsTheSameStartInBothFiles) {
  EXPECT_FALSE(ReservedSubidRange("supermachine:165536:65536", "", "supermachine", 998));
  EXPECT_FALSE(ReservedSubidRange("supermachine:165536:65536", "supermachine:200000:65536",
                                  "supermachine", 998));
  std::optional<DaemonConfig::UidRange> r =
      ReservedSubidRange("supermachine:100000:10\nsupermachine:165536:65536\n",
                         "supermachine:165536:1000\n", "supermachine", std::nullopt);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 165536u);
  EXPECT_EQ(r->count, 1000u) << "the smaller count: both ids must be reserved";
}

TEST(ReservedSubidRange, MatchesTheOwnerByNameOrNumberOnly) {
  EXPECT_FALSE(ReservedSubidRange("supermachinex:1000:10", "supermachinex:1000:10",
                                  "supermachine", 998));
  std::optional<DaemonConfig::UidRange> r =
      ReservedSubidRange("998:300000:500", "998:300000:500", "supermachine", 998);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 300000u);
  EXPECT_FALSE(ReservedSubidRange("998:300000:500", "998:300000:500", "supermachine",
                                  std::nullopt));
}

TEST(ReservedSubidRange, SkipsWhatCannotBeAUidRange) {
  const char* bad =
      "supermachine:0:100\n"             // includes root
      "supermachine:4294967290:100\n"    // runs past (uid_t)-2
      "supermachine:abc:10\n"
      "supermachine:1000\n"
      "supermachine:1000:0\n"
      "# supermachine:1000:10\n";
  EXPECT_FALSE(ReservedSubidRange(bad, bad, "supermachine", std::nullopt));
  std::optional<DaemonConfig::UidRange> r = ReservedSubidRange(
      std::string(bad) + "supermachine:700000:10", std::string(bad) + "supermachine:700000:10",
      "supermachine", std::nullopt);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 700000u);
}

}  // namespace
}  // namespace supermachine::config
