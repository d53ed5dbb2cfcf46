// File: cache_faults_test.cc
// Faults under the image → layer pipeline the daemon runs for a bake (bake::MakeImageFetcher:
// registry pull into the blob store, then squashfs conversion into the layer cache), without a
// guest: a disk that fills up (a size-limited tmpfs in a private mount namespace), a registry
// that drops the connection mid-blob (FakeRegistry), and cache files corrupted on disk. After
// each fault: a clear error naming the cause, every remaining cache entry re-verified, no temp
// files, and the next run (with the fault gone) succeeds. docs/faults.md lists what each proves.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/bake/image_fetcher.h"
#include "daemon/layer/squashfs_reader.h"
#include "tests/faults/cache_check.h"
#include "tests/faults/private_tmpfs.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/image/testing/fake_registry.h"
#include "tests/unit/image/testing/image_builder.h"

namespace supermachine::faults {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using test_support::TempDir;

// Incompressible, so the gzip layer and the squashfs are both about this big.
constexpr size_t kBigFileBytes = size_t{1536} * 1024;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) {
    c = static_cast<char>(gen() & 0xff);
  }
  return out;
}

class CacheFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    big_ = RandomBytes(kBigFileBytes, 7);
    image_ = image::testing::BuildImage(
        image::HostPlatform(),
        {{{"bin/", ""}, {"bin/big", big_}, {"etc/hello", "hi\n"}}, {{"etc/two", "2\n"}}},
        {"/bin/big"});
    registry_.AddImage("faults/app", "1", image_);
    ref_ = registry_.host() + "/faults/app:1";
    images_dir_ = tmp_.Join("images");
    layers_dir_ = tmp_.Join("layers");
  }

  // What the daemon's bake does before it boots anything: pull, then convert every layer.
  absl::StatusOr<bake::ResolvedLayers> Fetch() {
    absl::StatusOr<std::shared_ptr<bake::ImageFetcher>> fetcher = bake::MakeImageFetcher(
        {.image_cache_dir = images_dir_, .layer_cache_dir = layers_dir_,
         .insecure_registries = {registry_.host()}});
    if (!fetcher.ok()) {
      return fetcher.status();
    }
    return (*fetcher)->Fetch({.image = ref_}, nullptr);
  }

  std::string BlobPath(const image::Digest& d) const {
    return images_dir_ + "/blobs/sha256/" + d.hex();
  }
  std::string SqfsPath(const image::Digest& d) const {
    return layers_dir_ + "/layers/sha256_" + d.hex() + ".sqfs";
  }

  // The pipeline's result is the image we pushed: the big file reads back byte for byte.
  void ExpectGoodResult(const absl::StatusOr<bake::ResolvedLayers>& got) {
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->sqfs_paths.size(), 2u);
    absl::StatusOr<layer::FileTree> tree =
        layer::ReadSquashfsTree(got->sqfs_paths[0], {.max_content_bytes = 4 << 20});
    ASSERT_TRUE(tree.ok()) << tree.status();
    auto big = tree->find("/bin/big");
    ASSERT_NE(big, tree->end());
    EXPECT_TRUE(big->second.content == big_) << "bin/big differs after the retry";
    ExpectCachesClean();
  }

  void ExpectCachesClean() {
    EXPECT_THAT(AuditBlobStore(images_dir_), IsEmpty());
    EXPECT_THAT(AuditLayerCache(layers_dir_), IsEmpty());
  }

  TempDir tmp_;
  image::testing::FakeRegistry registry_;
  image::testing::BuiltImage image_;
  std::string big_;
  std::string ref_;
  std::string images_dir_;
  std::string layers_dir_;
};

// ---- 1. disk full ----

TEST_F(CacheFaults, DiskFullDuringPullFailsNamingItKeepsNoPartialBlobAndRetrySucceeds) {
  // Room for the manifest and config, not for the 1.5 MiB layer.
  absl::StatusOr<std::unique_ptr<PrivateTmpfs>> disk = PrivateTmpfs::Mount(images_dir_, 512 << 10);
  ASSERT_TRUE(disk.ok()) << disk.status();

  absl::StatusOr<bake::ResolvedLayers> got = Fetch();
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().ToString(), HasSubstr("No space left on device"));
  EXPECT_FALSE(fs::exists(BlobPath(image_.layers[0].digest)));
  ExpectCachesClean();

  ASSERT_TRUE((*disk)->Resize(64 << 20).ok());
  ExpectGoodResult(Fetch());
}

TEST_F(CacheFaults, DiskFullDuringConversionFailsNamingItKeepsNoPartialLayerAndRetrySucceeds) {
  absl::StatusOr<std::unique_ptr<PrivateTmpfs>> disk = PrivateTmpfs::Mount(layers_dir_, 512 << 10);
  ASSERT_TRUE(disk.ok()) << disk.status();

  absl::StatusOr<bake::ResolvedLayers> got = Fetch();
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().ToString(), HasSubstr("No space left on device"));
  EXPECT_FALSE(fs::exists(SqfsPath(image_.layers[0].digest)));
  ExpectCachesClean();

  ASSERT_TRUE((*disk)->Resize(64 << 20).ok());
  ExpectGoodResult(Fetch());
}

// ---- 3. registry drops the connection mid-blob ----

TEST_F(CacheFaults, ConnectionDroppedMidBlobEveryTimeFailsClearlyKeepsNothingAndRetrySucceeds) {
  registry_.knobs().truncate_blobs = true;  // half of every blob, then close
  absl::StatusOr<bake::ResolvedLayers> got = Fetch();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_THAT(got.status().ToString(), HasSubstr("gave up after"));
  // Manifest blobs go through the same ingest; nothing of the config or layers is kept.
  EXPECT_FALSE(fs::exists(BlobPath(image_.layers[0].digest)));
  EXPECT_FALSE(fs::exists(BlobPath(image_.config.digest)));
  ExpectCachesClean();

  registry_.knobs().truncate_blobs = false;
  ExpectGoodResult(Fetch());
}

TEST_F(CacheFaults, OneDroppedConnectionMidBlobIsRetriedWithinThePull) {
  registry_.knobs().truncate_first_blob_gets = 1;
  ExpectGoodResult(Fetch());
}

// ---- 2. cache files corrupted on disk ----

void FlipByteAt(const std::string& path, off_t where) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(where);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(where);
  f.write(&c, 1);
}

off_t SizeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// A corrupted blob whose layer must be (re)converted: the pipeline must not convert bad bytes.
class CorruptBlob : public CacheFaults, public ::testing::WithParamInterface<const char*> {};

TEST_P(CorruptBlob, IsDetectedAndRefetched) {
  ASSERT_TRUE(Fetch().ok());
  const std::string blob = BlobPath(image_.layers[0].digest);
  fs::remove(SqfsPath(image_.layers[0].digest));  // the next bake has to read the blob again
  const std::string how = GetParam();
  if (how == "flip") {
    FlipByteAt(blob, SizeOf(blob) / 2);
  } else if (how == "truncate") {
    ASSERT_EQ(::truncate(blob.c_str(), SizeOf(blob) / 2), 0);
  } else {
    fs::remove(blob);
    fs::create_directory(blob);
  }
  ExpectGoodResult(Fetch());
}

INSTANTIATE_TEST_SUITE_P(CacheFaults, CorruptBlob,
                         ::testing::Values("flip", "truncate", "directory"));

TEST_F(CacheFaults, CorruptCachedConfigIsRefusedNamingTheFileAndTheFix) {
  ASSERT_TRUE(Fetch().ok());
  const std::string config = BlobPath(image_.config.digest);
  FlipByteAt(config, 3);
  // The ref cache points at the cached manifest: the next bake reads the config from disk.
  absl::StatusOr<bake::ResolvedLayers> got = Fetch();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_THAT(got.status().ToString(), HasSubstr(config));
  EXPECT_THAT(got.status().ToString(), HasSubstr("remove it and pull again"));
  fs::remove(config);
  ExpectGoodResult(Fetch());
}

class CorruptLayer : public CacheFaults, public ::testing::WithParamInterface<const char*> {};

TEST_P(CorruptLayer, IsDetectedAndReconverted) {
  ASSERT_TRUE(Fetch().ok());
  const std::string sqfs = SqfsPath(image_.layers[0].digest);
  const std::string how = GetParam();
  if (how == "flip-super") {
    FlipByteAt(sqfs, 1);  // the magic
  } else if (how == "flip-data") {
    FlipByteAt(sqfs, SizeOf(sqfs) / 2);  // a data block: the super block still reads
  } else if (how == "truncate") {
    ASSERT_EQ(::truncate(sqfs.c_str(), SizeOf(sqfs) / 2), 0);
  } else {
    fs::remove(sqfs);
    fs::create_directory(sqfs);
  }
  ExpectGoodResult(Fetch());
}

INSTANTIATE_TEST_SUITE_P(CacheFaults, CorruptLayer,
                         ::testing::Values("flip-super", "flip-data", "truncate", "directory"));

}  // namespace
}  // namespace supermachine::faults
