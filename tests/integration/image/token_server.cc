// File: token_server.cc
// Token endpoint: Basic check, scope → access claims, RS256 JWT with the cert in x5c.
#include "tests/integration/image/token_server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/image/docker_config.h"
#include "tests/integration/image/local_registry.h"

namespace supermachine::image::testing {
namespace {

std::string Base64Url(const std::string& bytes) {
  std::string s = Base64Encode(bytes);
  for (char& c : s) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  while (!s.empty() && s.back() == '=') {
    s.pop_back();
  }
  return s;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenServer>> TokenServer::Start(const std::string& dir, std::string user,
                                                                std::string password, std::string service,
                                                                std::string issuer) {
  std::unique_ptr<TokenServer> ts(new TokenServer());
  ts->user_ = std::move(user);
  ts->password_ = std::move(password);
  ts->service_ = std::move(service);
  ts->issuer_ = std::move(issuer);
  ts->cert_path_ = dir + "/token-cert.pem";
  const std::string key_path = dir + "/token-key.pem";
  auto made = RunTool({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key_path, "-out",
                       ts->cert_path_, "-days", "2", "-subj", "/CN=supermachine-test-token-issuer"},
                      dir);
  if (!made.ok()) {
    return made.status();
  }
  FILE* kf = std::fopen(key_path.c_str(), "r");
  FILE* cf = std::fopen(ts->cert_path_.c_str(), "r");
  if (kf == nullptr || cf == nullptr) {
    return absl::InternalError("cannot open the generated key/cert");
  }
  EVP_PKEY* key = PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr);
  X509* cert = PEM_read_X509(cf, nullptr, nullptr, nullptr);
  std::fclose(kf);
  std::fclose(cf);
  if (key == nullptr || cert == nullptr) {
    return absl::InternalError("cannot parse the generated key/cert");
  }
  ts->key_ = key;
  const int len = i2d_X509(cert, nullptr);
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert, &p);
  X509_free(cert);
  ts->cert_der_b64_ = Base64Encode(der);  // x5c uses standard base64
  TokenServer* raw = ts.get();
  ts->server_ = std::make_unique<FakeHttpServer>([raw](const FakeRequest& r) { return raw->Handle(r); });
  return ts;
}

TokenServer::~TokenServer() {
  server_.reset();  // stop serving before the key goes
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

FakeResponse TokenServer::Handle(const FakeRequest& req) {
  auto auth = req.headers.find("authorization");
  if (auth == req.headers.end() || auth->second != "Basic " + Base64Encode(user_ + ":" + password_)) {
    return FakeResponse{.status = 401, .headers = {{"Content-Type", "application/json"}},
                        .body = R"({"errors":[{"code":"UNAUTHORIZED","message":"bad or missing credentials"}]})"};
  }
  // Grant every requested scope: repository:<name>:<actions>.
  nlohmann::json access = nlohmann::json::array();
  const size_t q = req.target.find('?');
  if (q != std::string::npos) {
    for (absl::string_view kv : absl::StrSplit(req.target.substr(q + 1), '&')) {
      if (!absl::ConsumePrefix(&kv, "scope=")) {
        continue;
      }
      const std::string scope = UrlDecode(std::string(kv));
      std::vector<std::string> parts = absl::StrSplit(scope, ':');
      if (parts.size() == 3) {
        access.push_back({{"type", parts[0]}, {"name", parts[1]},
                          {"actions", std::vector<std::string>(absl::StrSplit(parts[2], ','))}});
      }
    }
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const nlohmann::json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {cert_der_b64_}}};
  const nlohmann::json claims = {{"iss", issuer_},   {"sub", user_},       {"aud", service_},
                                 {"exp", now + 300}, {"nbf", now - 10},    {"iat", now},
                                 {"jti", absl::StrCat("t", issued_.load())}, {"access", access}};
  const std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t sig_len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
      EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) == 1) {
    sig.resize(sig_len);
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                   reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
    sig.resize(sig_len);
  }
  EVP_MD_CTX_free(ctx);
  ++issued_;
  const std::string jwt = signing_input + "." + Base64Url(sig);
  return FakeResponse{.status = 200,
                      .headers = {{"Content-Type", "application/json"}},
                      .body = nlohmann::json({{"token", jwt}, {"expires_in", 300}}).dump()};
}

}  // namespace supermachine::image::testing
