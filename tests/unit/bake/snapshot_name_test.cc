// File: snapshot_name_test.cc
// The default snapshot name reproduces upstream's sanitized_snapshot_name; names are checked.
#include "daemon/bake/snapshot_name.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::bake {
namespace {

using ::testing::HasSubstr;

TEST(DefaultSnapshotName, ReplacesColon) { EXPECT_EQ(DefaultSnapshotName("redis:7"), "redis_7"); }

TEST(DefaultSnapshotName, ReplacesSlashesAndDots) {
  EXPECT_EQ(DefaultSnapshotName("ghcr.io/acme/web:1.2"), "ghcr_io_acme_web_1_2");
}

TEST(DefaultSnapshotName, KeepsOtherCharactersAsUpstream) {
  EXPECT_EQ(DefaultSnapshotName("Redis@sha256:ab"), "Redis@sha256_ab");
}

TEST(DefaultSnapshotName, DoesNotNormaliseTheRef) {
  EXPECT_EQ(DefaultSnapshotName("docker.io/library/redis"), "docker_io_library_redis");
}

TEST(DefaultSnapshotName, KeepsLocalSourcePrefix) {
  EXPECT_EQ(DefaultSnapshotName("oci-layout:/srv/img:v1"), "oci-layout__srv_img_v1");
}

TEST(DefaultSnapshotName, CutsToSixtyCharacters) {
  const std::string image = "registry.example.com/" + std::string(80, 'a');
  const std::string name = DefaultSnapshotName(image);
  EXPECT_EQ(name.size(), 60u);
  EXPECT_EQ(name, "registry_example_com_" + std::string(39, 'a'));
}

TEST(DefaultSnapshotName, CountsCodePointsNotBytes) {
  // 59 ASCII characters, then "é" (2 bytes), then more: the cut keeps "é" whole.
  const std::string image = std::string(59, 'a') + "\xC3\xA9" + "zzz";
  EXPECT_EQ(DefaultSnapshotName(image), std::string(59, 'a') + "\xC3\xA9");
}

TEST(CheckSnapshotName, AcceptsDerivedName) { EXPECT_TRUE(CheckSnapshotName("redis_7").ok()); }

TEST(CheckSnapshotName, RejectsEmpty) {
  EXPECT_THAT(CheckSnapshotName("").message(), HasSubstr("empty"));
}

TEST(CheckSnapshotName, RejectsSlash) {
  EXPECT_THAT(CheckSnapshotName("a/b").message(), HasSubstr("must not contain '/'"));
}

TEST(CheckSnapshotName, RejectsDotDot) {
  EXPECT_THAT(CheckSnapshotName("..").message(), HasSubstr("must not start with '.'"));
}

TEST(CheckSnapshotName, RejectsOverlongName) {
  EXPECT_THAT(CheckSnapshotName(std::string(256, 'a')).message(),
              HasSubstr("256 bytes; the limit is 255"));
}

}  // namespace
}  // namespace supermachine::bake
