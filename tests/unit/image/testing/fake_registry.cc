// File: fake_registry.cc
// Request routing for the fake registry: /token, /v2/ auth, manifests, blobs and knobs.
#include "tests/unit/image/testing/fake_registry.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/image/docker_config.h"
#include "daemon/image/media_types.h"

namespace supermachine::image::testing {

FakeRegistry::FakeRegistry()
    : server_(std::make_unique<FakeHttpServer>([this](const FakeRequest& r) { return Handle(r); })) {}

void FakeRegistry::AddImage(const std::string& repo, const std::string& tag, const BuiltImage& image) {
  absl::MutexLock lock(&mu_);
  const std::pair<std::string, std::string> m{media_types::kOciManifest, image.manifest_json};
  manifests_[absl::StrCat("/v2/", repo, "/manifests/", tag)] = m;
  manifests_[absl::StrCat("/v2/", repo, "/manifests/", image.manifest.digest.ToString())] = m;
  blobs_[image.config.digest.ToString()] = image.config_json;
  for (const std::string& b : image.layer_blobs) {
    blobs_[Sha256Of(b).ToString()] = b;
  }
}

void FakeRegistry::AddIndex(const std::string& repo, const std::string& tag,
                            const std::vector<BuiltImage>& images) {
  std::vector<Descriptor> entries;
  for (const BuiltImage& img : images) {
    AddImage(repo, img.manifest.digest.hex(), img);
    entries.push_back(img.manifest);
  }
  const std::string index = IndexJson(entries);
  absl::MutexLock lock(&mu_);
  const std::pair<std::string, std::string> m{media_types::kOciIndex, index};
  manifests_[absl::StrCat("/v2/", repo, "/manifests/", tag)] = m;
  manifests_[absl::StrCat("/v2/", repo, "/manifests/", Sha256Of(index).ToString())] = m;
}

FakeResponse FakeRegistry::Handle(const FakeRequest& req) {
  const std::string path = req.target.substr(0, req.target.find('?'));
  if (path == "/token") {
    const std::string want = absl::StrCat("Basic ", Base64Encode(knobs_.user + ":" + knobs_.password));
    auto it = req.headers.find("authorization");
    if (it == req.headers.end() || it->second != want) {
      return FakeResponse{.status = 401, .body = R"({"details":"bad credentials"})"};
    }
    const char* field = knobs_.token_as_access_token ? "access_token" : "token";
    return FakeResponse{.status = 200,
                        .headers = {{"Content-Type", "application/json"}},
                        .body = absl::StrCat(R"({")", field, R"(":")", knobs_.token, R"(","expires_in":300})")};
  }
  if (knobs_.auth != Auth::kNone && absl::StartsWith(path, "/v2/")) {
    auto it = req.headers.find("authorization");
    const std::string want =
        knobs_.auth == Auth::kBasic ? absl::StrCat("Basic ", Base64Encode(knobs_.user + ":" + knobs_.password))
                                    : absl::StrCat("Bearer ", knobs_.token);
    if (it == req.headers.end() || it->second != want) {
      std::string challenge =
          knobs_.auth == Auth::kBasic
              ? std::string(R"(Basic realm="fake")")
              : absl::StrCat(R"(Bearer realm="http://)", host(), R"(/token",service="fake-registry")");
      return FakeResponse{.status = 401,
                          .headers = {{"WWW-Authenticate", challenge}, {"Content-Type", "application/json"}},
                          .body = R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
    }
  }
  if (path == "/v2/" || path == "/v2") {
    return FakeResponse{.status = 200, .body = "{}"};
  }
  const bool cdn = absl::StartsWith(path, "/cdn/");
  const size_t blobs_at = path.find("/blobs/");
  if (cdn || blobs_at != std::string::npos) {
    const std::string digest = cdn ? path.substr(5) : path.substr(blobs_at + 7);
    if (!cdn && knobs_.redirect_blobs) {
      return FakeResponse{.status = 307, .headers = {{"Location", absl::StrCat("/cdn/", digest)}}};
    }
    ++blob_gets_;
    if (failed_.load() < knobs_.fail_first_blob_gets) {
      ++failed_;
      FakeResponse busy{.status = knobs_.fail_status, .body = "busy"};
      if (!knobs_.retry_after.empty()) {
        busy.headers.emplace_back("Retry-After", knobs_.retry_after);
      }
      return busy;
    }
    std::string body;
    {
      absl::MutexLock lock(&mu_);
      auto it = blobs_.find(digest);
      if (it == blobs_.end()) {
        return FakeResponse{.status = 404, .headers = {{"Content-Type", "application/json"}},
                            .body = R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})"};
      }
      body = it->second;
    }
    FakeResponse resp{.status = 200, .headers = {{"Docker-Content-Digest", digest}}};
    if (knobs_.tamper_blobs && !body.empty()) {
      body[body.size() / 2] ^= 0x01;
    }
    auto range = req.headers.find("range");
    if (knobs_.support_range && range != req.headers.end() && absl::StartsWith(range->second, "bytes=")) {
      const size_t from = std::stoul(range->second.substr(6));
      resp.status = 206;
      resp.headers.emplace_back("Content-Range", absl::StrCat("bytes ", from, "-", body.size() - 1, "/", body.size()));
      body = body.substr(std::min(from, body.size()));
    }
    if (knobs_.truncate_blobs || truncated_.load() < knobs_.truncate_first_blob_gets) {
      ++truncated_;
      resp.truncate_at = static_cast<long>(body.size() / 2);
    }
    resp.body = std::move(body);
    return resp;
  }
  absl::MutexLock lock(&mu_);
  auto it = manifests_.find(path);
  if (it == manifests_.end()) {
    return FakeResponse{.status = 404, .headers = {{"Content-Type", "application/json"}},
                        .body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"};
  }
  const std::string digest = knobs_.wrong_content_digest_header ? Sha256Of("other").ToString()
                                                                : Sha256Of(it->second.second).ToString();
  return FakeResponse{.status = 200,
                      .headers = {{"Content-Type", it->second.first}, {"Docker-Content-Digest", digest}},
                      .body = it->second.second};
}

}  // namespace supermachine::image::testing
