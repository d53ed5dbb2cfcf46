// File: www_authenticate_test.cc
// WWW-Authenticate parsing: Bearer/Basic, quoting, several challenges, errors.
#include "daemon/image/www_authenticate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

TEST(WwwAuthenticate, ParsesDockerHubBearerChallenge) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull")");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].Param("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].Param("scope"), "repository:library/redis:pull");
}

TEST(WwwAuthenticate, QuotedScopeMayContainCommas) {
  auto c = ParseWwwAuthenticate(R"(Bearer realm="https://r/t", scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)[0].Param("scope"), "repository:a/b:pull,push");
}

TEST(WwwAuthenticate, ParsesBasic) {
  auto c = ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].Param("realm"), "Registry Realm");
}

TEST(WwwAuthenticate, SchemeAndKeysAreCaseInsensitive) {
  auto c = ParseWwwAuthenticate(R"(BEARER Realm="x",SERVICE=reg)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "x");
  EXPECT_EQ((*c)[0].Param("service"), "reg");
}

TEST(WwwAuthenticate, SeveralChallengesInOneHeader) {
  auto c = ParseWwwAuthenticate(R"(Basic realm="a", Bearer realm="https://b/token",service="s")");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[1].scheme, "bearer");
  EXPECT_EQ((*c)[1].Param("service"), "s");
}

TEST(WwwAuthenticate, EscapedQuoteInValue) {
  auto c = ParseWwwAuthenticate(R"(Basic realm="say \"hi\"")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)[0].Param("realm"), "say \"hi\"");
}

TEST(WwwAuthenticate, UnterminatedQuoteIsAnError) {
  auto c = ParseWwwAuthenticate(R"(Bearer realm="https://x)");
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("unterminated"));
}

TEST(WwwAuthenticate, EmptyHeaderIsAnError) {
  auto c = ParseWwwAuthenticate("   ");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::image
