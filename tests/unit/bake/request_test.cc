// File: request_test.cc
// Validate(), the default readiness and the snapshots dir rule.
#include "daemon/bake/request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::testing::HasSubstr;

// Every host file "exists" unless it is under /missing/.
FsChecks FakeFs() {
  return FsChecks{.readable_regular_file = [](const std::string& path) -> absl::Status {
    if (path.rfind("/missing/", 0) == 0) {
      return absl::NotFoundError("No such file or directory");
    }
    return absl::OkStatus();
  }};
}

BakeRequest Minimal() { return BakeRequest{.image = "redis:7"}; }

TEST(BakeRequest, HasIssueDefaults) {
  const BakeRequest r;
  EXPECT_EQ(r.memory_mib, 256u);
  EXPECT_EQ(r.vcpus, 1u);
  EXPECT_EQ(r.pull_policy, image::PullPolicy::kMissing);
  EXPECT_EQ(r.egress.kind, EgressPolicy::Kind::kDenyPrivate);
  EXPECT_EQ(r.restart.kind, RestartPolicy::Kind::kNo);
}

TEST(Validate, AcceptsMinimalRequest) { EXPECT_TRUE(Validate(Minimal(), FakeFs()).ok()); }

TEST(Validate, RejectsMissingImage) {
  EXPECT_THAT(Validate(BakeRequest{}, FakeFs()).message(), HasSubstr("image is required"));
}

TEST(Validate, RejectsHostnameWithUppercaseAndUnderscore) {
  BakeRequest r = Minimal();
  r.hostname = "Foo_bar";
  absl::Status st = Validate(r, FakeFs());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "hostname 'Foo_bar': only a-z, 0-9 and '-' allowed");
}

TEST(Validate, RejectsHostnameWithLeadingDash) {
  BakeRequest r = Minimal();
  r.hostname = "-web";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("must not start or end with '-'"));
}

TEST(Validate, RejectsHostnameWithTrailingDash) {
  BakeRequest r = Minimal();
  r.hostname = "web-";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("must not start or end with '-'"));
}

TEST(Validate, Rejects64CharacterHostname) {
  BakeRequest r = Minimal();
  r.hostname = std::string(64, 'a');
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("1 to 63 characters"));
}

TEST(Validate, Accepts63CharacterHostname) {
  BakeRequest r = Minimal();
  r.hostname = std::string(63, 'a');
  EXPECT_TRUE(Validate(r, FakeFs()).ok());
}

TEST(Validate, AcceptsDigitsAndInnerDashInHostname) {
  BakeRequest r = Minimal();
  r.hostname = "web-01";
  EXPECT_TRUE(Validate(r, FakeFs()).ok());
}

TEST(Validate, RejectsMissingExtraFileKeepingNotFound) {
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = "/missing/app.conf", .guest_path = "/etc/app.conf"}};
  absl::Status st = Validate(r, FakeFs());
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("extra file '/missing/app.conf:/etc/app.conf': host file "
                                      "'/missing/app.conf': No such file"));
}

TEST(Validate, RejectsExtraFileWithRelativeGuestPath) {
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = "/h", .guest_path = "etc/x"}};
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("guest path 'etc/x' must be absolute"));
}

TEST(Validate, RejectsTwoExtraFilesToSameGuestPath) {
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = "/a", .guest_path = "/etc/x"},
                   {.host_path = "/b", .guest_path = "/etc/x"}};
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("already goes to this guest path"));
}

TEST(Validate, RealFsChecksFindsExistingFile) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("app.conf"), "x=1\n");
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = dir.Join("app.conf"), .guest_path = "/etc/app.conf"}};
  EXPECT_TRUE(Validate(r, RealFsChecks()).ok());
}

TEST(Validate, RealFsChecksRejectsDirectory) {
  test_support::TempDir dir;
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = dir.path(), .guest_path = "/etc/app.conf"}};
  EXPECT_THAT(Validate(r, RealFsChecks()).message(), HasSubstr("not a regular file"));
}

TEST(Validate, RealFsChecksReportsMissingFileAsNotFound) {
  test_support::TempDir dir;
  BakeRequest r = Minimal();
  r.extra_files = {{.host_path = dir.Join("nope"), .guest_path = "/etc/app.conf"}};
  EXPECT_EQ(Validate(r, RealFsChecks()).code(), absl::StatusCode::kNotFound);
}

TEST(Validate, RejectsDuplicateVolumeName) {
  BakeRequest r = Minimal();
  r.volumes = {*ParseVolume("data:/a"), *ParseVolume("data:/b")};
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("volume name is used twice"));
}

TEST(Validate, RejectsTwoVolumesAtOnePath) {
  BakeRequest r = Minimal();
  r.volumes = {*ParseVolume("a:/data"), *ParseVolume("b:/data")};
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("another volume is mounted"));
}

TEST(Validate, RejectsListenerReadinessWithoutPort) {
  BakeRequest r = Minimal();
  r.readiness = *ParseReadiness("listener");
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("readiness 'listener': needs guest_port"));
}

TEST(Validate, RejectsListenerReadinessWithVolumes) {
  BakeRequest r = Minimal();
  r.guest_port = 80;
  r.volumes = {*ParseVolume("data:/data")};
  r.readiness = *ParseReadiness("listener");
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("with volumes only 'parked'"));
}

TEST(Validate, AcceptsParkedReadinessWithVolumes) {
  BakeRequest r = Minimal();
  r.volumes = {*ParseVolume("data:/data")};
  r.readiness = *ParseReadiness("parked");
  EXPECT_TRUE(Validate(r, FakeFs()).ok());
}

TEST(Validate, RejectsTooLittleMemory) {
  BakeRequest r = Minimal();
  r.memory_mib = 16;
  EXPECT_EQ(Validate(r, FakeFs()).message(), "memory_mib '16': must be between 32 and 1048576");
}

TEST(Validate, RejectsZeroVcpus) {
  BakeRequest r = Minimal();
  r.vcpus = 0;
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("vcpus '0': must be 1 to 32"));
}

TEST(Validate, RejectsTooManyVcpus) {
  BakeRequest r = Minimal();
  r.vcpus = 33;
  EXPECT_FALSE(Validate(r, FakeFs()).ok());
}

TEST(Validate, RejectsPortAbove65535) {
  BakeRequest r = Minimal();
  r.guest_port = 70000;
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("guest_port '70000'"));
}

TEST(Validate, RejectsEnvWithoutEquals) {
  BakeRequest r = Minimal();
  r.env = {"DEBUG"};
  EXPECT_EQ(Validate(r, FakeFs()).message(), "env 'DEBUG': must look like KEY=VALUE");
}

TEST(Validate, RejectsRelativeWorkdir) {
  BakeRequest r = Minimal();
  r.workdir = "app";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("workdir: guest path 'app' must be absolute"));
}

TEST(Validate, AcceptsEmptyWorkdirAsRoot) {
  BakeRequest r = Minimal();
  r.workdir = "";
  EXPECT_TRUE(Validate(r, FakeFs()).ok());
}

TEST(Validate, RejectsUserWithTwoColons) {
  BakeRequest r = Minimal();
  r.user = "a:b:c";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("user 'a:b:c'"));
}

TEST(Validate, RejectsBadExplicitSnapshotName) {
  BakeRequest r = Minimal();
  r.name = "a/b";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("snapshot name 'a/b'"));
}

TEST(Validate, RejectsRelativeSnapshotsDir) {
  BakeRequest r = Minimal();
  r.snapshots_dir = "snaps";
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("snapshots_dir 'snaps'"));
}

TEST(Validate, RejectsEmptyAllowlistBuiltByHand) {
  BakeRequest r = Minimal();
  r.egress.kind = EgressPolicy::Kind::kAllowlist;
  EXPECT_THAT(Validate(r, FakeFs()).message(), HasSubstr("at least one CIDR"));
}

TEST(EffectiveReadiness, ListenerWhenPortSet) {
  BakeRequest r = Minimal();
  r.guest_port = 8080;
  EXPECT_EQ(EffectiveReadiness(r), Readiness{.mode = Readiness::Mode::kListener});
}

TEST(EffectiveReadiness, ParkedWithoutPort) {
  EXPECT_EQ(EffectiveReadiness(Minimal()).mode, Readiness::Mode::kParked);
}

TEST(EffectiveReadiness, ParkedWithVolumesEvenWithPort) {
  BakeRequest r = Minimal();
  r.guest_port = 8080;
  r.volumes = {*ParseVolume("data:/data")};
  EXPECT_EQ(EffectiveReadiness(r).mode, Readiness::Mode::kParked);
}

TEST(EffectiveReadiness, ExplicitWins) {
  BakeRequest r = Minimal();
  r.guest_port = 8080;
  r.readiness = *ParseReadiness("after=1000");
  EXPECT_EQ(EffectiveReadiness(r).mode, Readiness::Mode::kAfter);
}

TEST(ResolveSnapshotsDir, DefaultsUnderStateDir) {
  EXPECT_EQ(*ResolveSnapshotsDir(Minimal(), "/var/lib/supermachine", ""),
            "/var/lib/supermachine/snapshots");
}

TEST(ResolveSnapshotsDir, EnvOverridesDefault) {
  EXPECT_EQ(*ResolveSnapshotsDir(Minimal(), "/var/lib/supermachine", "/srv/snaps"), "/srv/snaps");
}

TEST(ResolveSnapshotsDir, RequestOverridesEnv) {
  BakeRequest r = Minimal();
  r.snapshots_dir = "/data/snaps";
  EXPECT_EQ(*ResolveSnapshotsDir(r, "/var/lib/supermachine", "/srv/snaps"), "/data/snaps");
}

TEST(ResolveSnapshotsDir, RejectsRelativeEnvNamingTheVariable) {
  EXPECT_THAT(ResolveSnapshotsDir(Minimal(), "/var/lib/supermachine", "snaps").status().message(),
              HasSubstr("SUPERMACHINE_SNAPSHOTS_DIR 'snaps'"));
}

}  // namespace
}  // namespace supermachine::bake
