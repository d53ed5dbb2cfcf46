// File: registry_source.cc
// Registry source: policy, ref cache, manifests/config through the blob store.
#include "daemon/image/registry_source.h"

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

absl::Status NotCached(const Reference& ref, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "image ", ref.ToString(), ": ", what, " is not cached and the pull policy is 'never'; "
      "pull it once with policy 'missing' or 'always'"));
}

}  // namespace

absl::StatusOr<std::string> RegistrySource::ReadBlob(const Descriptor& desc) {
  const BlobStore& store = *ctx_.store;
  if (!store.Contains(desc.digest)) {
    if (ctx_.policy == PullPolicy::kNever) {
      return NotCached(ref_, absl::StrCat("blob ", desc.digest.ToString(), " (", desc.media_type, ")"));
    }
    if (IsIndexMediaType(desc.media_type) || IsManifestMediaType(desc.media_type)) {
      SM_ASSIGN_OR_RETURN(ManifestResponse m, ctx_.registry->GetManifestByDigest(ref_, desc.digest));
      SM_RETURN_IF_ERROR(store.PutBytes(m.digest, m.bytes).status());
      return m.bytes;
    }
    SM_RETURN_IF_ERROR(ctx_.registry->FetchBlob(ref_, desc, store).status());
  }
  return store.ReadSmall(desc.digest, kMaxSmallBlobBytes);
}

absl::StatusOr<ResolvedImage> RegistrySource::Resolve() {
  if (ctx_.registry == nullptr && ctx_.policy != PullPolicy::kNever) {
    return absl::InvalidArgumentError("registry pull without a RegistryClient");
  }
  const BlobStore& store = *ctx_.store;
  const std::string key = absl::StrCat(ref_.registry, "/", ref_.repository, ":", ref_.tag);
  std::optional<Digest> top = ref_.digest;
  if (!top.has_value() && ctx_.ref_cache != nullptr && ctx_.policy != PullPolicy::kAlways) {
    auto entry = ctx_.ref_cache->Lookup(key, /*ignore_ttl=*/ctx_.policy == PullPolicy::kNever);
    if (entry.has_value() && store.Contains(entry->digest)) {
      top = entry->digest;
      ref_cache_hit_ = true;
    }
  }
  std::string bytes;
  std::string media_type;
  if (top.has_value() && store.Contains(*top)) {
    SM_ASSIGN_OR_RETURN(bytes, store.ReadSmall(*top, kMaxSmallBlobBytes));
  } else {
    if (ctx_.policy == PullPolicy::kNever) {
      return NotCached(ref_, "its manifest");
    }
    SM_ASSIGN_OR_RETURN(ManifestResponse m, ctx_.registry->GetManifest(ref_));
    SM_RETURN_IF_ERROR(store.PutBytes(m.digest, m.bytes).status());
    if (!ref_.digest.has_value() && ctx_.ref_cache != nullptr) {
      // A failed cache write only costs a registry round trip next time.
      ctx_.ref_cache->Store(key, m.digest).IgnoreError();
    }
    top = m.digest;
    bytes = std::move(m.bytes);
    media_type = std::move(m.media_type);
  }
  return ResolveFromManifest(ref_.ToString(), bytes, media_type, *top, ctx_.platform,
                             [this](const Descriptor& d) { return ReadBlob(d); });
}

absl::StatusOr<std::vector<IngestResult>> RegistrySource::FetchLayers(
    const ResolvedImage& image, const BlobStore& store, const ProgressCallback& progress) {
  std::vector<IngestResult> out;
  for (const Descriptor& layer : image.layers) {
    if (store.ContainsVerified(layer.digest)) {
      out.push_back(IngestResult{.path = store.PathFor(layer.digest), .size = layer.size, .already_present = true});
      continue;
    }
    if (ctx_.policy == PullPolicy::kNever) {
      return NotCached(ref_, absl::StrCat("layer ", layer.digest.ToString()));
    }
    SM_ASSIGN_OR_RETURN(IngestResult r, ctx_.registry->FetchBlob(ref_, layer, store, progress));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace supermachine::image
