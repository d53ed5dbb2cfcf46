// File: media_type_test.cc
// Layer media types → declared compression.
#include "daemon/layer/media_type.h"

#include "gtest/gtest.h"

namespace supermachine::layer {
namespace {

TEST(CompressionForMediaType, OciGzip) {
  auto c = CompressionForMediaType("application/vnd.oci.image.layer.v1.tar+gzip");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, LayerCompression::kGzip);
}

TEST(CompressionForMediaType, OciZstd) {
  auto c = CompressionForMediaType("application/vnd.oci.image.layer.v1.tar+zstd");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, LayerCompression::kZstd);
}

TEST(CompressionForMediaType, OciPlainTar) {
  auto c = CompressionForMediaType("application/vnd.oci.image.layer.v1.tar");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, LayerCompression::kNone);
}

TEST(CompressionForMediaType, DockerRootfsDiff) {
  auto c = CompressionForMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, LayerCompression::kGzip);
}

TEST(CompressionForMediaType, EmptyMeansUnchecked) {
  auto c = CompressionForMediaType("");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
}

TEST(CompressionForMediaType, RejectsUnknown) {
  EXPECT_EQ(CompressionForMediaType("application/vnd.oci.image.config.v1+json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::layer
