// File: source_spec.cc
// Source-spec parsing: transport prefix, path, optional tag or digest.
#include "daemon/image/source_spec.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"

namespace supermachine::image {
namespace {

// Splits "PATH[:TAG]" where TAG is what follows the last ':' if it has no '/'.
void SplitPathTag(absl::string_view body, std::string* path, std::string* tag) {
  const size_t colon = body.rfind(':');
  if (colon != absl::string_view::npos && body.find('/', colon) == absl::string_view::npos) {
    *path = std::string(body.substr(0, colon));
    *tag = std::string(body.substr(colon + 1));
  } else {
    *path = std::string(body);
  }
}

absl::Status SpecError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("image source '", text, "': ", what));
}

}  // namespace

std::string SourceSpec::ToString() const {
  switch (kind) {
    case SourceKind::kRegistry:
      return ref.ToString();
    case SourceKind::kOciLayout:
      if (digest.has_value()) {
        return absl::StrCat("oci-layout:", path, "@", digest->ToString());
      }
      return absl::StrCat("oci-layout:", path, tag.empty() ? "" : ":", tag);
    case SourceKind::kOciArchive:
      return absl::StrCat("oci-archive:", path, tag.empty() ? "" : ":", tag);
    case SourceKind::kDockerArchive:
      return absl::StrCat("docker-archive:", path);
  }
  return "";
}

absl::StatusOr<SourceSpec> ParseSourceSpec(absl::string_view text) {
  SourceSpec spec;
  absl::string_view body;
  if (absl::ConsumePrefix(&(body = text), "oci-layout:")) {
    spec.kind = SourceKind::kOciLayout;
    const size_t at = body.rfind('@');
    if (at != absl::string_view::npos && body.find('/', at) == absl::string_view::npos) {
      auto digest = Digest::Parse(body.substr(at + 1));
      if (!digest.ok()) {
        return SpecError(text, digest.status().message());
      }
      spec.digest = *digest;
      spec.path = std::string(body.substr(0, at));
    } else {
      SplitPathTag(body, &spec.path, &spec.tag);
    }
  } else if (absl::ConsumePrefix(&(body = text), "oci-archive:")) {
    spec.kind = SourceKind::kOciArchive;
    SplitPathTag(body, &spec.path, &spec.tag);
  } else if (absl::ConsumePrefix(&(body = text), "docker-archive:")) {
    spec.kind = SourceKind::kDockerArchive;
    spec.path = std::string(body);
  } else {
    body = text;
    absl::ConsumePrefix(&body, "docker://");
    auto ref = ParseReference(body);
    if (!ref.ok()) {
      return ref.status();
    }
    spec.ref = *std::move(ref);
    return spec;
  }
  if (spec.path.empty()) {
    return SpecError(text, "missing path");
  }
  if (spec.kind != SourceKind::kRegistry && absl::StrContains(text, ":") && spec.tag.empty() &&
      !spec.digest.has_value() && absl::EndsWith(text, ":")) {
    return SpecError(text, "empty tag after ':'");
  }
  return spec;
}

}  // namespace supermachine::image
