// File: remote_listener.cc
#include "daemon/api/remote_listener.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include <grpc/grpc.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"
#include "daemon/api/token_auth.h"

namespace supermachine::api {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(what, " ", path, ": cannot be read"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": not PEM (no -----BEGIN line)"));
  }
  return text;
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  if (e == 0) {
    return "unknown OpenSSL error";
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> MemBio(const std::string& text) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// gRPC would only say "handshaker factory creation failed" at bind time; OpenSSL says which
// file is wrong and why, before anything listens.
absl::Status CheckKeyPair(const RemoteListenerOptions& o, const std::string& cert_pem,
                          const std::string& key_pem) {
  auto cert_bio = MemBio(cert_pem);
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert ", o.tls_cert, ": not a PEM certificate: ", OpenSslError()));
  }
  auto key_bio = MemBio(key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key ", o.tls_key, ": not an unencrypted PEM private key: ", OpenSslError()));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("--tls-key ", o.tls_key,
                                                   " does not match the certificate in --tls-cert ",
                                                   o.tls_cert));
  }
  return absl::OkStatus();
}

absl::Status CheckCaBundle(const std::string& path, const std::string& pem) {
  auto bio = MemBio(pem);
  std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (ca == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-client-ca ", path, ": not a PEM certificate: ", OpenSslError()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteListener>> RemoteListener::Prepare(
    RemoteListenerOptions options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("remote listener: no address");
  }
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tcp requires TLS: pass --tls-cert and --tls-key (and --tls-client-ca for mTLS)");
  }
  if (options.token_file.empty()) {
    return absl::InvalidArgumentError(
        "--tcp requires --token-file: remote clients must present a bearer token");
  }
  absl::StatusOr<std::string> cert = ReadPem("--tls-cert", options.tls_cert);
  if (!cert.ok()) {
    return cert.status();
  }
  absl::StatusOr<std::string> key = ReadPem("--tls-key", options.tls_key);
  if (!key.ok()) {
    return key.status();
  }
  if (absl::Status st = CheckKeyPair(options, *cert, *key); !st.ok()) {
    return st;
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({.private_key = *key, .cert_chain = *cert});
  const bool mutual = !options.tls_client_ca.empty();
  if (mutual) {
    absl::StatusOr<std::string> ca = ReadPem("--tls-client-ca", options.tls_client_ca);
    if (!ca.ok()) {
      return ca.status();
    }
    if (absl::Status st = CheckCaBundle(options.tls_client_ca, *ca); !st.ok()) {
      return st;
    }
    ssl.pem_root_certs = *ca;
    // No certificate, or one the CA did not sign: the handshake fails, before any RPC.
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  absl::StatusOr<std::string> token = ReadTokenFile(options.token_file);
  if (!token.ok()) {
    return token.status();
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(ssl);
  if (creds == nullptr) {
    return absl::InvalidArgumentError("gRPC refused the TLS configuration");
  }
  // Attached to these credentials only: the Unix socket's calls never reach the processor.
  creds->SetAuthMetadataProcessor(
      std::make_shared<BearerTokenProcessor>(std::move(*token), std::move(options.on_reject)));
  return std::unique_ptr<RemoteListener>(
      new RemoteListener(std::move(options.address), mutual, std::move(creds)));
}

void RemoteListener::AddTo(grpc::ServerBuilder& builder) {
  // gRPC sets SO_REUSEPORT by default: a second daemon (or anything else) on the same port
  // would then silently share its connections. A taken port must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address_, credentials_, &selected_port_);
}

absl::StatusOr<int> RemoteListener::BoundPort() const {
  if (selected_port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on --tcp ", address_,
        ": the address is in use or not local (check `ss -ltnp`), or TLS setup failed"));
  }
  return selected_port_;
}

}  // namespace supermachine::api
