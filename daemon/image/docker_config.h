// File: docker_config.h
// Registry credentials from Docker's config.json (`docker login` writes it).
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::image {

struct Credentials {
  std::string username;
  std::string password;
};

// Finds credentials for `registry` (a host[:port], as in Reference::registry) in the text of a
// config.json. Entries in `auths` are matched by host after stripping a scheme and path, so
// "https://ghcr.io/v2/" matches "ghcr.io". Docker Hub's hosts (registry-1.docker.io,
// index.docker.io, docker.io, and the legacy key "https://index.docker.io/v1/") are one
// registry. An entry gives either base64 "auth" ("user:pass") or "username"+"password".
// Returns nullopt when nothing matches; InvalidArgument for malformed JSON or a bad "auth".
// Credential helpers (credsStore/credHelpers) are not consulted.
absl::StatusOr<std::optional<Credentials>> FindDockerCredentials(absl::string_view config_json,
                                                                 absl::string_view registry);

// Where config.json lives: $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.
// Arguments are the environment values (empty = unset), so callers and tests stay explicit.
std::string DockerConfigPath(absl::string_view docker_config_env, absl::string_view home_env);

// Reads the file at `path` and calls FindDockerCredentials; a missing file is "no credentials".
absl::StatusOr<std::optional<Credentials>> LoadDockerCredentials(const std::string& path,
                                                                 absl::string_view registry);

// Base64 (RFC 4648 with padding) over OpenSSL; decode fails on invalid input.
std::string Base64Encode(absl::string_view bytes);
absl::StatusOr<std::string> Base64Decode(absl::string_view text);

}  // namespace supermachine::image
