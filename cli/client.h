// File: client.h
// The one connect helper of smctl: finds the socket (--socket, $SUPERMACHINE_SOCKET, or the
// daemon's default), checks it before the first RPC so the common newcomer failures (daemon
// not running, socket not accessible) get a message saying what to do, and makes contexts
// with smctl's explicit deadline.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "proto/supermachine.grpc.pb.h"

namespace supermachine::cli {

struct GlobalOptions {
  std::string socket;          // from --socket; empty: $SUPERMACHINE_SOCKET, then the default
  double timeout_seconds = 10; // deadline of each unary RPC
  bool json = false;           // per-verb --json sets this
  // A remote daemon over TLS + bearer token (docs/operations.md, "Remote access"). Each falls
  // back to its environment variable; an empty host means the Unix socket.
  std::string host;        // --host HOST:PORT, $SUPERMACHINE_HOST
  std::string tls_ca;      // --tls-ca PEM, $SUPERMACHINE_TLS_CA ("" = the system's roots)
  std::string token_file;  // --token-file, $SUPERMACHINE_TOKEN_FILE (required with a host)
  std::string tls_cert;    // --tls-cert, $SUPERMACHINE_TLS_CERT: client certificate for mTLS
  std::string tls_key;     // --tls-key, $SUPERMACHINE_TLS_KEY
};

// True when smctl talks to a remote daemon (--host or $SUPERMACHINE_HOST).
bool IsRemote(const GlobalOptions& options);

// --socket wins, then $SUPERMACHINE_SOCKET, then the daemon's default for this user.
std::string ResolveSocketPath(const std::string& flag_value);

enum class SocketState { kOk, kMissing, kNotSocket, kRefused, kPermissionDenied, kOther };

struct SocketDiagnosis {
  SocketState state = SocketState::kOk;
  int error = 0;            // errno behind kOther
  std::string group;        // the socket's group name (or gid) when known
  uint32_t mode = 0;        // the socket's permission bits when known
};

// What connecting to `path` as this user would meet (stat + connect; no RPC).
SocketDiagnosis DiagnoseSocket(const std::string& path);

// The actionable error for a diagnosis: UNAVAILABLE for "not running", PERMISSION_DENIED for
// access problems; OK for kOk.
grpc::Status ExplainSocketProblem(const SocketDiagnosis& d, const std::string& path);

class Client {
 public:
  // Diagnoses the socket, then makes the channel (no RPC yet).
  static grpc::Status Connect(const GlobalOptions& options, std::unique_ptr<Client>* out);

  v1::Supermachine::Stub& stub() { return *stub_; }
  const std::string& socket() const { return socket_; }
  // A context with smctl's deadline, for unary RPCs.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  // A context without deadline, for streams whose length the user decides (logs -f, exec).
  std::unique_ptr<grpc::ClientContext> StreamContext() const;
  // Turns a failed RPC's status into the message smctl prints: transport failures are
  // re-diagnosed against the socket, timeouts say what timed out; daemon messages stay as is.
  grpc::Status Explain(const grpc::Status& status) const;
  // For a failed Acquire or Bake: when the daemon reports that this host has no hardware
  // virtualization (smctl health: KVM pvm or absent), says so under the daemon's message, with
  // the daemon's remedies, since the restore or boot error alone does not tell a newcomer why.
  // Requests refused as wrong (not found, invalid, denied) are returned as they are.
  grpc::Status ExplainVmFailure(const grpc::Status& status) const;

 private:
  // Whether the daemon answers a Health call within 3 s.
  bool DaemonAnswers() const;

  Client(std::string socket, double timeout_seconds, std::unique_ptr<v1::Supermachine::Stub> stub)
      : socket_(std::move(socket)), timeout_seconds_(timeout_seconds), stub_(std::move(stub)) {}

  std::string socket_;  // or HOST:PORT when remote_
  bool remote_ = false;
  double timeout_seconds_;
  std::unique_ptr<v1::Supermachine::Stub> stub_;
};

// Prints "smctl: <message>" to stderr and returns the exit status for the code.
int ReportError(const grpc::Status& status);

}  // namespace supermachine::cli
