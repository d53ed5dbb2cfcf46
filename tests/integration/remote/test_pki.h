// File: test_pki.h
// Test support: a throwaway PKI made with the openssl CLI at test time — a CA, a server
// certificate for localhost/127.0.0.1 and a client certificate signed by it, plus a client
// certificate from a second, untrusted CA — and a bearer-token file. EC P-256 keys: fast to
// generate, and what a real deployment would pick.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace supermachine::test_support {

struct TestPki {
  std::string ca_cert;            // trusted CA (server trust anchor for clients; client CA)
  std::string server_cert, server_key;
  std::string client_cert, client_key;  // signed by ca_cert
  std::string rogue_cert, rogue_key;    // signed by another CA the daemon does not trust
  std::string token;                    // the token in token_file
  std::string token_file;               // mode 0600

  // Everything goes in `dir`. Reads back the PEM texts gRPC's client credentials need.
  static absl::StatusOr<TestPki> Create(const std::string& dir);
};

}  // namespace supermachine::test_support
