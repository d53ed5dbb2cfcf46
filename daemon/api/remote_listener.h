// File: remote_listener.h
// The optional TCP listener for remote orchestration: the same gRPC service as the Unix
// socket, but only over TLS (mutual TLS when a client CA is given) and only for callers that
// present the bearer token (token_auth.h). There is no way to build one without TLS or a
// token: Prepare refuses, and the daemon refuses to start (docs/operations.md, "Remote
// access"). Every file is read and checked in Prepare, before anything listens, so a wrong
// path or a key that does not match its certificate is reported by name.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/status/statusor.h"

namespace supermachine::api {

struct RemoteListenerOptions {
  std::string address;        // HOST:PORT as gRPC takes it ("0.0.0.0:7443", "[::]:7443")
  std::string tls_cert;       // PEM certificate chain, leaf first
  std::string tls_key;        // PEM private key of the leaf
  std::string tls_client_ca;  // PEM CA bundle; non-empty → clients must present a cert it signed
  std::string token_file;     // bearer token (token_auth.h: ReadTokenFile)
  // Called for each call refused for its token (the reason, never the token); may be empty.
  std::function<void(const std::string&)> on_reject;
};

class RemoteListener {
 public:
  // Reads the certificate, key, client CA and token; checks the key matches the certificate.
  static absl::StatusOr<std::unique_ptr<RemoteListener>> Prepare(RemoteListenerOptions options);

  RemoteListener(const RemoteListener&) = delete;
  RemoteListener& operator=(const RemoteListener&) = delete;

  // Adds the TLS port to `builder` (and turns off SO_REUSEPORT for the server, so a taken port
  // is an error rather than shared); BuildAndStart binds it (and fails if it cannot: gRPC
  // starts no server when one of its ports does not bind). `this` must outlive BuildAndStart.
  void AddTo(grpc::ServerBuilder& builder);

  // After BuildAndStart: the port bound (the chosen one when the address asked for port 0).
  absl::StatusOr<int> BoundPort() const;

  const std::string& address() const { return address_; }
  bool mutual_tls() const { return mutual_tls_; }

 private:
  RemoteListener(std::string address, bool mutual_tls,
                 std::shared_ptr<grpc::ServerCredentials> credentials)
      : address_(std::move(address)), mutual_tls_(mutual_tls),
        credentials_(std::move(credentials)) {}

  std::string address_;
  bool mutual_tls_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  int selected_port_ = 0;  // written by gRPC during BuildAndStart
};

}  // namespace supermachine::api
