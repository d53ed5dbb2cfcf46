// File: token_server.h
// A registry token server for tests (the distribution "token" auth scheme): checks HTTP Basic
// credentials, grants the requested scope, and signs a JWT (RS256, certificate chain in x5c)
// that Debian's docker-registry verifies against its rootcertbundle.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/unit/image/testing/fake_http_server.h"

namespace supermachine::image::testing {

class TokenServer {
 public:
  // Makes a self-signed RSA key + certificate in `dir` (with the `openssl` tool) and starts
  // serving /token on a loopback port.
  static absl::StatusOr<std::unique_ptr<TokenServer>> Start(const std::string& dir,
                                                            std::string user, std::string password,
                                                            std::string service, std::string issuer);
  ~TokenServer();

  std::string realm() const { return "http://" + server_->host() + "/token"; }
  const std::string& cert_path() const { return cert_path_; }
  int tokens_issued() const { return issued_.load(); }

 private:
  TokenServer() = default;
  FakeResponse Handle(const FakeRequest& req);
  std::string user_, password_, service_, issuer_, cert_path_;
  std::string cert_der_b64_;
  void* key_ = nullptr;  // EVP_PKEY*
  std::atomic<int> issued_{0};
  std::unique_ptr<FakeHttpServer> server_;
};

}  // namespace supermachine::image::testing
