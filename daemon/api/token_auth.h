// File: token_auth.h
// Bearer-token authentication for the remote (TCP + TLS) listener. TLS proves the server to
// the client (and, with a client CA, the client to the server); the token says the caller is
// allowed to drive the daemon at all. gRPC runs the processor on every call made over the
// credentials it is attached to, so the Unix socket (plain credentials, no processor) needs
// no token: its file mode and group are its access control.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <grpcpp/security/auth_metadata_processor.h>

#include "absl/status/statusor.h"

namespace supermachine::api {

// Shortest token accepted: 16 bytes is 128 bits only if random, but anything shorter is a
// password someone typed, not a token.
inline constexpr size_t kMinTokenBytes = 16;

// Reads the token from `path`: the file's content without trailing whitespace (so
// `echo TOKEN > file` works). Refused, with the reason: unreadable, empty or shorter than
// kMinTokenBytes, containing whitespace or control characters inside, or readable by "other"
// (mode & 0007; a secret must not be world-readable — chmod 0600 or 0640).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Compares in time that depends only on `expected`'s length, never on where the first
// difference is, so response timing does not leak a token prefix.
bool TokenEquals(std::string_view presented, std::string_view expected);

// Requires `authorization: Bearer <token>` on every call. Missing or malformed → gRPC
// UNAUTHENTICATED saying how to send it; wrong token → UNAUTHENTICATED "invalid bearer token".
// The header is consumed so handlers never see the secret.
class BearerTokenProcessor : public grpc::AuthMetadataProcessor {
 public:
  // `on_reject(reason)` is called for each refused call (for a log line); may be empty.
  BearerTokenProcessor(std::string token, std::function<void(const std::string&)> on_reject)
      : token_(std::move(token)), on_reject_(std::move(on_reject)) {}

  // A string compare: cheap enough for gRPC's own thread, no extra hop.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  grpc::Status Reject(grpc::Status status) const;

  const std::string token_;
  const std::function<void(const std::string&)> on_reject_;
};

}  // namespace supermachine::api
