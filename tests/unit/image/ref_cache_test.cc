// File: ref_cache_test.cc
// Ref → digest cache: TTL with an injected clock, ignore-TTL for `never`, corrupt entries.
#include "daemon/image/ref_cache.h"

#include <gtest/gtest.h>

#include "tests/unit/image/testing/fake_clock.h"
#include "tests/unit/image/testing/temp_dir.h"

namespace supermachine::image {
namespace {

TEST(RefCache, HitWithinTtl) {
  testing::TempDir dir;
  testing::FakeClock clock;
  RefCache cache(dir.path(), &clock, absl::Seconds(60));
  ASSERT_TRUE(cache.Store("r/x:1", Sha256Of("m")).ok());
  clock.Advance(absl::Seconds(59));
  auto e = cache.Lookup("r/x:1", false);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->digest, Sha256Of("m"));
}

TEST(RefCache, MissAfterTtl) {
  testing::TempDir dir;
  testing::FakeClock clock;
  RefCache cache(dir.path(), &clock, absl::Seconds(60));
  ASSERT_TRUE(cache.Store("r/x:1", Sha256Of("m")).ok());
  clock.Advance(absl::Seconds(61));
  EXPECT_FALSE(cache.Lookup("r/x:1", false).has_value());
}

TEST(RefCache, IgnoreTtlReturnsStaleEntry) {
  testing::TempDir dir;
  testing::FakeClock clock;
  RefCache cache(dir.path(), &clock, absl::Seconds(60));
  ASSERT_TRUE(cache.Store("r/x:1", Sha256Of("m")).ok());
  clock.Advance(absl::Hours(24));
  EXPECT_TRUE(cache.Lookup("r/x:1", true).has_value());
}

TEST(RefCache, ZeroTtlDisablesHits) {
  testing::TempDir dir;
  testing::FakeClock clock;
  RefCache cache(dir.path(), &clock, absl::ZeroDuration());
  ASSERT_TRUE(cache.Store("r/x:1", Sha256Of("m")).ok());
  EXPECT_FALSE(cache.Lookup("r/x:1", false).has_value());
}

TEST(RefCache, CorruptEntryIsAMiss) {
  testing::TempDir dir;
  testing::FakeClock clock;
  RefCache cache(dir.path(), &clock, absl::Seconds(60));
  ASSERT_TRUE(cache.Store("r/x:1", Sha256Of("m")).ok());
  testing::WriteFileOrDie(dir.Join(Sha256Of("r/x:1").hex() + ".json"), "{not json");
  EXPECT_FALSE(cache.Lookup("r/x:1", false).has_value());
}

TEST(RefCache, TtlFromEnvValue) {
  EXPECT_EQ(RefCacheTtlFromEnv(""), absl::Seconds(60));
  EXPECT_EQ(RefCacheTtlFromEnv("1500"), absl::Milliseconds(1500));
  EXPECT_EQ(RefCacheTtlFromEnv("0"), absl::ZeroDuration());
  EXPECT_EQ(RefCacheTtlFromEnv("soon"), absl::Seconds(60));
}

}  // namespace
}  // namespace supermachine::image
