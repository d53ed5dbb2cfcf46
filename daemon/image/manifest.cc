// File: manifest.cc
// Manifest / index parsing and platform selection.
#include "daemon/image/manifest.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/image/json_util.h"
#include "daemon/image/media_types.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

namespace mt = media_types;

absl::StatusOr<Platform> ParsePlatform(const nlohmann::json& j, absl::string_view what) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": 'platform' must be an object"));
  }
  Platform p;
  SM_ASSIGN_OR_RETURN(p.os, json_util::RequiredString(j, "os", what));
  SM_ASSIGN_OR_RETURN(p.architecture, json_util::RequiredString(j, "architecture", what));
  SM_ASSIGN_OR_RETURN(p.variant, json_util::OptionalString(j, "variant", what));
  return p;
}

absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::json& j, absl::string_view what) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": descriptor must be an object"));
  }
  Descriptor d;
  SM_ASSIGN_OR_RETURN(d.media_type, json_util::RequiredString(j, "mediaType", what));
  SM_ASSIGN_OR_RETURN(std::string digest, json_util::RequiredString(j, "digest", what));
  auto parsed = Digest::Parse(digest);
  if (!parsed.ok()) {
    return base::Annotate(parsed.status(), what);
  }
  d.digest = *parsed;
  SM_ASSIGN_OR_RETURN(d.size, json_util::RequiredInt(j, "size", what));
  if (d.size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": negative size ", d.size));
  }
  if (auto it = j.find("platform"); it != j.end() && !it->is_null()) {
    SM_ASSIGN_OR_RETURN(d.platform, ParsePlatform(*it, what));
  }
  SM_ASSIGN_OR_RETURN(d.annotations, json_util::OptionalStringMap(j, "annotations", what));
  return d;
}

absl::StatusOr<ImageManifest> ParseManifest(const nlohmann::json& j, std::string media_type) {
  ImageManifest m{.media_type = std::move(media_type)};
  auto config = j.find("config");
  if (config == j.end()) {
    return absl::InvalidArgumentError("image manifest: missing field 'config'");
  }
  SM_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "image manifest config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) {
    return absl::InvalidArgumentError("image manifest: field 'layers' must be an array");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    SM_ASSIGN_OR_RETURN(Descriptor d,
                        ParseDescriptor((*layers)[i], absl::StrCat("image manifest layer ", i)));
    m.layers.push_back(std::move(d));
  }
  return m;
}

absl::StatusOr<ImageIndex> ParseIndex(const nlohmann::json& j, std::string media_type) {
  ImageIndex index{.media_type = std::move(media_type)};
  auto manifests = j.find("manifests");
  if (manifests == j.end() || !manifests->is_array()) {
    return absl::InvalidArgumentError("image index: field 'manifests' must be an array");
  }
  for (size_t i = 0; i < manifests->size(); ++i) {
    SM_ASSIGN_OR_RETURN(Descriptor d,
                        ParseDescriptor((*manifests)[i], absl::StrCat("image index entry ", i)));
    index.manifests.push_back(std::move(d));
  }
  return index;
}

// Content types carry parameters sometimes ("...+json; charset=utf-8").
absl::string_view StripParams(absl::string_view ct) {
  const size_t semi = ct.find(';');
  if (semi != absl::string_view::npos) {
    ct = ct.substr(0, semi);
  }
  while (!ct.empty() && ct.back() == ' ') {
    ct.remove_suffix(1);
  }
  return ct;
}

}  // namespace

std::string Platform::ToString() const {
  std::string out = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) {
    absl::StrAppend(&out, "/", variant);
  }
  return out;
}

Platform HostPlatform() {
#if defined(__x86_64__)
  return Platform{.os = "linux", .architecture = "amd64"};
#elif defined(__aarch64__)
  return Platform{.os = "linux", .architecture = "arm64", .variant = "v8"};
#else
#error "supermachine supports x86_64 and aarch64 hosts"
#endif
}

bool IsIndexMediaType(absl::string_view media_type) {
  return media_type == mt::kOciIndex || media_type == mt::kDockerManifestList;
}

bool IsManifestMediaType(absl::string_view media_type) {
  return media_type == mt::kOciManifest || media_type == mt::kDockerManifest;
}

absl::StatusOr<ManifestDocument> ParseManifestDocument(absl::string_view json,
                                                       absl::string_view content_type) {
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(json, "image manifest"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError("image manifest: top level must be a JSON object");
  }
  auto schema = j.find("schemaVersion");
  if (schema != j.end() && schema->is_number_integer() && schema->get<int64_t>() == 1) {
    return absl::InvalidArgumentError(
        "image manifest: Docker schema 1 manifests are deprecated and not supported; "
        "re-push the image with a current docker/podman/skopeo to get a schema 2 or OCI "
        "manifest");
  }
  if (schema == j.end() || !schema->is_number_integer() || schema->get<int64_t>() != 2) {
    return absl::InvalidArgumentError("image manifest: 'schemaVersion' must be 2");
  }
  SM_ASSIGN_OR_RETURN(std::string media_type,
                      json_util::OptionalString(j, "mediaType", "image manifest"));
  if (media_type.empty()) {
    media_type = std::string(StripParams(content_type));
  }
  if (media_type == mt::kDockerSchema1 || media_type == mt::kDockerSchema1Signed) {
    return absl::InvalidArgumentError(
        "image manifest: Docker schema 1 manifests are not supported; re-push the image");
  }
  if (media_type.empty() || media_type == "application/json" ||
      media_type == "application/octet-stream") {
    // OCI allows omitting mediaType; decide by shape.
    if (j.contains("manifests")) {
      media_type = mt::kOciIndex;
    } else if (j.contains("config") || j.contains("layers")) {
      media_type = mt::kOciManifest;
    }
  }
  if (IsIndexMediaType(media_type)) {
    SM_ASSIGN_OR_RETURN(ImageIndex index, ParseIndex(j, media_type));
    return ManifestDocument(std::move(index));
  }
  if (IsManifestMediaType(media_type)) {
    SM_ASSIGN_OR_RETURN(ImageManifest m, ParseManifest(j, media_type));
    return ManifestDocument(std::move(m));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "image manifest: unsupported media type '", media_type,
      "' (want an OCI image manifest/index or a Docker schema 2 manifest/manifest list)"));
}

absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& want) {
  const Descriptor* loose = nullptr;
  std::vector<std::string> available;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform.has_value()) {
      continue;
    }
    const Platform& p = *d.platform;
    if (p.os == "unknown" || p.architecture == "unknown") {
      continue;
    }
    available.push_back(p.ToString());
    if (p.os != want.os || p.architecture != want.architecture) {
      continue;
    }
    if (p.variant == want.variant) {
      return d;
    }
    // arm64 images usually omit the default variant v8; an unnamed variant is a weaker match.
    const bool either_unnamed = p.variant.empty() || want.variant.empty();
    const bool arm64_v8 = p.architecture == "arm64" &&
                          (p.variant.empty() || p.variant == "v8") &&
                          (want.variant.empty() || want.variant == "v8");
    if ((either_unnamed || arm64_v8) && loose == nullptr) {
      loose = &d;
    }
  }
  if (loose != nullptr) {
    return *loose;
  }
  return absl::NotFoundError(absl::StrCat(
      "no manifest for ", want.ToString(), " in the image index; available: ",
      available.empty() ? std::string("none") : absl::StrJoin(available, ", ")));
}

}  // namespace supermachine::image
