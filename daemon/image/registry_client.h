// File: registry_client.h
// OCI distribution v2 client (pull side): /v2/ ping, manifests, blobs into a BlobStore, with
// bearer-token and Basic auth, bounded retries, and per-blob progress.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/image/blob_store.h"
#include "daemon/image/clock.h"
#include "daemon/image/digest.h"
#include "daemon/image/docker_config.h"
#include "daemon/image/http_client.h"
#include "daemon/image/manifest.h"
#include "daemon/image/reference.h"
#include "daemon/image/token_cache.h"

namespace supermachine::image {

struct BlobProgress {
  Digest digest;
  int64_t done = 0;
  int64_t total = 0;  // descriptor size
};
using ProgressCallback = std::function<void(const BlobProgress&)>;

struct RegistryClientOptions {
  // Registries (host[:port]) spoken to over plain HTTP. Loopback registries (localhost,
  // 127.0.0.0/8, [::1]) always are; every other registry is HTTPS only.
  std::vector<std::string> insecure_registries;
  // Docker config.json to read credentials from ("" = none). See DockerConfigPath().
  std::string docker_config_path;
  // Explicit credentials per registry host; win over the config file.
  std::map<std::string, Credentials> credentials;
  const Clock* clock = nullptr;  // nullptr = real time
  // Transient failures (connect/reset/truncated transfer, 5xx, 429) are retried up to
  // max_attempts in total, sleeping initial_backoff, doubling, capped at max_backoff.
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(3);
  std::function<void(absl::Duration)> sleep;  // nullptr = absl::SleepFor; tests inject
  absl::Duration stall_timeout = absl::Seconds(30);
};

struct ManifestResponse {
  std::string bytes;
  std::string media_type;  // Content-Type as served
  Digest digest;           // sha256 of bytes, checked against Docker-Content-Digest
};

// Counters for tests, logs and the CLI ("2 blobs downloaded, 3 cached").
struct RegistryStats {
  int64_t requests = 0;          // HTTP requests sent to registries (incl. retries)
  int64_t manifest_fetches = 0;
  int64_t blob_downloads = 0;    // blobs actually fetched (cache misses)
  int64_t bytes_downloaded = 0;
  int64_t token_fetches = 0;
  int64_t retries = 0;
  int64_t resumes = 0;           // blob downloads continued with a Range request (206)
};

// "https://<registry>", or "http://<registry>" when it is a loopback registry or listed in
// `insecure_registries`. Plain HTTP is never chosen for any other registry.
std::string RegistryBaseUrl(const std::string& registry,
                            const std::vector<std::string>& insecure_registries);

// Thread-safe.
class RegistryClient {
 public:
  explicit RegistryClient(RegistryClientOptions options);
  ~RegistryClient();

  // GET /v2/: reachability and auth. OK on 200, or on 401 if auth then succeeds.
  absl::Status Ping(const std::string& registry);

  // GET /v2/<repo>/manifests/<ref.ManifestReference()> with all four manifest media types in
  // Accept. The body's sha256 must equal the pinned digest (if ref has one) and the
  // Docker-Content-Digest header (if sent): else DataLoss. NotFound (404),
  // Unauthenticated (401 even with credentials), PermissionDenied (403).
  absl::StatusOr<ManifestResponse> GetManifest(const Reference& ref);
  // Same, for a manifest reached by digest through an index.
  absl::StatusOr<ManifestResponse> GetManifestByDigest(const Reference& ref, const Digest& digest);

  // Puts blob `desc` of repository `ref` into `store` (no request if already there). Follows
  // redirects (to a CDN), resumes a broken transfer with a Range request where the server
  // supports it, verifies size and digest before committing (see BlobStore).
  absl::StatusOr<IngestResult> FetchBlob(const Reference& ref, const Descriptor& desc,
                                         const BlobStore& store,
                                         const ProgressCallback& progress = nullptr);

  RegistryStats stats() const;

 private:
  struct Call;
  struct AuthState;
  absl::StatusOr<HttpResponse> Send(const Reference& ref, const std::string& path, Call& call);
  absl::Status Authenticate(const Reference& ref, const HttpResponse& challenge_response,
                            bool already_sent_auth);
  absl::StatusOr<std::string> FetchToken(const Reference& ref, const std::string& realm,
                                         const std::string& service, const std::string& scope,
                                         const std::optional<Credentials>& creds,
                                         const std::string& cache_key);
  std::optional<std::string> AuthHeaderFor(const Reference& ref);
  absl::StatusOr<std::optional<Credentials>> CredentialsFor(const std::string& registry);
  std::string BaseUrl(const std::string& registry) const;
  absl::StatusOr<ManifestResponse> FetchManifest(const Reference& ref, const std::string& reference,
                                                 const std::optional<Digest>& pinned);
  void Sleep(absl::Duration d) const;

  RegistryClientOptions options_;
  RealClock real_clock_;
  const Clock* clock_;
  HttpClient http_;
  TokenCache tokens_;
  absl::Mutex mu_;
  // Per "registry/repository": how to authenticate (learnt from the first 401).
  std::map<std::string, std::unique_ptr<AuthState>> auth_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> requests_{0}, manifest_fetches_{0}, blob_downloads_{0},
      bytes_downloaded_{0}, token_fetches_{0}, retries_{0}, resumes_{0};
};

}  // namespace supermachine::image
