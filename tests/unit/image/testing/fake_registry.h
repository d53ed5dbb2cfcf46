// File: fake_registry.h
// An in-process distribution-v2 registry over FakeHttpServer serving images built with
// image_builder, with knobs to misbehave (tamper, truncate, 5xx, auth, redirects).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "tests/unit/image/testing/fake_http_server.h"
#include "tests/unit/image/testing/image_builder.h"

namespace supermachine::image::testing {

class FakeRegistry {
 public:
  enum class Auth { kNone, kBasic, kBearer };
  struct Knobs {
    Auth auth = Auth::kNone;
    std::string user = "alice";
    std::string password = "secret";
    std::string token = "tok-123";
    bool token_as_access_token = false;  // answer {"access_token":..} instead of {"token":..}
    int fail_first_blob_gets = 0;        // answer fail_status to this many blob GETs first
    int fail_status = 503;
    std::string retry_after;             // Retry-After header on those failures, if set
    bool tamper_blobs = false;           // flip a byte in every blob body
    bool truncate_blobs = false;         // send half of every blob, then close
    int truncate_first_blob_gets = 0;    // truncate only this many blob GETs
    bool support_range = false;          // answer "Range: bytes=N-" with 206
    bool redirect_blobs = false;         // 307 to /cdn/<digest>
    bool wrong_content_digest_header = false;
  };

  FakeRegistry();
  Knobs& knobs() { return knobs_; }
  std::string host() const { return server_->host(); }
  std::vector<std::string> requests() const { return server_->requests(); }
  int blob_gets() const { return blob_gets_.load(); }

  // Serves `image` as <repo>:<tag> (its manifest by tag and digest, config and layers).
  void AddImage(const std::string& repo, const std::string& tag, const BuiltImage& image);
  // Serves an OCI index over `images` as <repo>:<tag>.
  void AddIndex(const std::string& repo, const std::string& tag, const std::vector<BuiltImage>& images);

 private:
  FakeResponse Handle(const FakeRequest& req);
  Knobs knobs_;
  absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_ ABSL_GUARDED_BY(mu_);  // path → (type, body)
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);  // digest → bytes
  std::atomic<int> blob_gets_{0};
  std::atomic<int> failed_{0};
  std::atomic<int> truncated_{0};
  std::unique_ptr<FakeHttpServer> server_;
};

}  // namespace supermachine::image::testing
