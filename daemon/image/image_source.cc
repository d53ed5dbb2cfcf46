// File: image_source.cc
// Manifest → platform manifest → config resolution shared by all sources.
#include "daemon/image/image_source.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/image/media_types.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {

bool IsSupportedLayerMediaType(absl::string_view mt) {
  namespace m = media_types;
  if (mt == m::kOciLayerTar || mt == m::kOciLayerGzip || mt == m::kOciLayerZstd ||
      mt == m::kDockerLayerGzip || mt == m::kDockerForeignLayerGzip ||
      mt == "application/vnd.docker.image.rootfs.diff.tar") {
    return true;
  }
  // OCI "nondistributable" variants carry the same content.
  return mt == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
}

absl::StatusOr<std::string> ReadVerified(const SmallBlobReader& read, const Descriptor& desc) {
  if (desc.size > kMaxSmallBlobBytes) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", desc.digest.ToString(), " (", desc.media_type,
                                                   ") is ", desc.size, " bytes; manifests and configs are limited to ",
                                                   kMaxSmallBlobBytes));
  }
  SM_ASSIGN_OR_RETURN(std::string bytes, read(desc));
  if (static_cast<int64_t>(bytes.size()) != desc.size) {
    return absl::DataLossError(absl::StrCat("blob ", desc.digest.ToString(), ": size ", bytes.size(),
                                            " differs from the descriptor's ", desc.size));
  }
  const Digest got = Sha256Of(bytes);
  if (got != desc.digest) {
    return absl::DataLossError(absl::StrCat("blob ", desc.digest.ToString(), ": digest mismatch (got ",
                                            got.ToString(), ")"));
  }
  return bytes;
}

absl::StatusOr<ResolvedImage> ResolveFromManifest(const std::string& source,
                                                  const std::string& bytes,
                                                  const std::string& media_type,
                                                  const Digest& digest, const Platform& platform,
                                                  const SmallBlobReader& read) {
  std::string manifest_bytes = bytes;
  std::string manifest_type = media_type;
  Digest manifest_digest = digest;
  ImageManifest manifest;
  for (int depth = 0;; ++depth) {
    auto doc = ParseManifestDocument(manifest_bytes, manifest_type);
    if (!doc.ok()) {
      return base::Annotate(doc.status(), absl::StrCat(source, ": manifest ", manifest_digest.ToString()));
    }
    if (auto* m = std::get_if<ImageManifest>(&*doc)) {
      manifest = std::move(*m);
      break;
    }
    if (depth >= 2) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": image indexes nested too deeply"));
    }
    const ImageIndex& index = std::get<ImageIndex>(*doc);
    auto chosen = SelectPlatform(index, platform);
    if (!chosen.ok()) {
      return base::Annotate(chosen.status(), source);
    }
    auto next = ReadVerified(read, *chosen);
    if (!next.ok()) {
      return base::Annotate(next.status(), absl::StrCat(source, ": manifest for ", platform.ToString()));
    }
    manifest_bytes = *std::move(next);
    manifest_type = chosen->media_type;
    manifest_digest = chosen->digest;
  }

  ResolvedImage out{.source = source,
                    .manifest_digest = manifest_digest,
                    .manifest_media_type = manifest.media_type,
                    .config_descriptor = manifest.config,
                    .layers = manifest.layers};
  for (size_t i = 0; i < out.layers.size(); ++i) {
    if (!IsSupportedLayerMediaType(out.layers[i].media_type)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": layer ", i, " (", out.layers[i].digest.ToString(),
                                                     ") has unsupported media type '",
                                                     out.layers[i].media_type, "'"));
    }
  }
  if (manifest.config.media_type != media_types::kOciConfig &&
      manifest.config.media_type != media_types::kDockerConfig) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a container image (config media type '", manifest.config.media_type,
        "'; an OCI artifact such as a Helm chart or signature?)"));
  }
  auto config_json = ReadVerified(read, manifest.config);
  if (!config_json.ok()) {
    return base::Annotate(config_json.status(), absl::StrCat(source, ": image config"));
  }
  out.config_json = *std::move(config_json);
  auto config = ParseImageConfig(out.config_json);
  if (!config.ok()) {
    return base::Annotate(config.status(), source);
  }
  out.config = *std::move(config);
  if (!out.config.diff_ids.empty() && out.config.diff_ids.size() != out.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": manifest has ", out.layers.size(),
                                                   " layers but the config lists ", out.config.diff_ids.size(),
                                                   " diff_ids"));
  }
  out.platform = Platform{.os = out.config.os, .architecture = out.config.architecture,
                          .variant = out.config.variant};
  if (!out.config.architecture.empty() && (out.config.architecture != platform.architecture ||
                                           (!out.config.os.empty() && out.config.os != platform.os))) {
    return absl::FailedPreconditionError(absl::StrCat(source, ": image is for ", out.platform.ToString(),
                                                      ", this host needs ", platform.ToString()));
  }
  return out;
}

}  // namespace supermachine::image
