// File: pull.cc
// Source selection and the resolve → fetch sequence.
#include "daemon/image/pull.h"

#include "absl/strings/str_cat.h"
#include "daemon/image/archive_sources.h"
#include "daemon/image/oci_layout_source.h"
#include "daemon/image/registry_source.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {

absl::StatusOr<PullPolicy> ParsePullPolicy(absl::string_view text) {
  if (text == "always") {
    return PullPolicy::kAlways;
  }
  if (text == "missing" || text.empty()) {
    return PullPolicy::kMissing;
  }
  if (text == "never") {
    return PullPolicy::kNever;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("pull policy '", text, "': want always, missing or never"));
}

absl::StatusOr<std::unique_ptr<ImageSource>> OpenImageSource(const SourceSpec& spec,
                                                             const PullContext& ctx) {
  switch (spec.kind) {
    case SourceKind::kRegistry:
      return std::unique_ptr<ImageSource>(new RegistrySource(spec.ref, ctx));
    case SourceKind::kOciLayout: {
      SM_ASSIGN_OR_RETURN(auto s, OciLayoutSource::Open(spec.path, spec.tag, spec.digest, ctx.platform));
      return std::unique_ptr<ImageSource>(std::move(s));
    }
    case SourceKind::kOciArchive: {
      SM_ASSIGN_OR_RETURN(auto s, OciArchiveSource::Open(spec.path, spec.tag, ctx.platform));
      return std::unique_ptr<ImageSource>(std::move(s));
    }
    case SourceKind::kDockerArchive: {
      SM_ASSIGN_OR_RETURN(auto s, DockerArchiveSource::Open(spec.path, ctx.platform));
      return std::unique_ptr<ImageSource>(std::move(s));
    }
  }
  return absl::InvalidArgumentError("unknown source kind");
}

absl::StatusOr<PulledImage> PullImage(const SourceSpec& spec, const PullContext& ctx) {
  if (ctx.store == nullptr) {
    return absl::InvalidArgumentError("PullImage: no blob store");
  }
  SM_ASSIGN_OR_RETURN(std::unique_ptr<ImageSource> source, OpenImageSource(spec, ctx));
  PulledImage out;
  SM_ASSIGN_OR_RETURN(out.image, source->Resolve());
  SM_ASSIGN_OR_RETURN(std::vector<IngestResult> layers,
                      source->FetchLayers(out.image, *ctx.store, ctx.progress));
  for (const IngestResult& r : layers) {
    out.layer_paths.push_back(r.path);
    (r.already_present ? out.layers_cached : out.layers_fetched) += 1;
  }
  if (auto* reg = dynamic_cast<RegistrySource*>(source.get())) {
    out.ref_cache_hit = reg->ref_cache_hit();
  }
  return out;
}

}  // namespace supermachine::image
