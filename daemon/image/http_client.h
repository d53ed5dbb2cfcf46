// File: http_client.h
// A small blocking HTTP(S) client over libcurl for the registry client: redirects, streaming
// 2xx bodies to a sink, bounded error bodies, lowercased response headers.
#pragma once

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

namespace supermachine::image {

struct HttpRequest {
  std::string method = "GET";  // "GET" or "HEAD"
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  bool follow_redirects = true;
  // When set, the body of a 2xx response is streamed here (an error stops the transfer and is
  // returned from Do). Otherwise it is collected into HttpResponse::body up to max_body_bytes.
  std::function<absl::Status(absl::string_view)> body_sink;
  // Called once the headers of the final 2xx response are in, before its body reaches the
  // sink (e.g. to check a 206 Content-Range or to restart a resumed download on a 200).
  // An error aborts the transfer and is returned from Do.
  std::function<absl::Status(long status, const std::multimap<std::string, std::string>& headers)>
      on_response_start;
  int64_t max_body_bytes = 8 << 20;
  absl::Duration connect_timeout = absl::Seconds(15);
  // Abort when fewer than 1 byte/s arrive for this long (a stalled server), not on total time:
  // a large layer over a slow link is fine as long as it moves.
  absl::Duration stall_timeout = absl::Seconds(30);
};

struct HttpResponse {
  long status = 0;
  // Headers of the final response (after redirects), names lowercased.
  std::multimap<std::string, std::string> headers;
  // 2xx without a sink: the body. Non-2xx: up to 64 KiB of it, for error messages.
  std::string body;
  std::string effective_url;

  // First value of header `name` (lowercase), or "".
  std::string Header(const std::string& name) const;
};

// Thread-safe; reuses curl handles (and so kept-alive connections) between requests.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Transport failures (refused, reset, truncated transfer, TLS) are Unavailable and name the
  // URL and curl's reason; stalls are DeadlineExceeded. Any HTTP status is a success here.
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request);

 private:
  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  absl::Mutex mu_;
  std::vector<void*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::image
