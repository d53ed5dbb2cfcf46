// File: manifest.h
// OCI image manifest / index and Docker schema 2 manifest / manifest list, and picking the
// manifest for a platform out of an index.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/digest.h"

namespace supermachine::image {

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // GOARCH spelling: "amd64", "arm64"
  std::string variant;       // "v8", "v7"; may be empty

  // "linux/arm64/v8", "linux/amd64".
  std::string ToString() const;
  bool operator==(const Platform&) const = default;
};

// The platform this binary runs on: linux/amd64 on x86_64, linux/arm64/v8 on aarch64.
Platform HostPlatform();

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;                // index entries only
  std::map<std::string, std::string> annotations;  // e.g. org.opencontainers.image.ref.name
};

struct ImageManifest {
  std::string media_type;  // kOciManifest or kDockerManifest
  Descriptor config;
  std::vector<Descriptor> layers;  // base layer first
};

struct ImageIndex {
  std::string media_type;  // kOciIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
};

using ManifestDocument = std::variant<ImageManifest, ImageIndex>;

// Parses a manifest or index. The kind comes from the document's own "mediaType", else from
// `content_type` (the HTTP Content-Type or the referring descriptor), else from its shape.
// Schema 1 manifests are refused (InvalidArgument) with what to do instead. Malformed JSON,
// missing fields, bad digests, negative sizes → InvalidArgument naming the field.
absl::StatusOr<ManifestDocument> ParseManifestDocument(absl::string_view json,
                                                       absl::string_view content_type = "");

bool IsIndexMediaType(absl::string_view media_type);
bool IsManifestMediaType(absl::string_view media_type);

// Picks the entry of `index` for `want`: os and architecture must match; the variant must
// match when both name one (arm64's default variant is v8, so an entry without a variant matches
// v8). Entries for "unknown/unknown" (attestations) are never picked. NotFound lists what the
// index offers: "no manifest for linux/amd64 in the image index; available: linux/arm64/v8".
absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& want);

}  // namespace supermachine::image
