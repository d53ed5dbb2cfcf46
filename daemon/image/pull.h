// File: pull.h
// The entry point other modules call: source spec → resolved image + layer blob files.
//
//   auto store = BlobStore::Open(cache_dir);
//   RegistryClient registry({.docker_config_path = DockerConfigPath(getenv..., getenv...)});
//   RefCache refs(cache_dir + "/refs", &clock, RefCacheTtlFromEnv(getenv(kRefCacheTtlEnv)));
//   auto spec = ParseSourceSpec("redis:7");
//   auto pulled = PullImage(*spec, {.store = &*store, .registry = &registry, .ref_cache = &refs});
//   // pulled->image.layers[i] (media type, digest, size) ↔ pulled->layer_paths[i] (a file).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/blob_store.h"
#include "daemon/image/image_source.h"
#include "daemon/image/manifest.h"
#include "daemon/image/ref_cache.h"
#include "daemon/image/registry_client.h"
#include "daemon/image/source_spec.h"

namespace supermachine::image {

// When the registry is asked (local sources ignore the policy):
//   kAlways:  always resolve the ref at the registry (blobs already cached by digest are reused).
//   kMissing: use the ref cache within its TTL and any cached blob; ask for the rest (default).
//   kNever:   never contact the registry; FailedPrecondition if anything is not cached.
enum class PullPolicy { kAlways, kMissing, kNever };

// "always" | "missing" | "never".
absl::StatusOr<PullPolicy> ParsePullPolicy(absl::string_view text);

struct PullContext {
  const BlobStore* store = nullptr;     // required
  RegistryClient* registry = nullptr;   // required for registry sources
  const RefCache* ref_cache = nullptr;  // optional
  PullPolicy policy = PullPolicy::kMissing;
  Platform platform = HostPlatform();
  ProgressCallback progress;            // per-layer bytes, optional
};

struct PulledImage {
  ResolvedImage image;
  std::vector<std::string> layer_paths;  // committed blob files, in image.layers order
  int layers_fetched = 0;                // layers whose bytes were read from the source
  int layers_cached = 0;                 // layers already in the store
  bool ref_cache_hit = false;            // registry: the tag was resolved without a request
};

// Makes the source for a spec (checks local paths exist).
absl::StatusOr<std::unique_ptr<ImageSource>> OpenImageSource(const SourceSpec& spec,
                                                             const PullContext& ctx);

// Resolve + FetchLayers.
absl::StatusOr<PulledImage> PullImage(const SourceSpec& spec, const PullContext& ctx);

}  // namespace supermachine::image
