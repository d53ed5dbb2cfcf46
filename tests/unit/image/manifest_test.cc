// File: manifest_test.cc
// Manifest / index parsing for all four media types, schema 1 refusal, platform selection.
#include "daemon/image/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/image/media_types.h"

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;

constexpr char kA[] = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kB[] = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
constexpr char kC[] = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

std::string OciManifest() {
  return std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")") + kA + R"(","size":100},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + kB + R"(","size":2000},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + kC + R"(","size":30}]})";
}

std::string DockerManifestList() {
  return std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests":[
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")") + kA + R"(","size":1,
       "platform":{"os":"linux","architecture":"amd64"}},
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" + kB + R"(","size":2,
       "platform":{"os":"linux","architecture":"arm","variant":"v7"}},
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" + kC + R"(","size":3,
       "platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]})";
}

TEST(Manifest, ParsesOciManifestLayersInOrder) {
  auto doc = ParseManifestDocument(OciManifest());
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& m = std::get<ImageManifest>(*doc);
  EXPECT_EQ(m.media_type, media_types::kOciManifest);
  EXPECT_EQ(m.config.digest.ToString(), kA);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].digest.ToString(), kB);
  EXPECT_EQ(m.layers[0].size, 2000);
  EXPECT_EQ(m.layers[1].media_type, media_types::kOciLayerZstd);
}

TEST(Manifest, ParsesDockerSchema2Manifest) {
  const std::string json = std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")") + kA + R"(","size":7},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" + kB + R"(","size":9}]})";
  auto doc = ParseManifestDocument(json);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(std::get<ImageManifest>(*doc).media_type, media_types::kDockerManifest);
}

TEST(Manifest, ParsesDockerManifestList) {
  auto doc = ParseManifestDocument(DockerManifestList());
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& index = std::get<ImageIndex>(*doc);
  EXPECT_EQ(index.media_type, media_types::kDockerManifestList);
  ASSERT_EQ(index.manifests.size(), 3u);
  EXPECT_EQ(index.manifests[1].platform->variant, "v7");
}

TEST(Manifest, OciIndexWithoutMediaTypeIsRecognisedByShape) {
  const std::string json = std::string(R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")") +
                           kA + R"(","size":5,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]})";
  auto doc = ParseManifestDocument(json);
  ASSERT_TRUE(doc.ok()) << doc.status();
  const auto& index = std::get<ImageIndex>(*doc);
  EXPECT_EQ(index.media_type, media_types::kOciIndex);
  EXPECT_EQ(index.manifests[0].annotations.at("org.opencontainers.image.ref.name"), "v1");
}

TEST(Manifest, ContentTypeDecidesWhenTheDocumentHasNoMediaType) {
  const std::string json = std::string(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")") + kA +
                           R"(","size":1},"layers":[]})";
  auto doc = ParseManifestDocument(json, "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(std::get<ImageManifest>(*doc).media_type, media_types::kDockerManifest);
}

TEST(Manifest, RejectsSchema1WithAdvice) {
  auto doc = ParseManifestDocument(R"({"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]})");
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("schema 1"));
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("re-push"));
}

TEST(Manifest, RejectsMalformedJson) {
  auto doc = ParseManifestDocument("{\"schemaVersion\":2,");
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("malformed JSON"));
}

TEST(Manifest, RejectsBadLayerDigestNamingTheLayer) {
  const std::string json = std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"x","digest":")") + kA + R"(","size":1},
    "layers":[{"mediaType":"y","digest":"sha256:nothex","size":1}]})";
  auto doc = ParseManifestDocument(json);
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("image manifest layer 0"));
}

TEST(Manifest, RejectsNegativeSize) {
  const std::string json = std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"x","digest":")") + kA + R"(","size":-1},"layers":[]})";
  auto doc = ParseManifestDocument(json);
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("negative size"));
}

TEST(Manifest, RejectsUnknownMediaType) {
  auto doc = ParseManifestDocument(R"({"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"})");
  EXPECT_THAT(std::string(doc.status().message()), HasSubstr("unsupported media type"));
}

TEST(PlatformSelection, PicksAmd64) {
  auto index = std::get<ImageIndex>(*ParseManifestDocument(DockerManifestList()));
  auto d = SelectPlatform(index, Platform{.os = "linux", .architecture = "amd64"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest.ToString(), kA);
}

TEST(PlatformSelection, PicksArm64V8) {
  auto index = std::get<ImageIndex>(*ParseManifestDocument(DockerManifestList()));
  auto d = SelectPlatform(index, Platform{.os = "linux", .architecture = "arm64", .variant = "v8"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest.ToString(), kC);
}

TEST(PlatformSelection, Arm64WithoutVariantMatchesV8Host) {
  ImageIndex index{.manifests = {Descriptor{.media_type = media_types::kOciManifest,
                                            .digest = *Digest::Parse(kB),
                                            .platform = Platform{.os = "linux", .architecture = "arm64"}}}};
  auto d = SelectPlatform(index, Platform{.os = "linux", .architecture = "arm64", .variant = "v8"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest.ToString(), kB);
}

TEST(PlatformSelection, NoMatchListsWhatIsAvailable) {
  auto index = std::get<ImageIndex>(*ParseManifestDocument(DockerManifestList()));
  auto d = SelectPlatform(index, Platform{.os = "linux", .architecture = "riscv64"});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("no manifest for linux/riscv64 in the image index; available: linux/amd64, linux/arm/v7, linux/arm64/v8"));
}

TEST(PlatformSelection, NeverPicksAttestationEntries) {
  ImageIndex index{.manifests = {Descriptor{.media_type = media_types::kOciManifest,
                                            .digest = *Digest::Parse(kB),
                                            .platform = Platform{.os = "unknown", .architecture = "unknown"}}}};
  auto d = SelectPlatform(index, Platform{.os = "linux", .architecture = "amd64"});
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("available: none"));
}

TEST(PlatformSelection, HostPlatformIsLinux) {
  EXPECT_EQ(HostPlatform().os, "linux");
}

}  // namespace
}  // namespace supermachine::image
