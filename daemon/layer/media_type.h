// File: media_type.h
// OCI / Docker layer media types and the compression each one declares.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::layer {

enum class LayerCompression { kNone, kGzip, kZstd };

// "none", "gzip", "zstd".
const char* CompressionName(LayerCompression compression);

// The compression a layer media type declares; nullopt for an empty media type (unknown:
// e.g. `docker save` archives carry none). Unknown non-empty types are InvalidArgument.
absl::StatusOr<std::optional<LayerCompression>> CompressionForMediaType(
    absl::string_view media_type);

}  // namespace supermachine::layer
