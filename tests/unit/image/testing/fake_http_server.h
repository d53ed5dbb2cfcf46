// File: fake_http_server.h
// A minimal blocking HTTP/1.1 server on 127.0.0.1 (port 0) running on one thread, for tests
// that need a registry to misbehave: wrong digests, truncated bodies, 5xx, auth challenges.
// One request per connection (Connection: close).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace supermachine::image::testing {

struct FakeRequest {
  std::string method;
  std::string target;                          // path + query
  std::map<std::string, std::string> headers;  // lowercased names
};

struct FakeResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When >= 0: announce body.size() in Content-Length but send only this many bytes, then
  // close (a truncated transfer).
  long truncate_at = -1;
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;
  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // Requests seen so far ("GET /v2/..."), in order.
  std::vector<std::string> requests() const;

 private:
  void Serve();
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace supermachine::image::testing
