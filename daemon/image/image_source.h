// File: image_source.h
// The one interface every image source implements (registry, oci-layout, oci-archive,
// docker-archive), and the in-memory image they all produce.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/image/blob_store.h"
#include "daemon/image/digest.h"
#include "daemon/image/image_config.h"
#include "daemon/image/manifest.h"
#include "daemon/image/registry_client.h"

namespace supermachine::image {

struct ResolvedImage {
  std::string source;                // the source spec, normalised, for messages
  Digest manifest_digest;            // the platform manifest (docker-archive: synthesised)
  std::string manifest_media_type;
  Platform platform;                 // what the manifest is for
  Descriptor config_descriptor;
  std::string config_json;           // the config blob, verbatim
  ImageConfig config;
  // Layer blobs, base first. Media type tells the converter how each is compressed
  // (tar, tar+gzip, tar+zstd); digest/size are what the blob store verified.
  std::vector<Descriptor> layers;
};

// Contract (every implementation; tests/unit/image/image_source_contract_test.cc):
// * Resolve() reads only manifests, indexes and the config (small blobs), never layers, and
//   verifies each one's digest; an index is narrowed to the requested platform.
// * FetchLayers() leaves every layer of `image` committed in `store` (verified digest and
//   size) and returns one IngestResult per layer, in layer order; layers already in the store
//   are not read from the source again (already_present).
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual absl::StatusOr<ResolvedImage> Resolve() = 0;
  virtual absl::StatusOr<std::vector<IngestResult>> FetchLayers(
      const ResolvedImage& image, const BlobStore& store, const ProgressCallback& progress) = 0;
};

// ---- helpers shared by the implementations ----

// Reads a small blob (manifest, index, config) named by a descriptor; implementations must
// return exactly the blob's bytes (the caller verifies size and digest).
using SmallBlobReader = std::function<absl::StatusOr<std::string>(const Descriptor&)>;

inline constexpr int64_t kMaxSmallBlobBytes = 4 << 20;

// From a top-level manifest or index (bytes + digest): selects `platform` in an index (one
// nested index level is followed), reads manifest and config through `read`, checks digests,
// layer media types, diff_id count and the config's platform.
absl::StatusOr<ResolvedImage> ResolveFromManifest(const std::string& source,
                                                  const std::string& bytes,
                                                  const std::string& media_type,
                                                  const Digest& digest, const Platform& platform,
                                                  const SmallBlobReader& read);

// Reads via `read` and checks the bytes against the descriptor's size and digest (DataLoss).
absl::StatusOr<std::string> ReadVerified(const SmallBlobReader& read, const Descriptor& desc);

// True for the layer media types the layer converter accepts.
bool IsSupportedLayerMediaType(absl::string_view media_type);

}  // namespace supermachine::image
