// Tests daemon/bake/gc.cc against a temp store and state dir: what is live (referenced by a
// snapshot row and its metadata) stays, the rest goes, dry-run removes nothing, bytes add up.
#include "daemon/bake/gc.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "daemon/bake/metadata.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::supermachine::test_support::TempDir;

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

void WriteBytes(const std::string& path, size_t n) { std::ofstream(path) << std::string(n, 'x'); }

std::string Hex(char c) { return std::string(64, c); }

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string& d : {dir_.Join("snaps"), dir_.Join("deltas"), dir_.Join("layers"),
                                 dir_.Join("layers/layers")}) {
      ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
    }
    auto s = store::Store::Open(dir_.Join("store.db"), [] { return int64_t{1000}; });
    ASSERT_TRUE(s.ok()) << s.status();
    store_.emplace(std::move(*s));

    // Live: snapshot "web" on layer a, delta key e with 1 layer.
    live_layer_ = Layer('a');
    dead_layer_ = Layer('b');
    orphan_layer_ = dir_.Join("layers/layers/sha256_" + Hex('c') + ".sqfs");
    WriteBytes(orphan_layer_, 5000);
    ASSERT_TRUE(store_->PutLayer({.digest = "sha256:" + Hex('a'), .sqfs_path = live_layer_,
                                  .size_bytes = 4096}).ok());
    ASSERT_TRUE(store_->PutLayer({.digest = "sha256:" + Hex('b'), .sqfs_path = dead_layer_,
                                  .size_bytes = 4096}).ok());
    SnapshotMetadata md;
    md.name = "web";
    md.image = "web:1";
    md.image_digest = *image::Digest::Parse("sha256:" + Hex('d'));
    md.layers = {*image::Digest::Parse("sha256:" + Hex('a'))};
    md.cheap_key = md.bake_key = *image::Digest::Parse("sha256:" + Hex('f'));
    md.delta_key = *image::Digest::Parse("sha256:" + Hex('e'));
    md.kernel_digest = md.agent_digest = md.image_digest;
    md.launch.argv = {"/bin/httpd"};
    md.readiness = *ParseReadiness("parked");
    ASSERT_TRUE(store_->PutSnapshot({.name = "web", .bake_key = md.bake_key.ToString(),
                                     .path = dir_.Join("snaps/web"), .created_ms = 1,
                                     .metadata_json = SerializeMetadata(md),
                                     .layer_digests = {"sha256:" + Hex('a')}}).ok());
    live_delta_ = dir_.Join("deltas/" + Hex('e') + "-l1.sqfs");
    dead_delta_ = dir_.Join("deltas/" + Hex('9') + "-l1.sqfs");
    other_count_delta_ = dir_.Join("deltas/" + Hex('e') + "-l2.sqfs");
    WriteBytes(live_delta_, 100);
    WriteBytes(dead_delta_, 3000);
    WriteBytes(other_count_delta_, 100);
    ASSERT_EQ(::mkdir(dir_.Join("snaps/web").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(dir_.Join("snaps/.tmp-bake-1-2-3").c_str(), 0755), 0);
    WriteBytes(dir_.Join("snaps/.tmp-bake-1-2-3/memory"), 9000);
    ASSERT_EQ(::mkdir(dir_.Join("snaps/.old-bake-1-0").c_str(), 0755), 0);
  }

  std::string Layer(char c) {
    const std::string path = dir_.Join("layers/layers/sha256_" + Hex(c) + ".sqfs");
    WriteBytes(path, 4096);
    return path;
  }

  GcPlaces Places() {
    return {.snapshots_dirs = {dir_.Join("snaps")}, .deltas_dir = dir_.Join("deltas"),
            .layer_cache_dir = dir_.Join("layers")};
  }

  TempDir dir_;
  absl::Mutex mu_;
  std::optional<store::Store> store_;
  std::string live_layer_, dead_layer_, orphan_layer_, live_delta_, dead_delta_,
      other_count_delta_;
};

TEST_F(GcTest, RemovesUnreferencedLayersDeltasAndLeftoversOnly) {
  absl::StatusOr<GcReport> r = CollectGarbage(Places(), LockedStoreAccess(&*store_, &mu_), false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->errors.empty());
  // Kept.
  EXPECT_TRUE(Exists(live_layer_));
  EXPECT_TRUE(Exists(live_delta_));
  EXPECT_TRUE(Exists(dir_.Join("snaps/web")));
  EXPECT_TRUE(store_->GetSnapshot("web").ok());
  // Gone.
  EXPECT_FALSE(Exists(dead_layer_));
  EXPECT_FALSE(Exists(orphan_layer_));
  EXPECT_FALSE(Exists(dead_delta_));
  EXPECT_FALSE(Exists(other_count_delta_));
  EXPECT_FALSE(Exists(dir_.Join("snaps/.tmp-bake-1-2-3")));
  EXPECT_FALSE(Exists(dir_.Join("snaps/.old-bake-1-0")));
  auto unref = store_->UnreferencedLayers();
  ASSERT_TRUE(unref.ok());
  EXPECT_TRUE(unref->empty()) << "the dead layer's row stays";

  std::vector<std::string> kinds;
  uint64_t sum = 0;
  for (const GcItem& item : r->items) {
    kinds.push_back(item.kind + ":" + item.path.substr(item.path.rfind('/') + 1, 12));
    sum += item.bytes;
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{
                       "layer:sha256_bbbbb", "layer:sha256_ccccc", "delta:999999999999",
                       "delta:eeeeeeeeeeee", "leftover:.old-bake-1-", "leftover:.tmp-bake-1-"}));
  EXPECT_EQ(r->bytes_freed, sum);
  EXPECT_GE(r->bytes_freed, uint64_t{4096 + 5000 + 3000 + 9000});
}

TEST_F(GcTest, DryRunReportsTheSameAndRemovesNothing) {
  absl::StatusOr<GcReport> dry = CollectGarbage(Places(), LockedStoreAccess(&*store_, &mu_), true);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_TRUE(dry->dry_run);
  EXPECT_EQ(dry->items.size(), 6u);
  EXPECT_TRUE(Exists(dead_layer_));
  EXPECT_TRUE(Exists(dead_delta_));
  EXPECT_TRUE(Exists(dir_.Join("snaps/.tmp-bake-1-2-3/memory")));
  EXPECT_EQ(store_->UnreferencedLayers()->size(), 1u);

  absl::StatusOr<GcReport> real = CollectGarbage(Places(), LockedStoreAccess(&*store_, &mu_), false);
  ASSERT_TRUE(real.ok());
  EXPECT_EQ(real->bytes_freed, dry->bytes_freed);
  absl::StatusOr<GcReport> again = CollectGarbage(Places(), LockedStoreAccess(&*store_, &mu_), false);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->items.empty());
  EXPECT_EQ(again->bytes_freed, 0u);
}

TEST_F(GcTest, RemovingTheSnapshotMakesItsLayerAndDeltaGarbage) {
  ASSERT_TRUE(store_->RemoveSnapshot("web").ok());
  absl::StatusOr<GcReport> r = CollectGarbage(Places(), LockedStoreAccess(&*store_, &mu_), false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(Exists(live_layer_));
  EXPECT_FALSE(Exists(live_delta_));
}

}  // namespace
}  // namespace supermachine::bake
