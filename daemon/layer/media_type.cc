// File: media_type.cc
// Media type table (OCI image-spec layer types and the Docker v2 schema 2 ones).
#include "daemon/layer/media_type.h"

#include "absl/strings/str_cat.h"

namespace supermachine::layer {

const char* CompressionName(LayerCompression compression) {
  switch (compression) {
    case LayerCompression::kNone: return "none";
    case LayerCompression::kGzip: return "gzip";
    case LayerCompression::kZstd: return "zstd";
  }
  return "unknown";
}

absl::StatusOr<std::optional<LayerCompression>> CompressionForMediaType(
    absl::string_view media_type) {
  struct Known {
    absl::string_view type;
    LayerCompression compression;
  };
  static constexpr Known kKnown[] = {
      {"application/vnd.oci.image.layer.v1.tar", LayerCompression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", LayerCompression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", LayerCompression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", LayerCompression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LayerCompression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LayerCompression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", LayerCompression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", LayerCompression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LayerCompression::kGzip},
  };
  if (media_type.empty()) {
    return std::nullopt;
  }
  for (const Known& known : kKnown) {
    if (known.type == media_type) {
      return known.compression;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported layer media type '", media_type, "'"));
}

}  // namespace supermachine::layer
