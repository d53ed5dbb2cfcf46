// File: local_registry.h
// Test peers for the image integration tests: Debian's `docker-registry` on a loopback port
// (optionally behind htpasswd Basic auth), and a helper to run umoci/skopeo/htpasswd.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/child_process.h"

namespace supermachine::image::testing {

// Runs argv to completion with HOME=`home`; stdout+stderr go to a log whose tail is in the
// error when the tool fails. Returns stdout+stderr.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv, const std::string& home);

// A free TCP port on 127.0.0.1 (bound then released).
int FreeLoopbackPort();

class LocalRegistry {
 public:
  struct Options {
    std::string dir;  // config, storage and log live here
    // When set, the registry requires HTTP Basic auth with these credentials (bcrypt htpasswd).
    std::optional<std::pair<std::string, std::string>> basic_auth;
    // When set, the registry requires bearer tokens from `realm`, signed by the key of a
    // certificate in `root_cert_bundle` (PEM), for `service`, issued by `issuer`.
    struct TokenAuth {
      std::string realm;
      std::string service;
      std::string issuer;
      std::string root_cert_bundle;
    };
    std::optional<TokenAuth> token_auth;
  };
  // Writes the config, starts `docker-registry serve`, waits until /v2/ answers.
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(const Options& options);

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const;

 private:
  LocalRegistry(base::ChildProcess child, int port, std::string log_path)
      : child_(std::move(child)), port_(port), log_path_(std::move(log_path)) {}
  base::ChildProcess child_;
  int port_;
  std::string log_path_;
};

}  // namespace supermachine::image::testing
