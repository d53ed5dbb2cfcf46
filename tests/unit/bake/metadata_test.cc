// File: metadata_test.cc
// metadata.json: round trip, strict reading (version, required fields, types), atomic write.
#include "daemon/bake/metadata.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

image::Digest D(absl::string_view seed) { return image::Sha256Of(seed); }

SnapshotMetadata Full() {
  SnapshotMetadata m;
  m.name = "redis_7";
  m.image = "redis:7";
  m.image_digest = D("manifest");
  m.layers = {D("l1"), D("l2")};
  m.cheap_key = D("cheap");
  m.delta_key = D("delta");
  m.bake_key = D("bake");
  m.kernel_version = "6.1.0-sm1";
  m.kernel_digest = D("kernel");
  m.agent_version = "0.1.0";
  m.agent_digest = D("agent");
  m.memory_mib = 512;
  m.vcpus = 2;
  m.guest_port = 6379;
  m.launch = LaunchSpec{.argv = {"redis-server", "--save", ""},
                        .env = {"PATH=/usr/bin", "A=1"},
                        .workdir = "/data",
                        .user = "redis",
                        .hostname = "cache",
                        .restart = *ParseRestartPolicy("on-failure:3")};
  m.extra_files = {{.guest_path = "/etc/redis.conf", .mode = 0644, .content = D("conf")}};
  m.volumes = {*ParseVolume("data:/data:2G")};
  m.health = **ParseHealthCheck("redis-cli ping", "10s");
  m.readiness = *ParseReadiness("listener,settle=100");
  m.egress = *ParseEgressPolicy("allowlist:10.0.0.0/8,fd00::/8");
  m.baked_at_unix_ms = 1'800'000'000'000;
  m.timings = BakeTimings{.resolve_ms = 1, .pull_ms = 2, .convert_ms = 3, .delta_ms = 4,
                          .boot_ms = 5, .ready_ms = 6, .snapshot_ms = 7, .total_ms = 28};
  return m;
}

// The serialized form of Full() with one edit applied to the JSON.
std::string Edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(SerializeMetadata(Full()));
  edit(j);
  return j.dump();
}

TEST(Metadata, RoundTripsEveryField) {
  absl::StatusOr<SnapshotMetadata> back = ParseMetadata(SerializeMetadata(Full()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Full());
}

TEST(Metadata, RoundTripsWithoutHealthCheck) {
  SnapshotMetadata m = Full();
  m.health.reset();
  m.volumes.clear();
  m.extra_files.clear();
  EXPECT_EQ(*ParseMetadata(SerializeMetadata(m)), m);
}

TEST(Metadata, WritesFormatVersionAndTimings) {
  nlohmann::json j = nlohmann::json::parse(SerializeMetadata(Full()));
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["timings"]["total_ms"], 28);
  EXPECT_EQ(j["egress_policy"], "allowlist:10.0.0.0/8,fd00::/8");
  EXPECT_EQ(j["launch"]["restart"], "on-failure:3");
}

TEST(Metadata, StartsWithFormatVersion) {
  EXPECT_THAT(SerializeMetadata(Full()), ::testing::StartsWith("{\n  \"format_version\": 1,"));
}

TEST(Metadata, RejectsNewerFormatVersion) {
  absl::Status st =
      ParseMetadata(Edited([](nlohmann::json& j) { j["format_version"] = 2; })).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("format_version 2: this supermachined reads only 1"));
}

TEST(Metadata, RejectsMissingFormatVersion) {
  EXPECT_THAT(ParseMetadata(Edited([](nlohmann::json& j) { j.erase("format_version"); }))
                  .status()
                  .message(),
              HasSubstr("field 'format_version' is missing"));
}

TEST(Metadata, RejectsMissingBakeKey) {
  EXPECT_THAT(
      ParseMetadata(Edited([](nlohmann::json& j) { j.erase("bake_key"); })).status().message(),
      HasSubstr("field 'bake_key' is missing"));
}

TEST(Metadata, RejectsMissingNestedTiming) {
  EXPECT_THAT(ParseMetadata(Edited([](nlohmann::json& j) { j["timings"].erase("ready_ms"); }))
                  .status()
                  .message(),
              HasSubstr("field 'timings.ready_ms' is missing"));
}

TEST(Metadata, RejectsMissingHealthInsteadOfNull) {
  EXPECT_THAT(
      ParseMetadata(Edited([](nlohmann::json& j) { j.erase("health"); })).status().message(),
      HasSubstr("field 'health' is missing"));
}

TEST(Metadata, RejectsWrongType) {
  EXPECT_THAT(
      ParseMetadata(Edited([](nlohmann::json& j) { j["vcpus"] = "two"; })).status().message(),
      HasSubstr("field 'vcpus' must be a whole number"));
}

TEST(Metadata, RejectsNegativeMemory) {
  EXPECT_FALSE(ParseMetadata(Edited([](nlohmann::json& j) { j["memory_mib"] = -1; })).ok());
}

TEST(Metadata, RejectsBadDigest) {
  EXPECT_THAT(ParseMetadata(Edited([](nlohmann::json& j) { j["layers"][0] = "sha256:zz"; }))
                  .status()
                  .message(),
              HasSubstr("field 'layers'"));
}

TEST(Metadata, RejectsUnparsableReadiness) {
  EXPECT_THAT(
      ParseMetadata(Edited([](nlohmann::json& j) { j["readiness"] = "soon"; })).status().message(),
      HasSubstr("field 'readiness' readiness 'soon'"));
}

TEST(Metadata, RejectsEmptyArgv) {
  const std::string text =
      Edited([](nlohmann::json& j) { j["launch"]["argv"] = nlohmann::json::array(); });
  EXPECT_THAT(ParseMetadata(text).status().message(),
              HasSubstr("field 'launch.argv' is empty"));
}

TEST(Metadata, IgnoresUnknownFields) {
  absl::StatusOr<SnapshotMetadata> m =
      ParseMetadata(Edited([](nlohmann::json& j) { j["added_later"] = {{"x", 1}}; }));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, Full());
}

TEST(Metadata, RejectsNonJson) {
  EXPECT_THAT(ParseMetadata("{not json").status().message(), HasSubstr("not valid JSON"));
}

TEST(Metadata, RejectsNonObject) {
  EXPECT_THAT(ParseMetadata("[1]").status().message(), HasSubstr("not a JSON object"));
}

TEST(WriteMetadata, WritesReadableFileAndLeavesNoTemp) {
  test_support::TempDir dir;
  ASSERT_TRUE(WriteMetadata(dir.path(), Full()).ok());
  EXPECT_THAT(dir.List(), ElementsAre("metadata.json"));
  absl::StatusOr<SnapshotMetadata> back = ReadMetadata(dir.path());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Full());
}

TEST(WriteMetadata, ReplacesExistingFile) {
  test_support::TempDir dir;
  ASSERT_TRUE(WriteMetadata(dir.path(), Full()).ok());
  SnapshotMetadata m = Full();
  m.vcpus = 4;
  ASSERT_TRUE(WriteMetadata(dir.path(), m).ok());
  EXPECT_EQ(ReadMetadata(dir.path())->vcpus, 4u);
  EXPECT_THAT(dir.List(), ElementsAre("metadata.json"));
}

TEST(WriteMetadata, FileIsWorldReadable) {
  test_support::TempDir dir;
  ASSERT_TRUE(WriteMetadata(dir.path(), Full()).ok());
  struct stat st {};
  ASSERT_EQ(stat(dir.Join("metadata.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(WriteMetadata, FailsForMissingDirNamingIt) {
  test_support::TempDir dir;
  absl::Status st = WriteMetadata(dir.Join("nope"), Full());
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr(dir.Join("nope")));
}

TEST(ReadMetadata, MissingFileIsNotFound) {
  test_support::TempDir dir;
  EXPECT_EQ(ReadMetadata(dir.path()).status().code(), absl::StatusCode::kNotFound);
}

TEST(ReadMetadata, NamesTheFileOnParseError) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("metadata.json"), "{}");
  EXPECT_THAT(ReadMetadata(dir.path()).status().message(),
              HasSubstr(dir.Join("metadata.json") + ": metadata.json: field 'format_version'"));
}

TEST(ReadMetadata, RefusesOversizedFile) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("metadata.json"), std::string(kMaxMetadataBytes + 1, ' '));
  EXPECT_THAT(ReadMetadata(dir.path()).status().message(), HasSubstr("at most"));
}

}  // namespace
}  // namespace supermachine::bake
