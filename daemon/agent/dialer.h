// File: dialer.h
// How the agent client opens a stream to the guest agent. The protocol runs one operation per
// connection, so the client dials once per call; the Dialer is the seam that lets unit tests
// replace the worker's hybrid vsock socket with a plain Unix socket served by a fake agent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent {

class Dialer {
 public:
  virtual ~Dialer() = default;
  // A new connected stream (O_CLOEXEC, blocking mode unspecified) to the agent, or:
  // Unavailable when nothing answers yet (no socket, refused, guest port not listening: a
  // retry may work), DeadlineExceeded, Internal when the other end speaks something else.
  // Safe to call from several threads at once.
  virtual absl::StatusOr<base::UniqueFd> Dial(absl::Time deadline) const = 0;
  // For error messages: "vsock /run/vm.sock port 1024".
  virtual std::string Describe() const = 0;
};

// Firecracker-style hybrid vsock: connect to the worker's Unix socket (`--vsock PATH`), send
// "CONNECT <port>\n", expect "OK <hostport>\n"; the stream is then the guest vsock connection.
// The reply is read byte by byte so not one byte of the guest's stream is consumed.
class HybridVsockDialer : public Dialer {
 public:
  HybridVsockDialer(std::string socket_path, uint32_t port)
      : socket_path_(std::move(socket_path)), port_(port) {}
  absl::StatusOr<base::UniqueFd> Dial(absl::Time deadline) const override;
  std::string Describe() const override;

 private:
  std::string socket_path_;
  uint32_t port_;
};

// A plain Unix stream socket (tests; an agent reachable without the vsock handshake).
class UnixDialer : public Dialer {
 public:
  explicit UnixDialer(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  absl::StatusOr<base::UniqueFd> Dial(absl::Time deadline) const override;
  std::string Describe() const override { return "unix socket " + socket_path_; }

 private:
  std::string socket_path_;
};

// Connects a non-blocking Unix stream socket to `path` before `deadline` (a full backlog is
// retried). ENOENT/ECONNREFUSED are Unavailable: the listener may simply not be up yet.
absl::StatusOr<base::UniqueFd> ConnectUnix(const std::string& path, absl::Time deadline);

// Poll for `events` on `fd` until `deadline`; DeadlineExceeded naming `what` when it passes.
absl::Status PollUntil(int fd, short events, absl::Time deadline, const std::string& what);

}  // namespace supermachine::agent
