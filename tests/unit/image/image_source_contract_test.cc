// File: image_source_contract_test.cc
// One contract for every local image source (oci-layout, oci-archive, docker-archive), after
// containerd's content testsuite: resolve verifies and narrows to the platform, FetchLayers
// commits every layer in order, and a second fetch reads nothing from the source.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/image/media_types.h"
#include "daemon/image/pull.h"
#include "tests/unit/image/testing/image_builder.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;

struct SourceFixture {
  SourceSpec spec;
  testing::BuiltImage image;
};

// Builds a two-layer host-platform image in the form `kind` reads.
SourceFixture Make(SourceKind kind, const testing::TempDir& dir) {
  const bool gzip = kind != SourceKind::kDockerArchive;  // docker save layers are plain tars
  testing::BuiltImage img = testing::BuildImage(
      HostPlatform(), {{{"bin/", ""}, {"bin/busybox", "ELF..."}}, {{"etc/", ""}, {"etc/hostname", "vm"}}},
      {"/bin/busybox", "sh"}, gzip);
  img.manifest.annotations["org.opencontainers.image.ref.name"] = "v1";
  SourceFixture f{.image = img};
  f.spec.kind = kind;
  if (kind == SourceKind::kDockerArchive) {
    f.spec.path = dir.Join("save.tar");
    testing::WriteFileOrDie(f.spec.path, testing::DockerArchive(img, "busybox:v1"));
    return f;
  }
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(img);
  layout.WriteIndex({img.manifest});
  f.spec.tag = "v1";
  if (kind == SourceKind::kOciLayout) {
    f.spec.path = dir.Join("layout");
  } else {
    f.spec.path = dir.Join("image.tar");
    testing::WriteFileOrDie(f.spec.path, testing::TarDirectory(dir.Join("layout")));
  }
  return f;
}

class ImageSourceContract : public ::testing::TestWithParam<SourceKind> {
 protected:
  ImageSourceContract() : store_(*BlobStore::Open(dir_.Join("cache"))), f_(Make(GetParam(), dir_)) {}
  PullContext Ctx() { return PullContext{.store = &store_, .platform = HostPlatform()}; }

  testing::TempDir dir_;
  BlobStore store_;
  SourceFixture f_;
};

TEST_P(ImageSourceContract, ResolveGivesConfigAndOrderedLayers) {
  auto source = OpenImageSource(f_.spec, Ctx());
  ASSERT_TRUE(source.ok()) << source.status();
  auto image = (*source)->Resolve();
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->layers.size(), 2u);
  EXPECT_EQ(image->config.diff_ids.size(), 2u);
  EXPECT_THAT(image->config.cmd.value(), ::testing::ElementsAre("/bin/busybox", "sh"));
  EXPECT_EQ(image->layers[0].size, static_cast<int64_t>(f_.image.layer_blobs[0].size()));
}

TEST_P(ImageSourceContract, FetchLayersCommitsEveryLayerInOrder) {
  auto pulled = PullImage(f_.spec, Ctx());
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_EQ(pulled->layer_paths.size(), 2u);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[0]), f_.image.layer_blobs[0]);
  EXPECT_EQ(testing::ReadFileOrDie(pulled->layer_paths[1]), f_.image.layer_blobs[1]);
  EXPECT_EQ(pulled->layers_fetched, 2);
}

TEST_P(ImageSourceContract, SecondPullReadsNoLayerFromTheSource) {
  ASSERT_TRUE(PullImage(f_.spec, Ctx()).ok());
  auto again = PullImage(f_.spec, Ctx());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->layers_cached, 2);
  EXPECT_EQ(again->layers_fetched, 0);
}

TEST_P(ImageSourceContract, ResolveIsStable) {
  auto a = PullImage(f_.spec, Ctx());
  auto b = PullImage(f_.spec, Ctx());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->image.manifest_digest, b->image.manifest_digest);
}

INSTANTIATE_TEST_SUITE_P(AllLocalSources, ImageSourceContract,
                         ::testing::Values(SourceKind::kOciLayout, SourceKind::kOciArchive,
                                           SourceKind::kDockerArchive),
                         [](const ::testing::TestParamInfo<SourceKind>& info) {
                           switch (info.param) {
                             case SourceKind::kOciLayout: return std::string("OciLayout");
                             case SourceKind::kOciArchive: return std::string("OciArchive");
                             case SourceKind::kDockerArchive: return std::string("DockerArchive");
                             default: return std::string("Registry");
                           }
                         });

// ---- source-specific behaviour ----

TEST(OciLayoutSource, MultiArchIndexResolvesToHostPlatform) {
  testing::TempDir dir;
  auto host = testing::BuildImage(HostPlatform(), {{{"a", "host"}}}, {"/a"});
  auto other = testing::BuildImage(Platform{.os = "linux", .architecture = "s390x"}, {{{"a", "s390x"}}}, {"/a"});
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(host);
  layout.PutImage(other);
  const std::string index = testing::IndexJson({other.manifest, host.manifest});
  layout.PutBlob(index);
  Descriptor entry = testing::Describe(index, media_types::kOciIndex);
  entry.annotations["org.opencontainers.image.ref.name"] = "latest";
  layout.WriteIndex({entry});
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("layout") + ":latest"),
                          PullContext{.store = &store});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->image.manifest_digest, host.manifest.digest);
}

TEST(OciLayoutSource, UnknownTagListsTheTagsPresent) {
  testing::TempDir dir;
  auto img = testing::BuildImage(HostPlatform(), {{{"a", "1"}}}, {"/a"});
  img.manifest.annotations["org.opencontainers.image.ref.name"] = "v1";
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(img);
  layout.WriteIndex({img.manifest});
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("layout") + ":v2"), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("no image tagged 'v2'; tags present: v1"));
}

TEST(OciLayoutSource, CorruptLayerBlobIsDataLossAndNotCached) {
  testing::TempDir dir;
  auto img = testing::BuildImage(HostPlatform(), {{{"a", "1"}}}, {"/a"});
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(img);
  layout.WriteIndex({img.manifest});
  std::string bad = img.layer_blobs[0];
  bad[bad.size() / 2] ^= 1;
  testing::WriteFileOrDie(dir.Join("layout/blobs/sha256/" + img.layers[0].digest.hex()), bad);
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("layout")), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store.Contains(img.layers[0].digest));
}

TEST(OciLayoutSource, MissingDirectoryIsNotFound) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("nope")), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("not an OCI image layout"));
}

TEST(OciLayoutSource, ForeignSinglePlatformImageIsRefused) {
  testing::TempDir dir;
  auto img = testing::BuildImage(Platform{.os = "linux", .architecture = "s390x"}, {{{"a", "1"}}}, {"/a"});
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(img);
  layout.WriteIndex({img.manifest});
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("layout")), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("image is for linux/s390x"));
}

TEST(OciLayoutSource, ArtifactWithNonImageConfigIsRefused) {
  testing::TempDir dir;
  auto img = testing::BuildImage(HostPlatform(), {{{"a", "1"}}}, {"/a"});
  img.config.media_type = "application/vnd.cncf.helm.config.v1+json";
  img.manifest_json = testing::ManifestJson(img.config, img.layers);
  img.manifest = testing::Describe(img.manifest_json, media_types::kOciManifest);
  testing::LayoutWriter layout(dir.Join("layout"));
  layout.PutImage(img);
  layout.WriteIndex({img.manifest});
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-layout:" + dir.Join("layout")), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("not a container image"));
}

TEST(DockerArchiveSource, LayerNotMatchingDiffIdIsDataLoss) {
  testing::TempDir dir;
  auto img = testing::BuildImage(HostPlatform(), {{{"a", "1"}}}, {"/a"}, /*gzip=*/false);
  img.layer_blobs[0][img.layer_blobs[0].size() / 2] ^= 1;  // config still names the original
  testing::WriteFileOrDie(dir.Join("save.tar"), testing::DockerArchive(img, "x:1"));
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("docker-archive:" + dir.Join("save.tar")), PullContext{.store = &store});
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(testing::ListDir(dir.Join("cache/blobs/sha256")), ::testing::IsEmpty());
}

TEST(DockerArchiveSource, NotADockerSaveArchive) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Join("x.tar"), testing::MakeTar({{"hello", "world"}}));
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("docker-archive:" + dir.Join("x.tar")), PullContext{.store = &store});
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("missing manifest.json"));
}

TEST(OciArchiveSource, GarbageFileIsAClearError) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Join("x.tar"), std::string(1000, '\x7f'));
  auto store = *BlobStore::Open(dir.Join("cache"));
  auto pulled = PullImage(*ParseSourceSpec("oci-archive:" + dir.Join("x.tar")), PullContext{.store = &store});
  EXPECT_FALSE(pulled.ok());
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("oci-archive:"));
}

TEST(PullPolicy, ParsesTheThreeNames) {
  EXPECT_EQ(*ParsePullPolicy("always"), PullPolicy::kAlways);
  EXPECT_EQ(*ParsePullPolicy("missing"), PullPolicy::kMissing);
  EXPECT_EQ(*ParsePullPolicy("never"), PullPolicy::kNever);
  EXPECT_THAT(std::string(ParsePullPolicy("sometimes").status().message()), HasSubstr("want always, missing or never"));
}

}  // namespace
}  // namespace supermachine::image
