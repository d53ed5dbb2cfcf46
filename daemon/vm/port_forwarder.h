// File: port_forwarder.h
// PortForwarder: one host TCP listener whose every accepted connection is spliced to a new
// connection to a guest port through the agent's Connect operation (raw bytes both ways).
// One accept thread (poll on the listener and a stop pipe) and one thread per connection;
// destroying the forwarder closes the listener and every connection and joins all threads.
// Binding errors name the port: "host port 8080 is already in use".
//
// Bounds (issue #9: a forward once accepted and then answered nothing for 10+ minutes):
// - Reaching the guest: the connector gets a deadline kConnectTimeout (10 s) after accept;
//   when it fails the client's connection is closed at once (EOF, as for a refused port).
// - Splicing: both sockets are non-blocking and each direction buffers at most 64 KiB and is
//   read only when its buffer is empty, so a direction whose receiver stalls never stops the
//   other one (a blocking write here once deadlocked a guest that answers before it reads).
// - EOF is passed on as a half-close (shutdown SHUT_WR) and the other direction keeps
//   flowing; the connection ends normally when both directions have seen EOF.
// - A reset or error on either side (or a side that hung up completely) ends both at once;
//   the client then gets a RST, so a cut answer never looks complete. What is left open is
//   only what both ends keep open: a silent but connected guest is not timed out here (the
//   client's own timeout applies; the vsock device reports a guest that goes away).
// - Destruction wakes every splice at once; a connection still inside the connector (at most
//   kConnectTimeout) delays it by that much.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {

class PortForwarder {
 public:
  // Opens a stream to the guest port (AgentClient::Connect in the daemon).
  using Connector = std::function<absl::StatusOr<base::UniqueFd>(absl::Time deadline)>;

  // How long a new connection may take to reach the guest port (the connector's deadline).
  static constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

  // Binds `address`:`host_port` (0: ephemeral) and starts accepting.
  static absl::StatusOr<std::unique_ptr<PortForwarder>> Start(const std::string& address,
                                                              uint16_t host_port,
                                                              Connector connector);
  ~PortForwarder();
  PortForwarder(const PortForwarder&) = delete;
  PortForwarder& operator=(const PortForwarder&) = delete;

  uint16_t port() const { return port_; }
  const std::string& address() const { return address_; }

 private:
  struct Conn {
    std::thread thread;  // Owns the client socket (Splice closes it).
    std::atomic<bool> done{false};  // Splice returned: the thread can be joined at once
  };
  PortForwarder(std::string address, uint16_t port, base::UniqueFd listener, base::UniqueFd stop_r,
                base::UniqueFd stop_w, Connector connector);
  void AcceptLoop();
  void Splice(base::UniqueFd client);
  // Joins and drops connections whose splice ended (so a long-lived VM does not accumulate
  // finished threads). Caller holds mu_.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::string address_;
  uint16_t port_;
  base::UniqueFd listener_;
  base::UniqueFd stop_r_;
  base::UniqueFd stop_w_;
  Connector connector_;
  absl::Mutex mu_;
  std::list<Conn> conns_ ABSL_GUARDED_BY(mu_);
  std::thread accept_;
};

}  // namespace supermachine::vm
