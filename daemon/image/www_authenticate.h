// File: www_authenticate.h
// Parses HTTP `WWW-Authenticate` challenges (RFC 7235) as registries send them:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull"
//   Basic realm="Registry Realm"
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::image {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lowercased, values unquoted

  std::string Param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  }
};

// One header value may hold several challenges ("Basic realm=x, Bearer realm=y"); quoted values
// may contain commas (a scope "repository:a:pull,push"). InvalidArgument on malformed input.
absl::StatusOr<std::vector<AuthChallenge>> ParseWwwAuthenticate(absl::string_view header);

}  // namespace supermachine::image
