// File: token_cache_test.cc
// Bearer token expiry with the safety margin, on an injected clock.
#include "daemon/image/token_cache.h"

#include <gtest/gtest.h>

#include "tests/unit/image/testing/fake_clock.h"

namespace supermachine::image {
namespace {

TEST(TokenCache, ReturnsTokenBeforeExpiry) {
  testing::FakeClock clock;
  TokenCache cache(&clock);
  cache.Put("k", "tok", absl::Seconds(300));
  clock.Advance(absl::Seconds(200));
  EXPECT_EQ(cache.Get("k"), "tok");
}

TEST(TokenCache, ExpiresWithSafetyMargin) {
  testing::FakeClock clock;
  TokenCache cache(&clock);
  cache.Put("k", "tok", absl::Seconds(300));
  clock.Advance(absl::Seconds(296));
  EXPECT_FALSE(cache.Get("k").has_value());
}

TEST(TokenCache, DefaultLifetimeWhenNoExpiresIn) {
  testing::FakeClock clock;
  TokenCache cache(&clock);
  cache.Put("k", "tok", absl::ZeroDuration());
  clock.Advance(absl::Seconds(50));
  EXPECT_EQ(cache.Get("k"), "tok");
  clock.Advance(absl::Seconds(10));
  EXPECT_FALSE(cache.Get("k").has_value());
}

TEST(TokenCache, IssuedAtInThePastShortensLife) {
  testing::FakeClock clock;
  TokenCache cache(&clock);
  cache.Put("k", "tok", absl::Seconds(60), clock.Now() - absl::Seconds(58));
  EXPECT_FALSE(cache.Get("k").has_value());
}

TEST(TokenCache, KeysAreSeparate) {
  testing::FakeClock clock;
  TokenCache cache(&clock);
  cache.Put("a", "tok", absl::Seconds(300));
  EXPECT_FALSE(cache.Get("b").has_value());
}

}  // namespace
}  // namespace supermachine::image
