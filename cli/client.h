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
};

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

 private:
  Client(std::string socket, double timeout_seconds, std::unique_ptr<v1::Supermachine::Stub> stub)
      : socket_(std::move(socket)), timeout_seconds_(timeout_seconds), stub_(std::move(stub)) {}

  std::string socket_;
  double timeout_seconds_;
  std::unique_ptr<v1::Supermachine::Stub> stub_;
};

// Prints "smctl: <message>" to stderr and returns the exit status for the code.
int ReportError(const grpc::Status& status);

}  // namespace supermachine::cli
