// File: source_spec_test.cc
// Source specs: registry refs and oci-layout / oci-archive / docker-archive paths with tags.
#include "daemon/image/source_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::image {
namespace {

constexpr char kDigest[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(SourceSpec, PlainRefIsRegistry) {
  auto spec = ParseSourceSpec("redis:7");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, SourceKind::kRegistry);
  EXPECT_EQ(spec->ref.ToString(), "registry-1.docker.io/library/redis:7");
}

TEST(SourceSpec, DockerTransportPrefixIsRegistry) {
  auto spec = ParseSourceSpec("docker://127.0.0.1:5000/x:1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->ref.registry, "127.0.0.1:5000");
}

TEST(SourceSpec, OciLayoutWithTag) {
  auto spec = ParseSourceSpec("oci-layout:/tmp/img:v1");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, SourceKind::kOciLayout);
  EXPECT_EQ(spec->path, "/tmp/img");
  EXPECT_EQ(spec->tag, "v1");
}

TEST(SourceSpec, OciLayoutWithDigest) {
  auto spec = ParseSourceSpec(std::string("oci-layout:/tmp/img@") + kDigest);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->path, "/tmp/img");
  ASSERT_TRUE(spec->digest.has_value());
  EXPECT_EQ(spec->digest->ToString(), kDigest);
}

TEST(SourceSpec, OciLayoutWithoutTag) {
  auto spec = ParseSourceSpec("oci-layout:./dir/img");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->path, "./dir/img");
  EXPECT_EQ(spec->tag, "");
}

TEST(SourceSpec, ColonInsideThePathStaysInThePath) {
  auto spec = ParseSourceSpec("oci-archive:/data/a:b/img.tar");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->path, "/data/a:b/img.tar");
  EXPECT_EQ(spec->tag, "");
}

TEST(SourceSpec, OciArchiveWithTag) {
  auto spec = ParseSourceSpec("oci-archive:/x/img.tar:latest");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, SourceKind::kOciArchive);
  EXPECT_EQ(spec->path, "/x/img.tar");
  EXPECT_EQ(spec->tag, "latest");
}

TEST(SourceSpec, DockerArchive) {
  auto spec = ParseSourceSpec("docker-archive:/x/save.tar");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, SourceKind::kDockerArchive);
  EXPECT_EQ(spec->path, "/x/save.tar");
}

TEST(SourceSpec, EmptyPathIsRejected) {
  auto spec = ParseSourceSpec("oci-layout:");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()), ::testing::HasSubstr("missing path"));
}

TEST(SourceSpec, BadDigestIsRejected) {
  auto spec = ParseSourceSpec("oci-layout:/x@sha256:zz");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::image
