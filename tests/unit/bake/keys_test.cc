// File: keys_test.cc
// Each cache key changes exactly when one of its inputs changes: one table row per input
// (the key must differ from the base), one per deliberate non-input (it must not).
#include "daemon/bake/keys.h"

#include <functional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using Argv = std::vector<std::string>;

image::Digest D(absl::string_view seed) { return image::Sha256Of(seed); }

Artifacts BaseArtifacts() {
  return Artifacts{.kernel = D("kernel"), .agent = D("agent"), .worker = D("worker")};
}

// ---- KeyEncoder ----

TEST(KeyEncoder, FieldBoundariesAreUnambiguous) {
  EXPECT_NE(KeyEncoder("k").Str("a", "bc").Finish(), KeyEncoder("k").Str("ab", "c").Finish());
}

TEST(KeyEncoder, ListElementBoundariesAreUnambiguous) {
  EXPECT_NE(KeyEncoder("k").List("l", {"a", "b"}).Finish(),
            KeyEncoder("k").List("l", {"ab"}).Finish());
}

TEST(KeyEncoder, AbsentDiffersFromEmpty) {
  EXPECT_NE(KeyEncoder("k").Absent("x").Finish(), KeyEncoder("k").List("x", {}).Finish());
  EXPECT_NE(KeyEncoder("k").Absent("x").Finish(), KeyEncoder("k").Str("x", "").Finish());
}

TEST(KeyEncoder, StringDiffersFromOneElementList) {
  EXPECT_NE(KeyEncoder("k").Str("x", "a").Finish(), KeyEncoder("k").List("x", {"a"}).Finish());
}

TEST(KeyEncoder, KindAndVersionAreInTheKey) {
  EXPECT_NE(KeyEncoder("cheap").Finish(), KeyEncoder("delta").Finish());
  EXPECT_NE(KeyEncoder("cheap", 1).Finish(), KeyEncoder("cheap", 2).Finish());
}

// The bytes as documented in keys.h (value cross-checked with an independent Python encoder).
// If this fails, the encoding changed: bump kKeyFormatVersion and update the value.
TEST(KeyEncoder, EncodingIsStable) {
  const KeyEncoder enc = KeyEncoder("bake").Str("s", "v").U64("u", 7).List("l", {"a"});
  EXPECT_EQ(enc.bytes().size(), 11u + 4 + (1 + 4 + 4 + 8 + 4) + (1 + 4 + 1 + 8 + 1) +
                                    (1 + 4 + 1 + 8) + (1 + 4 + 1 + 8 + 8 + 1));
  EXPECT_EQ(enc.Finish().hex(), "80de934295dea48fa1d0ddbdf37dc3a78c9162c9b06639e88bcf9e1061dc9491");
}

// ---- cheap key ----

BakeRequest BaseRequest() {
  BakeRequest r{.image = "redis:7", .guest_port = 6379};
  r.cmd = Argv{"redis-server"};
  r.env = {"A=1", "B=2"};
  r.extra_files = {{.host_path = "/h/a.conf", .guest_path = "/etc/a.conf"},
                   {.host_path = "/h/b.conf", .guest_path = "/etc/b.conf"}};
  r.volumes = {*ParseVolume("data:/data:1G"), *ParseVolume("logs:/logs:1G")};
  r.readiness = *ParseReadiness("parked");
  return r;
}

CheapKeyExtras BaseExtras() {
  return CheapKeyExtras{
      .artifacts = BaseArtifacts(),
      .extra_files = {{.digest = D("a"), .mode = 0644, .size = 1},
                      {.digest = D("b"), .mode = 0600, .size = 1}},
      .cached_image_digest = D("manifest").ToString(),
  };
}

image::Digest CheapKeyOf(const BakeRequest& r, const CheapKeyExtras& e) {
  absl::StatusOr<image::Digest> key = CheapKey(r, e);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? *key : image::Digest();
}

struct CheapCase {
  const char* name;
  std::function<void(BakeRequest&, CheapKeyExtras&)> change;
};

class CheapKeyChanges : public ::testing::TestWithParam<CheapCase> {};
class CheapKeyIgnores : public ::testing::TestWithParam<CheapCase> {};

TEST_P(CheapKeyChanges, WhenInputChanges) {
  BakeRequest r = BaseRequest();
  CheapKeyExtras e = BaseExtras();
  GetParam().change(r, e);
  EXPECT_NE(CheapKeyOf(r, e), CheapKeyOf(BaseRequest(), BaseExtras()));
}

TEST_P(CheapKeyIgnores, NonInput) {
  BakeRequest r = BaseRequest();
  CheapKeyExtras e = BaseExtras();
  GetParam().change(r, e);
  EXPECT_EQ(CheapKeyOf(r, e), CheapKeyOf(BaseRequest(), BaseExtras()));
}

using R = BakeRequest&;
using E = CheapKeyExtras&;

INSTANTIATE_TEST_SUITE_P(
    Bake, CheapKeyChanges,
    ::testing::Values(
        CheapCase{"Image", [](R r, E) { r.image = "redis:8"; }},
        CheapCase{"Name", [](R r, E) { r.name = "cache"; }},
        CheapCase{"GuestPort", [](R r, E) { r.guest_port = 6380; }},
        CheapCase{"Memory", [](R r, E) { r.memory_mib = 512; }},
        CheapCase{"Vcpus", [](R r, E) { r.vcpus = 2; }},
        CheapCase{"CmdContent", [](R r, E) { r.cmd = Argv{"redis-server", "--save", ""}; }},
        CheapCase{"CmdUnset", [](R r, E) { r.cmd.reset(); }},
        CheapCase{"CmdEmptyIsNotUnset", [](R r, E) { r.cmd = Argv{}; }},
        CheapCase{"Entrypoint", [](R r, E) { r.entrypoint = Argv{"/bin/sh"}; }},
        CheapCase{"Workdir", [](R r, E) { r.workdir = "/data"; }},
        CheapCase{"WorkdirEmptyIsNotUnset", [](R r, E) { r.workdir = ""; }},
        CheapCase{"User", [](R r, E) { r.user = "redis"; }},
        CheapCase{"EnvAdded", [](R r, E) { r.env.push_back("C=3"); }},
        CheapCase{"EnvValue", [](R r, E) { r.env[0] = "A=9"; }},
        CheapCase{"EnvOrder", [](R r, E) { std::swap(r.env[0], r.env[1]); }},
        CheapCase{"Hostname", [](R r, E) { r.hostname = "cache-1"; }},
        CheapCase{"ExtraFileHostPath", [](R r, E) { r.extra_files[0].host_path = "/h/c.conf"; }},
        CheapCase{"ExtraFileGuestPath",
                  [](R r, E) { r.extra_files[0].guest_path = "/etc/c.conf"; }},
        CheapCase{"ExtraFileMode", [](R, E e) { e.extra_files[0].mode = 0755; }},
        CheapCase{"ExtraFileContent", [](R, E e) { e.extra_files[1].digest = D("b2"); }},
        CheapCase{"ExtraFileRemoved",
                  [](R r, E e) {
                    r.extra_files.pop_back();
                    e.extra_files.pop_back();
                  }},
        CheapCase{"VolumeAdded", [](R r, E) { r.volumes.push_back(*ParseVolume("x:/x")); }},
        CheapCase{"VolumeSize", [](R r, E) { r.volumes[0].size_bytes = 2ull << 30; }},
        CheapCase{"VolumeOrder", [](R r, E) { std::swap(r.volumes[0], r.volumes[1]); }},
        CheapCase{"Restart", [](R r, E) { r.restart = *ParseRestartPolicy("always"); }},
        CheapCase{"HealthAdded", [](R r, E) { r.health = **ParseHealthCheck("true", ""); }},
        CheapCase{"Readiness",
                  [](R r, E) { r.readiness = *ParseReadiness("parked,deadline=1000"); }},
        CheapCase{"Egress", [](R r, E) { r.egress = *ParseEgressPolicy("allow_all"); }},
        CheapCase{"Kernel", [](R, E e) { e.artifacts.kernel = D("kernel2"); }},
        CheapCase{"Agent", [](R, E e) { e.artifacts.agent = D("agent2"); }},
        CheapCase{"Worker", [](R, E e) { e.artifacts.worker = D("worker2"); }},
        CheapCase{"CachedImageDigest", [](R, E e) { e.cached_image_digest = D("m2").ToString(); }},
        CheapCase{"CachedImageDigestUnknown", [](R, E e) { e.cached_image_digest.clear(); }}),
    [](const ::testing::TestParamInfo<CheapCase>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Bake, CheapKeyIgnores,
    ::testing::Values(
        CheapCase{"SnapshotsDir", [](R r, E) { r.snapshots_dir = "/elsewhere"; }},
        CheapCase{"PullPolicy", [](R r, E) { r.pull_policy = image::PullPolicy::kAlways; }},
        CheapCase{"ExtraFileOrder",
                  [](R r, E e) {
                    std::swap(r.extra_files[0], r.extra_files[1]);
                    std::swap(e.extra_files[0], e.extra_files[1]);
                  }},
        CheapCase{"ExtraFileSizeAlone", [](R, E e) { e.extra_files[0].size = 99; }},
        CheapCase{"NameSpelledAsDefault", [](R r, E) { r.name = "redis_7"; }},
        CheapCase{"HostnameSpelledAsDefault", [](R r, E) { r.hostname = "supermachine"; }},
        CheapCase{"EgressSpelledAsDefault",
                  [](R r, E) { r.egress = *ParseEgressPolicy("deny_private"); }}),
    [](const ::testing::TestParamInfo<CheapCase>& info) { return info.param.name; });

TEST(CheapKey, UnsetReadinessEqualsExplicitDefault) {
  BakeRequest unset{.image = "redis:7", .guest_port = 6379};
  BakeRequest explicit_listener = unset;
  explicit_listener.readiness = *ParseReadiness("listener");
  CheapKeyExtras e{.artifacts = BaseArtifacts()};
  EXPECT_EQ(CheapKeyOf(unset, e), CheapKeyOf(explicit_listener, e));
}

TEST(CheapKey, RejectsFingerprintCountMismatch) {
  CheapKeyExtras e = BaseExtras();
  e.extra_files.pop_back();
  EXPECT_EQ(CheapKey(BaseRequest(), e).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FingerprintExtraFiles, HashesEachFileInRequestOrder) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("a"), "alpha");
  test_support::WriteFileOrDie(dir.Join("b"), "beta");
  BakeRequest r{.image = "x"};
  r.extra_files = {{.host_path = dir.Join("b"), .guest_path = "/b"},
                   {.host_path = dir.Join("a"), .guest_path = "/a"}};
  absl::StatusOr<std::vector<FileFingerprint>> fps = FingerprintExtraFiles(r);
  ASSERT_TRUE(fps.ok()) << fps.status();
  ASSERT_EQ(fps->size(), 2u);
  EXPECT_EQ((*fps)[0].digest, image::Sha256Of("beta"));
  EXPECT_EQ((*fps)[1].digest, image::Sha256Of("alpha"));
}

TEST(FingerprintExtraFiles, NamesTheExtraFileOnError) {
  test_support::TempDir dir;
  BakeRequest r{.image = "x"};
  r.extra_files = {{.host_path = dir.Join("gone"), .guest_path = "/g"}};
  EXPECT_THAT(FingerprintExtraFiles(r).status().message(),
              ::testing::HasSubstr("extra file '" + dir.Join("gone") + ":/g'"));
}

TEST(CheapKey, ChangesWhenExtraFileContentChangesOnDisk) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("conf"), "v1");
  BakeRequest r{.image = "x"};
  r.extra_files = {{.host_path = dir.Join("conf"), .guest_path = "/etc/conf"}};
  CheapKeyExtras before{.artifacts = BaseArtifacts(), .extra_files = *FingerprintExtraFiles(r)};
  test_support::WriteFileOrDie(dir.Join("conf"), "v2");
  CheapKeyExtras after{.artifacts = BaseArtifacts(), .extra_files = *FingerprintExtraFiles(r)};
  EXPECT_NE(CheapKeyOf(r, before), CheapKeyOf(r, after));
}

// ---- delta key ----

DeltaKeyInputs BaseDelta() {
  return DeltaKeyInputs{
      .agent = D("agent"),
      .launch = LaunchSpec{.argv = {"redis-server"},
                           .env = {"PATH=/bin", "A=1"},
                           .workdir = "/data",
                           .user = "redis",
                           .hostname = "supermachine"},
      .files = {{.guest_path = "/etc/a", .mode = 0644, .content = D("a")},
                {.guest_path = "/etc/b", .mode = 0600, .content = D("b")}},
      .volumes = {*ParseVolume("data:/data"), *ParseVolume("logs:/logs")},
  };
}

struct DeltaCase {
  const char* name;
  std::function<void(DeltaKeyInputs&)> change;
};

class DeltaKeyChanges : public ::testing::TestWithParam<DeltaCase> {};
class DeltaKeyIgnores : public ::testing::TestWithParam<DeltaCase> {};

TEST_P(DeltaKeyChanges, WhenInputChanges) {
  DeltaKeyInputs in = BaseDelta();
  GetParam().change(in);
  EXPECT_NE(DeltaKey(in), DeltaKey(BaseDelta()));
}

TEST_P(DeltaKeyIgnores, NonInput) {
  DeltaKeyInputs in = BaseDelta();
  GetParam().change(in);
  EXPECT_EQ(DeltaKey(in), DeltaKey(BaseDelta()));
}

using DI = DeltaKeyInputs&;

INSTANTIATE_TEST_SUITE_P(
    Bake, DeltaKeyChanges,
    ::testing::Values(
        DeltaCase{"Agent", [](DI d) { d.agent = D("agent2"); }},
        DeltaCase{"Argv", [](DI d) { d.launch.argv.push_back("--port"); }},
        DeltaCase{"Env", [](DI d) { d.launch.env.push_back("B=2"); }},
        DeltaCase{"EnvOrder", [](DI d) { std::swap(d.launch.env[0], d.launch.env[1]); }},
        DeltaCase{"Workdir", [](DI d) { d.launch.workdir = "/"; }},
        DeltaCase{"User", [](DI d) { d.launch.user = ""; }},
        DeltaCase{"Hostname", [](DI d) { d.launch.hostname = "web"; }},
        DeltaCase{"Restart", [](DI d) { d.launch.restart = *ParseRestartPolicy("always"); }},
        DeltaCase{"FileGuestPath", [](DI d) { d.files[0].guest_path = "/etc/c"; }},
        DeltaCase{"FileMode", [](DI d) { d.files[0].mode = 0755; }},
        DeltaCase{"FileContent", [](DI d) { d.files[1].content = D("b2"); }},
        DeltaCase{"FileRemoved", [](DI d) { d.files.pop_back(); }},
        DeltaCase{"VolumeAdded", [](DI d) { d.volumes.push_back(*ParseVolume("x:/x")); }},
        DeltaCase{"VolumeName", [](DI d) { d.volumes[0].name = "db"; }},
        DeltaCase{"VolumePath", [](DI d) { d.volumes[0].guest_path = "/db"; }},
        DeltaCase{"VolumeSize", [](DI d) { d.volumes[0].size_bytes = 2ull << 30; }},
        DeltaCase{"Park", [](DI d) { d.park = true; }},
        DeltaCase{"VolumeOrder", [](DI d) { std::swap(d.volumes[0], d.volumes[1]); }}),
    [](const ::testing::TestParamInfo<DeltaCase>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Bake, DeltaKeyIgnores,
    ::testing::Values(DeltaCase{"FileOrder", [](DI d) { std::swap(d.files[0], d.files[1]); }}),
    [](const ::testing::TestParamInfo<DeltaCase>& info) { return info.param.name; });

TEST(DeltaFiles, PairsGuestPathsWithFingerprints) {
  BakeRequest r{.image = "x"};
  r.extra_files = {{.host_path = "/h", .guest_path = "/g"}};
  const std::vector<DeltaFile> files =
      DeltaFiles(r, {{.digest = D("c"), .mode = 0640, .size = 3}});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].guest_path, "/g");
  EXPECT_EQ(files[0].mode, 0640u);
  EXPECT_EQ(files[0].content, D("c"));
}

// ---- bake key ----

BakeKeyInputs BaseBake() {
  return BakeKeyInputs{
      .layers = {D("l1"), D("l2")},
      .delta_key = D("delta"),
      .artifacts = BaseArtifacts(),
      .memory_mib = 256,
      .vcpus = 1,
      .readiness = Readiness{.mode = Readiness::Mode::kListener},
      .guest_port = 80,
  };
}

struct BakeCase {
  const char* name;
  std::function<void(BakeKeyInputs&)> change;
};

class BakeKeyChanges : public ::testing::TestWithParam<BakeCase> {};

TEST_P(BakeKeyChanges, WhenInputChanges) {
  BakeKeyInputs in = BaseBake();
  GetParam().change(in);
  EXPECT_NE(BakeKey(in), BakeKey(BaseBake()));
}

using BI = BakeKeyInputs&;

INSTANTIATE_TEST_SUITE_P(
    Bake, BakeKeyChanges,
    ::testing::Values(
        BakeCase{"LayerContent", [](BI b) { b.layers[1] = D("l3"); }},
        BakeCase{"LayerOrder", [](BI b) { std::swap(b.layers[0], b.layers[1]); }},
        BakeCase{"LayerAdded", [](BI b) { b.layers.push_back(D("l3")); }},
        BakeCase{"DeltaKey", [](BI b) { b.delta_key = D("delta2"); }},
        BakeCase{"Kernel", [](BI b) { b.artifacts.kernel = D("k2"); }},
        BakeCase{"Agent", [](BI b) { b.artifacts.agent = D("a2"); }},
        BakeCase{"Worker", [](BI b) { b.artifacts.worker = D("w2"); }},
        BakeCase{"Memory", [](BI b) { b.memory_mib = 512; }},
        BakeCase{"Vcpus", [](BI b) { b.vcpus = 2; }},
        BakeCase{"ReadinessMode", [](BI b) { b.readiness.mode = Readiness::Mode::kExit; }},
        BakeCase{"ReadinessSettle", [](BI b) { b.readiness.settle_ms = 100; }},
        BakeCase{"ReadinessDeadline", [](BI b) { b.readiness.deadline_ms = 1000; }},
        BakeCase{"GuestPortForListener", [](BI b) { b.guest_port = 8080; }}),
    [](const ::testing::TestParamInfo<BakeCase>& info) { return info.param.name; });

TEST(BakeKey, IgnoresGuestPortWhenNotWaitingForAListener) {
  BakeKeyInputs a = BaseBake();
  a.readiness = Readiness{.mode = Readiness::Mode::kParked};
  BakeKeyInputs b = a;
  b.guest_port = 8080;
  EXPECT_EQ(BakeKey(a), BakeKey(b));
}

}  // namespace
}  // namespace supermachine::bake
