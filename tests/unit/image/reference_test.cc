// File: reference_test.cc
// Image ref parsing: Docker's normalisation for valid refs, and a message naming the bad part
// for invalid ones.
#include "daemon/image/reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

using ::testing::HasSubstr;

struct ValidCase {
  const char* input;
  const char* registry;
  const char* repository;
  const char* tag;
  const char* normalised;
};

class ValidReference : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ValidReference, ParsesToDockerNormalisedForm) {
  const ValidCase& c = GetParam();
  absl::StatusOr<Reference> ref = ParseReference(c.input);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->registry, c.registry);
  EXPECT_EQ(ref->repository, c.repository);
  EXPECT_EQ(ref->tag, c.tag);
  EXPECT_EQ(ref->ToString(), c.normalised);
}

constexpr char kHex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

INSTANTIATE_TEST_SUITE_P(
    Table, ValidReference,
    ::testing::Values(
        ValidCase{"redis", "registry-1.docker.io", "library/redis", "latest",
                  "registry-1.docker.io/library/redis:latest"},
        ValidCase{"redis:7-alpine", "registry-1.docker.io", "library/redis", "7-alpine",
                  "registry-1.docker.io/library/redis:7-alpine"},
        ValidCase{"docker.io/x/y", "registry-1.docker.io", "x/y", "latest",
                  "registry-1.docker.io/x/y:latest"},
        ValidCase{"docker.io/redis", "registry-1.docker.io", "library/redis", "latest",
                  "registry-1.docker.io/library/redis:latest"},
        ValidCase{"index.docker.io/library/busybox:1.36", "registry-1.docker.io",
                  "library/busybox", "1.36", "registry-1.docker.io/library/busybox:1.36"},
        ValidCase{"bitnami/redis", "registry-1.docker.io", "bitnami/redis", "latest",
                  "registry-1.docker.io/bitnami/redis:latest"},
        ValidCase{"host:5000/ns/name:tag", "host:5000", "ns/name", "tag", "host:5000/ns/name:tag"},
        ValidCase{"127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest",
                  "127.0.0.1:5000/busybox:latest"},
        ValidCase{"localhost/x", "localhost", "x", "latest", "localhost/x:latest"},
        ValidCase{"ghcr.io/a/b/c:v1.2_3", "ghcr.io", "a/b/c", "v1.2_3", "ghcr.io/a/b/c:v1.2_3"},
        ValidCase{"my-registry.example.com/team/app-name__x.y", "my-registry.example.com",
                  "team/app-name__x.y", "latest",
                  "my-registry.example.com/team/app-name__x.y:latest"},
        ValidCase{"[::1]:5000/x:1", "[::1]:5000", "x", "1", "[::1]:5000/x:1"}));

TEST(Reference, DigestOnlyHasNoTag) {
  absl::StatusOr<Reference> ref = ParseReference(std::string("redis@sha256:") + kHex);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->tag, "");
  ASSERT_TRUE(ref->digest.has_value());
  EXPECT_EQ(ref->ManifestReference(), std::string("sha256:") + kHex);
  EXPECT_EQ(ref->ToString(), std::string("registry-1.docker.io/library/redis@sha256:") + kHex);
}

TEST(Reference, TagAndDigestKeepsBothAndDigestWins) {
  absl::StatusOr<Reference> ref = ParseReference(std::string("host:5000/x:7@sha256:") + kHex);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->tag, "7");
  EXPECT_EQ(ref->ManifestReference(), std::string("sha256:") + kHex);
}

TEST(Reference, LoopbackRegistriesAreRecognised) {
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("localhost"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("127.example.com"));
  EXPECT_FALSE(IsLoopbackRegistry("registry-1.docker.io"));
}

struct InvalidCase {
  const char* input;
  const char* message;  // must appear in the error
};

class InvalidReference : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidReference, IsInvalidArgumentNamingTheBadPart) {
  const InvalidCase& c = GetParam();
  absl::StatusOr<Reference> ref = ParseReference(c.input);
  ASSERT_FALSE(ref.ok()) << c.input << " parsed as " << ref->ToString();
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ref.status().message()), HasSubstr(c.message));
}

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidReference,
    ::testing::Values(
        InvalidCase{"", "image ref is empty"},
        InvalidCase{"x::y", "image ref 'x::y': invalid tag ':y'"},
        InvalidCase{"redis:", "invalid tag ''"},
        InvalidCase{"redis:-bad", "invalid tag '-bad'"},
        InvalidCase{"Redis", "repository name must be lowercase ('Redis')"},
        InvalidCase{"docker.io/Library/redis", "must be lowercase"},
        InvalidCase{"a//b", "empty path component"},
        InvalidCase{"ns/", "empty path component"},
        InvalidCase{"/redis", "empty path component"},
        InvalidCase{"re$dis", "invalid repository name component 're$dis'"},
        InvalidCase{"redis_", "invalid repository name component"},
        InvalidCase{"a..b", "invalid repository name component 'a..b'"},
        InvalidCase{"has space", "whitespace"},
        InvalidCase{"redis@sha256:abc", "invalid digest 'sha256:abc'"},
        InvalidCase{"redis@md5:0123", "invalid digest"},
        InvalidCase{"redis@", "invalid digest ''"},
        InvalidCase{"host:99999999/x", "invalid registry host 'host:99999999'"},
        InvalidCase{"-host.io/x", "invalid registry host"},
        InvalidCase{"localhost:/x", "invalid registry host"},
        InvalidCase{":tag", "missing repository name"}));

TEST(Reference, RejectsOverlongTag) {
  absl::StatusOr<Reference> ref = ParseReference("redis:" + std::string(129, 'a'));
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ref.status().message()), HasSubstr("invalid tag"));
}

TEST(Reference, LengthLimitCountsTheNormalisedName) {
  // 240 characters alone, but "docker.io/library/" + 240 is 258 > 255.
  absl::StatusOr<Reference> ref = ParseReference(std::string(240, 'a'));
  EXPECT_THAT(std::string(ref.status().message()), HasSubstr("longer than 255"));
}

TEST(Reference, RejectsOverlongName) {
  absl::StatusOr<Reference> ref = ParseReference(std::string(256, 'a'));
  EXPECT_THAT(std::string(ref.status().message()), HasSubstr("longer than 255"));
}

}  // namespace
}  // namespace supermachine::image
