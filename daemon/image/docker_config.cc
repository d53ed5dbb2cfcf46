// File: docker_config.cc
// config.json lookup with Docker Hub aliases; base64 via OpenSSL.
#include "daemon/image/docker_config.h"

#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "daemon/image/json_util.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

// "https://index.docker.io/v1/" → "index.docker.io"; "ghcr.io" → "ghcr.io".
std::string HostOfKey(absl::string_view key) {
  absl::ConsumePrefix(&key, "https://");
  absl::ConsumePrefix(&key, "http://");
  const size_t slash = key.find('/');
  if (slash != absl::string_view::npos) {
    key = key.substr(0, slash);
  }
  return absl::AsciiStrToLower(key);
}

bool IsDockerHubHost(absl::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

}  // namespace

std::string Base64Encode(absl::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

absl::StatusOr<std::string> Base64Decode(absl::string_view text) {
  std::string clean;
  for (char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      clean.push_back(c);
    }
  }
  // Accept unpadded input by restoring the padding EVP_DecodeBlock requires.
  while (clean.size() % 4 != 0) {
    clean.push_back('=');
  }
  if (clean.empty()) {
    return std::string();
  }
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) {
    return absl::InvalidArgumentError("invalid base64");
  }
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  size_t len = static_cast<size_t>(n);
  for (size_t i = clean.size(); i > 0 && clean[i - 1] == '=' && len > 0; --i) {
    --len;
  }
  out.resize(len);
  return out;
}

absl::StatusOr<std::optional<Credentials>> FindDockerCredentials(absl::string_view config_json,
                                                                 absl::string_view registry) {
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(config_json, "docker config"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError("docker config: top level must be a JSON object");
  }
  auto auths = j.find("auths");
  if (auths == j.end() || !auths->is_object()) {
    return std::optional<Credentials>();
  }
  const std::string want = absl::AsciiStrToLower(registry);
  const bool want_hub = IsDockerHubHost(want);
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    const std::string host = HostOfKey(it.key());
    if (!(host == want || (want_hub && IsDockerHubHost(host)))) {
      continue;
    }
    const nlohmann::json& entry = it.value();
    if (!entry.is_object()) {
      continue;
    }
    const std::string what = absl::StrCat("docker config auths['", it.key(), "']");
    SM_ASSIGN_OR_RETURN(std::string auth, json_util::OptionalString(entry, "auth", what));
    if (!auth.empty()) {
      auto decoded = Base64Decode(auth);
      if (!decoded.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": 'auth' is not valid base64"));
      }
      const size_t colon = decoded->find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": 'auth' must decode to 'username:password'"));
      }
      return std::optional<Credentials>(
          Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)});
    }
    SM_ASSIGN_OR_RETURN(std::string user, json_util::OptionalString(entry, "username", what));
    SM_ASSIGN_OR_RETURN(std::string pass, json_util::OptionalString(entry, "password", what));
    if (!user.empty()) {
      return std::optional<Credentials>(Credentials{user, pass});
    }
  }
  return std::optional<Credentials>();
}

std::string DockerConfigPath(absl::string_view docker_config_env, absl::string_view home_env) {
  if (!docker_config_env.empty()) {
    return absl::StrCat(docker_config_env, "/config.json");
  }
  return absl::StrCat(home_env, "/.docker/config.json");
}

absl::StatusOr<std::optional<Credentials>> LoadDockerCredentials(const std::string& path,
                                                                 absl::string_view registry) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::optional<Credentials>();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto creds = FindDockerCredentials(ss.str(), registry);
  if (!creds.ok()) {
    return base::Annotate(creds.status(), path);
  }
  return creds;
}

}  // namespace supermachine::image
