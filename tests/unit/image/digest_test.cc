// File: digest_test.cc
// sha256 digest parsing and streaming hashing.
#include "daemon/image/digest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

TEST(Digest, Sha256OfEmptyIsTheKnownValue) {
  EXPECT_EQ(Sha256Of("").ToString(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Digest, StreamingEqualsOneShot) {
  Sha256Hasher h;
  h.Update("hello ");
  h.Update("world");
  EXPECT_EQ(h.Finish(), Sha256Of("hello world"));
}

TEST(Digest, ParseRoundTrips) {
  const std::string text = Sha256Of("x").ToString();
  auto d = Digest::Parse(text);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ToString(), text);
}

TEST(Digest, RejectsUppercaseHex) {
  auto d = Digest::Parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855");
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("not lowercase hex"));
}

TEST(Digest, RejectsOtherAlgorithms) {
  auto d = Digest::Parse("sha512:00");
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("unsupported algorithm 'sha512'"));
}

TEST(Digest, RejectsWrongLength) {
  auto d = Digest::Parse("sha256:abcd");
  EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("64 hex digits, got 4"));
}

}  // namespace
}  // namespace supermachine::image
