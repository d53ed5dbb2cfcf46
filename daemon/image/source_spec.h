// File: source_spec.h
// Where an image comes from: a registry ref (default) or a local OCI layout / archive.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/digest.h"
#include "daemon/image/reference.h"

namespace supermachine::image {

enum class SourceKind { kRegistry, kOciLayout, kOciArchive, kDockerArchive };

struct SourceSpec {
  SourceKind kind = SourceKind::kRegistry;
  Reference ref;                // kRegistry only.
  std::string path;             // Local kinds: the directory or archive file.
  std::string tag;              // oci-layout/oci-archive: the org.opencontainers.image.ref.name to pick.
  std::optional<Digest> digest; // oci-layout: the manifest/index digest to pick.

  // Round-trips to the text form, for messages and cache keys.
  std::string ToString() const;
};

// Parses:
//   `redis`, `host:5000/x:tag`, `docker://redis` → registry (see ParseReference)
//   `oci-layout:DIR`, `oci-layout:DIR:TAG`, `oci-layout:DIR@sha256:<hex>`
//   `oci-archive:FILE`, `oci-archive:FILE:TAG`
//   `docker-archive:FILE`
// A ':' inside DIR/FILE is kept when what follows it contains a '/' (it is part of the path).
absl::StatusOr<SourceSpec> ParseSourceSpec(absl::string_view text);

}  // namespace supermachine::image
