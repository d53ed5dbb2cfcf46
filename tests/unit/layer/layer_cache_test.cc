// File: layer_cache_test.cc
// LayerCache: a miss converts and records a checksum, a hit does not convert, a damaged entry
// (anywhere in the file) is converted again, one digest converts once under concurrency, and
// the per-image index round-trips.
#include "daemon/layer/layer_cache.h"

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/layer/tar_builder.h"

namespace supermachine::layer {
namespace {

using ::supermachine::layer::testing::File;
using ::supermachine::layer::testing::TempDir;
using ::testing::HasSubstr;

const std::string kDigest =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const std::string kOtherDigest =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

class LayerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::WriteTar(blobs_.Join("blob.tar"), {File("hello", "world")}).ok());
    auto cache = LayerCache::Open(root_.Join("cache"));
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_.emplace(std::move(*cache));
  }
  TempDir blobs_;
  TempDir root_;
  std::optional<LayerCache> cache_;
};

TEST_F(LayerCacheTest, MissConvertsIntoLayersDir) {
  auto layer = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_FALSE(layer->cache_hit);
  EXPECT_EQ(layer->path, cache_->dir() + "/layers/sha256_" + std::string(64, '1') + ".sqfs");
  EXPECT_EQ(layer->stats.entries, 1u);
  struct stat st;
  EXPECT_EQ(::stat(layer->path.c_str(), &st), 0);
}

TEST_F(LayerCacheTest, HitDoesNotConvertAgain) {
  ASSERT_TRUE(cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {}).ok());
  // The blob is gone: only a hit can succeed.
  ASSERT_EQ(::unlink(blobs_.Join("blob.tar").c_str()), 0);
  auto again = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->cache_hit);
  EXPECT_EQ(again->stats.entries, 0u);
}

TEST_F(LayerCacheTest, CorruptCachedFileIsReconverted) {
  auto path = cache_->LayerPath(kDigest);
  ASSERT_TRUE(path.ok());
  testing::WriteFileOrDie(*path, "garbage");
  auto layer = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_FALSE(layer->cache_hit);
}

// Reads a whole file.
std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(LayerCacheTest, MissRecordsTheChecksumOfTheImage) {
  auto layer = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(layer.ok()) << layer.status();
  const std::string sum = Slurp(LayerCache::ChecksumPathOf(layer->path));
  ASSERT_EQ(sum.size(), 65u) << sum;  // 64 hex digits and a newline
  EXPECT_EQ(sum.find_first_not_of("0123456789abcdef"), 64u);
}

// A flipped byte past the super block (in the data/inode area) leaves the image readable
// enough for the super block check; only the checksum notices it.
TEST_F(LayerCacheTest, FlippedByteInsideTheImageIsReconvertedToTheSameBytes) {
  auto first = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string good = Slurp(first->path);
  ASSERT_GT(good.size(), 200u);
  std::string bad = good;
  bad[120] = static_cast<char>(bad[120] ^ 0x40);  // past the 96-byte super block
  testing::WriteFileOrDie(first->path, bad);
  auto again = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->cache_hit);
  EXPECT_EQ(Slurp(again->path), good);
  auto third = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(third->cache_hit);
}

// An entry without a checksum (a cache written before checksums, or a crash between the
// image's rename and its checksum's) is converted again once, then hits.
TEST_F(LayerCacheTest, EntryWithoutChecksumIsReconvertedOnce) {
  auto first = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(::unlink(LayerCache::ChecksumPathOf(first->path).c_str()), 0);
  auto again = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->cache_hit);
  auto third = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(third->cache_hit);
}

TEST_F(LayerCacheTest, ConcurrentRequestsForOneDigestConvertOnce) {
  constexpr int kThreads = 6;
  std::atomic<int> conversions{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto layer = cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {});
      if (!layer.ok()) {
        ++failures;
      } else if (!layer->cache_hit) {
        ++conversions;
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(conversions.load(), 1);
}

TEST_F(LayerCacheTest, ConversionErrorNamesTheDigest) {
  ASSERT_TRUE(testing::WriteTar(blobs_.Join("bad.tar"), {File("../x", "")}).ok());
  auto layer = cache_->GetOrConvert(kOtherDigest, blobs_.Join("bad.tar"), {});
  EXPECT_EQ(layer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(layer.status().message(), HasSubstr("layer " + kOtherDigest + ": entry '../x'"));
  auto path = cache_->LayerPath(kOtherDigest);
  ASSERT_TRUE(path.ok());
  struct stat st;
  EXPECT_NE(::stat(path->c_str(), &st), 0);
}

TEST_F(LayerCacheTest, RejectsMalformedDigest) {
  EXPECT_EQ(cache_->LayerPath("sha256:../../etc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_->LayerPath("md5:abcd").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache_->LayerPath("sha256:" + std::string(64, 'A')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LayerCacheTest, ImageIndexRoundTripsLayersInOrder) {
  ASSERT_TRUE(cache_->GetOrConvert(kDigest, blobs_.Join("blob.tar"), {}).ok());
  ASSERT_TRUE(cache_->GetOrConvert(kOtherDigest, blobs_.Join("blob.tar"), {}).ok());
  ASSERT_TRUE(cache_->WriteImageIndex("sha256:" + std::string(64, 'c'), {kOtherDigest, kDigest})
                  .ok());
  auto index = cache_->ReadImageIndex("sha256:" + std::string(64, 'c'));
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_EQ(index->layers.size(), 2u);
  EXPECT_EQ(index->layers[0].digest, kOtherDigest);
  EXPECT_EQ(index->layers[1].digest, kDigest);
  EXPECT_EQ(index->layers[1].path, *cache_->LayerPath(kDigest));
}

TEST_F(LayerCacheTest, ImageIndexRefusesUncachedLayer) {
  absl::Status st = cache_->WriteImageIndex("myimage", {kDigest});
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("is not in the layer cache"));
}

TEST_F(LayerCacheTest, ImageIndexRejectsPathLikeIds) {
  EXPECT_EQ(cache_->WriteImageIndex("../evil", {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LayerCacheTest, MissingImageIndexIsNotFound) {
  EXPECT_EQ(cache_->ReadImageIndex("nothing").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace supermachine::layer
