// File: port_forwarder.h
// PortForwarder: one host TCP listener whose every accepted connection is spliced to a new
// connection to a guest port through the agent's Connect operation (raw bytes both ways).
// Binding errors name the port: "host port 8080 is already in use".
//
// Threads (issue #9: many concurrent connections): each forwarder runs one Boost.Asio
// io_context on one thread that accepts and splices every connection, so the thread count
// grows with forwarded ports, never with connections. The connector blocks (it dials the VM's
// vsock and waits for the agent), so it runs on a small pool that grows on demand to at most
// kMaxConnectThreads and hands the guest fd back to the io_context. One io_context per
// forwarder rather than one per daemon: a forwarder's lifetime is its VM's, destruction is a
// local cancel-and-join, and the daemon's use of it (VmManager) needs no new wiring.
//
// Bounds (issue #9: a forward once accepted and then answered nothing for 10+ minutes):
// - Reaching the guest: the connector gets a deadline kConnectTimeout (10 s) after accept;
//   when it fails the client's connection is closed at once (EOF, as for a refused port).
//   More than kMaxConnectThreads connects at once queue behind each other, each with its
//   own deadline (set at accept), so a queued one is never given more than its share.
// - Splicing: each direction buffers at most 64 KiB and reads again only once that has been
//   written out, so a direction whose receiver stalls never stops the other one (a blocking
//   write here once deadlocked a guest that answers before it reads).
// - EOF is passed on as a half-close (shutdown SHUT_WR) and the other direction keeps
//   flowing; the connection ends normally when both directions have seen EOF.
// - A reset or error on either side (or a side that hung up completely) ends both at once;
//   the client then gets a RST (SO_LINGER 0), so a cut answer never looks complete. What is
//   left open is only what both ends keep open: a silent but connected guest is not timed
//   out here (the client's own timeout applies; the vsock device reports a guest that goes
//   away).
// - Destruction resets every connection at once and joins both the io thread and the connect
//   pool; a connection still inside the connector (at most kConnectTimeout) delays it by that
//   much, as a connector cannot be interrupted; connects still queued are dropped unrun.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {

class PortForwarder {
 public:
  // Opens a stream to the guest port (AgentClient::Connect in the daemon). It may block until
  // `deadline` and is called from several threads at once. The fd must be a stream socket
  // (any family: the agent's is a Unix socket); its blocking mode does not matter.
  using Connector = std::function<absl::StatusOr<base::UniqueFd>(absl::Time deadline)>;

  // How long a new connection may take to reach the guest port (the connector's deadline).
  static constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
  // Connector calls in flight at once per forwarder (threads, started only when needed).
  static constexpr size_t kMaxConnectThreads = 8;

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
  // The Asio state (io_context, acceptor, connections, connect pool) lives in the .cc so that
  // the daemon's many includers of this header do not compile Asio.
  class Impl;
  PortForwarder(std::string address, uint16_t port, std::unique_ptr<Impl> impl);

  std::string address_;
  uint16_t port_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace supermachine::vm
