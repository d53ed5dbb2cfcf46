// File: reference.h
// Docker-compatible image references: `redis` → registry-1.docker.io/library/redis:latest.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/digest.h"

namespace supermachine::image {

// Docker Hub's canonical name and the host its v2 API is served from.
inline constexpr char kDockerHubDomain[] = "docker.io";
inline constexpr char kDockerHubRegistry[] = "registry-1.docker.io";

struct Reference {
  // Host (and port) the distribution API is reached at: "registry-1.docker.io",
  // "127.0.0.1:5000", "ghcr.io".
  std::string registry;
  // Repository path inside the registry: "library/redis", "ns/name".
  std::string repository;
  // Tag; "latest" when neither a tag nor a digest was given, empty for a digest-only ref.
  std::string tag;
  // Set for `name@sha256:...`; a digest pins the content and wins over the tag.
  std::optional<Digest> digest;

  // What to put in /v2/<repo>/manifests/<here>: the digest if any, else the tag.
  std::string ManifestReference() const;
  // Normalised form: "registry-1.docker.io/library/redis:latest", with "@sha256:..." when pinned.
  std::string ToString() const;
  bool IsDockerHub() const { return registry == kDockerHubRegistry; }
};

// Parses like `docker pull`: optional domain (first component with '.', ':' or "localhost"),
// lowercase path components separated by '/', optional ":tag" ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}),
// optional "@sha256:<64 hex>". "docker.io" and "index.docker.io" mean Docker Hub, where a
// one-component name gets "library/". Errors are InvalidArgument and name the bad part:
// "image ref 'x::y': invalid tag ':y'".
absl::StatusOr<Reference> ParseReference(absl::string_view text);

// True for hosts whose traffic never leaves the machine (localhost, 127.0.0.0/8, ::1), with or
// without a port. Such registries may be spoken to over plain HTTP.
bool IsLoopbackRegistry(absl::string_view registry);

}  // namespace supermachine::image
