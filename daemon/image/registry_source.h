// File: registry_source.h
// A registry ref as an ImageSource, with the pull policy and the ref→digest cache applied.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/image/image_source.h"
#include "daemon/image/pull.h"
#include "daemon/image/reference.h"

namespace supermachine::image {

class RegistrySource final : public ImageSource {
 public:
  RegistrySource(Reference ref, const PullContext& ctx) : ref_(std::move(ref)), ctx_(ctx) {}

  // Manifest digest: the ref's own digest, else the ref cache (kMissing within TTL, kNever at
  // any age), else the registry (kAlways/kMissing). Manifests and config are read from the
  // blob store when present, else fetched and stored. kNever fails with FailedPrecondition
  // naming what is not cached.
  absl::StatusOr<ResolvedImage> Resolve() override;
  absl::StatusOr<std::vector<IngestResult>> FetchLayers(const ResolvedImage& image,
                                                        const BlobStore& store,
                                                        const ProgressCallback& progress) override;
  bool ref_cache_hit() const { return ref_cache_hit_; }

 private:
  absl::StatusOr<std::string> ReadBlob(const Descriptor& desc);
  Reference ref_;
  PullContext ctx_;
  bool ref_cache_hit_ = false;
};

}  // namespace supermachine::image
