// File: image_fetcher.cc
#include "daemon/bake/image_fetcher.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/bake/file_hash.h"
#include "daemon/image/blob_store.h"
#include "daemon/image/clock.h"
#include "daemon/image/pull.h"
#include "daemon/image/ref_cache.h"
#include "daemon/image/registry_client.h"
#include "daemon/image/source_spec.h"
#include "daemon/layer/layer_cache.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

uint64_t MsSince(absl::Time t0) {
  return static_cast<uint64_t>(absl::ToInt64Milliseconds(absl::Now() - t0));
}

class RealImageFetcher final : public ImageFetcher {
 public:
  RealImageFetcher(image::BlobStore blobs, std::string refs_dir, layer::LayerCache layers,
                   image::RegistryClientOptions registry_options)
      : blobs_(std::move(blobs)),
        refs_(std::move(refs_dir), &clock_, image::kDefaultRefCacheTtl),
        layers_(std::move(layers)),
        registry_(std::move(registry_options)) {}

  // See docs/bake.md ("Using the cheap key"): registry refs use the ref cache within its TTL
  // (only if the manifest is still cached); local sources a digest of the source itself.
  std::string CachedDigest(const std::string& text) override {
    absl::StatusOr<image::SourceSpec> spec = image::ParseSourceSpec(text);
    if (!spec.ok()) {
      return "";
    }
    switch (spec->kind) {
      case image::SourceKind::kRegistry: {
        if (spec->ref.digest.has_value()) {
          return spec->ref.digest->ToString();
        }
        const std::string key =
            absl::StrCat(spec->ref.registry, "/", spec->ref.repository, ":", spec->ref.tag);
        std::optional<image::RefCacheEntry> e = refs_.Lookup(key, /*ignore_ttl=*/false);
        return e.has_value() && blobs_.Contains(e->digest) ? e->digest.ToString() : "";
      }
      case image::SourceKind::kOciLayout: {
        auto fp = FingerprintFile(spec->path + "/index.json");
        return fp.ok() ? "oci-layout-index:" + fp->digest.ToString() : "";
      }
      case image::SourceKind::kOciArchive:
      case image::SourceKind::kDockerArchive: {
        auto fp = FingerprintFile(spec->path);
        return fp.ok() ? "archive:" + fp->digest.ToString() : "";
      }
    }
    return "";
  }

  absl::StatusOr<ResolvedLayers> Fetch(const BakeRequest& request,
                                       const ProgressFn& progress) override {
    // The registry client and its token cache are not shared across threads; pulls of
    // concurrent bakes queue here (layers they share are then cache hits).
    absl::MutexLock lock(&mu_);
    SM_ASSIGN_OR_RETURN(image::SourceSpec spec, image::ParseSourceSpec(request.image));
    image::PullContext ctx{.store = &blobs_, .registry = &registry_, .ref_cache = &refs_,
                           .policy = request.pull_policy};
    if (progress) {
      ctx.progress = [&progress](const image::BlobProgress& p) {
        progress({.stage = BakeProgress::Stage::kPull, .layer_digest = p.digest.ToString(),
                  .bytes_done = static_cast<uint64_t>(p.done),
                  .bytes_total = static_cast<uint64_t>(p.total)});
      };
    }
    ResolvedLayers out;
    absl::Time t0 = absl::Now();
    SM_ASSIGN_OR_RETURN(std::unique_ptr<image::ImageSource> source,
                        image::OpenImageSource(spec, ctx));
    SM_ASSIGN_OR_RETURN(image::ResolvedImage resolved, source->Resolve());
    out.resolve_ms = MsSince(t0);
    out.image_digest = resolved.manifest_digest.ToString();
    out.config = resolved.config;

    t0 = absl::Now();
    SM_ASSIGN_OR_RETURN(std::vector<image::IngestResult> blobs,
                        source->FetchLayers(resolved, blobs_, ctx.progress));
    out.pull_ms = MsSince(t0);

    t0 = absl::Now();
    for (size_t i = 0; i < resolved.layers.size(); ++i) {
      const image::Descriptor& d = resolved.layers[i];
      if (progress) {
        progress({.stage = BakeProgress::Stage::kConvert, .layer_digest = d.digest.ToString(),
                  .bytes_total = static_cast<uint64_t>(d.size),
                  .message = absl::StrCat("layer ", i + 1, "/", resolved.layers.size())});
      }
      SM_ASSIGN_OR_RETURN(layer::CachedLayer cached,
                          layers_.GetOrConvert(d.digest.ToString(), blobs[i].path,
                                               {.media_type = d.media_type}));
      struct stat st {};
      if (::stat(cached.path.c_str(), &st) != 0) {
        return base::ErrnoToStatus(errno, "stat " + cached.path);
      }
      out.layer_digests.push_back(d.digest.ToString());
      out.sqfs_paths.push_back(cached.path);
      out.sqfs_sizes.push_back(static_cast<uint64_t>(st.st_size));
    }
    out.convert_ms = MsSince(t0);
    return out;
  }

 private:
  absl::Mutex mu_;
  image::RealClock clock_;
  image::BlobStore blobs_;
  image::RefCache refs_;
  layer::LayerCache layers_;
  image::RegistryClient registry_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<ImageFetcher>> MakeImageFetcher(const ImageFetcherOptions& options) {
  SM_ASSIGN_OR_RETURN(image::BlobStore blobs, image::BlobStore::Open(options.image_cache_dir));
  SM_ASSIGN_OR_RETURN(layer::LayerCache layers, layer::LayerCache::Open(options.layer_cache_dir));
  const std::string refs_dir = options.image_cache_dir + "/refs";
  if (::mkdir(refs_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::ErrnoToStatus(errno, "mkdir " + refs_dir);
  }
  return std::shared_ptr<ImageFetcher>(std::make_shared<RealImageFetcher>(
      std::move(blobs), refs_dir, std::move(layers),
      image::RegistryClientOptions{.insecure_registries = options.insecure_registries,
                                   .docker_config_path = options.docker_config_path}));
}

}  // namespace supermachine::bake
