// File: muxer.h
// The host side of "hybrid vsock" (Firecracker's scheme, docs/worker.md "vsock"): one listening
// Unix socket at `path` for host-initiated connections, whose clients write
// "CONNECT <port>\n" and get "OK <hostport>\n" once the guest accepted; and, for a guest
// connecting to host port P, a connect to the Unix socket "<path>_P" (RST if nobody listens).
//
// The muxer owns every host socket and one epoll set holding them; the device exposes that
// epoll fd to the VM's event loop and calls ProcessHostEvents when it is readable. Packets
// from the guest come in through HandleGuestPacket; packets for the guest leave through
// ProduceRx, round-robin across connections so one busy stream cannot starve the others.
// Single-threaded: every call happens under the transport's lock. After Firecracker's
// devices/virtio/vsock/unix/muxer.rs.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/vsock/connection.h"
#include "worker/devices/virtio/vsock/packet.h"

namespace supermachine::devices::virtio::vsock {

// Parses "CONNECT <port>" (the line without its '\n'); nullopt if malformed.
std::optional<uint32_t> ParseConnectLine(absl::string_view line);

// Host-initiated connections take local ports from here up (far above guest ports).
inline constexpr uint32_t kFirstHostPort = 1u << 30;

struct MuxerOptions {
  std::string uds_path;  // The listening socket; "<uds_path>_P" for guest-initiated.
  uint64_t guest_cid = kMinGuestCid;
  // A host-initiated connection the guest has not answered by then is reset and closed, and a
  // host client that has not sent its CONNECT line by then is closed.
  std::chrono::milliseconds connect_timeout{5000};
  // After the host client closed a connection, the guest has this long to take what is left
  // and close its end (Linux does at once unless its reader still has data); then we reset it,
  // so a guest that never closes (or never gives credit) cannot pin connection slots. Each
  // data packet the guest takes meanwhile restarts it: a slow guest is not cut off.
  std::chrono::milliseconds close_timeout{10000};
  size_t max_connections = 1024;  // Established + connecting + awaiting a CONNECT line.
  // The local port of the first host-initiated connection (>= kFirstHostPort). A restored
  // worker continues from where its snapshot's worker stopped (VsockDeviceState.next_host_port):
  // the guest may still hold sockets of the old worker's connections, and a new connection on
  // the same port pair would be reset by the guest, or reset later by that stale socket's own
  // close timeout.
  uint32_t first_host_port = kFirstHostPort;
};

class Muxer {
 public:
  // RST replies to packets for unknown connections are held at most this many at a time; past
  // it the device stops taking guest tx packets until the guest gives rx buffers (a flooding
  // guest is slowed down, never buffered without bound).
  static constexpr size_t kMaxPendingRst = 256;
  // Length of the longest acceptable CONNECT line, newline included.
  static constexpr size_t kMaxConnectLine = 32;

  // Binds and listens on options.uds_path (a stale socket file there is replaced; anything
  // else there is an error naming the path).
  static absl::StatusOr<std::unique_ptr<Muxer>> Create(MuxerOptions options);
  ~Muxer();
  Muxer(const Muxer&) = delete;
  Muxer& operator=(const Muxer&) = delete;

  // Level-triggered readable while host sockets need attention.
  int epoll_fd() const { return epoll_.get(); }
  // Whether the guest driver is up; while it is not, CONNECT requests are refused (closed).
  void set_guest_ready(bool ready) { guest_ready_ = ready; }
  // The local port the next host-initiated connection will try first (saved in snapshots).
  uint32_t next_host_port() const { return next_local_port_; }

  // Handles everything ready on the host sockets (accepts, CONNECT lines, data, timeouts).
  void ProcessHostEvents();
  // A well-formed packet from the guest (`payload` is its data, h.len bytes).
  void HandleGuestPacket(const Header& h, absl::Span<const uint8_t> payload);
  // A packet from the guest that could not be read (bad length, truncated): the connection it
  // names, if any, is reset.
  void HandleMalformedPacket(const Header& h);
  // Whether a guest tx packet may be taken now (see kMaxPendingRst).
  bool CanTakeGuestPacket() const { return rst_queue_.size() < kMaxPendingRst; }

  // Whether ProduceRx may have a packet.
  bool HasRx() const { return !rst_queue_.empty() || !rx_order_.empty(); }
  // The next packet for the guest; data goes into `space`, h.len bytes of it.
  std::optional<Header> ProduceRx(absl::Span<const iovec> space);

  // Closes every connection's host socket and forgets it, without telling the guest (for a
  // driver reset or a transport reset). The listener stays.
  void DropAllConnections();

  size_t num_connections() const { return conns_.size(); }
  size_t num_pending_handshakes() const { return handshakes_.size(); }
  const Connection* FindForTest(ConnKey key) const;

 private:
  struct Handshake {
    base::UniqueFd fd;
    std::chrono::steady_clock::time_point deadline;
  };

  Muxer(MuxerOptions options, base::UniqueFd listener, base::UniqueFd epoll,
        base::UniqueFd timer)
      : options_(std::move(options)),
        listener_(std::move(listener)),
        epoll_(std::move(epoll)),
        timer_(std::move(timer)),
        next_local_port_(options_.first_host_port) {}

  void AcceptAll();
  void OnHandshakeReadable(int fd);
  void GuestConnect(const Header& req);
  void QueueRst(const Header& to_answer);
  // After anything that may change a connection's wishes: queue it for rx, or drop it.
  void Update(Connection* c);
  void Remove(ConnKey key);
  void Sweep();
  void ArmTimer();
  uint32_t AllocateLocalPort();
  size_t total_connections() const { return conns_.size() + handshakes_.size(); }

  MuxerOptions options_;
  base::UniqueFd listener_;
  base::UniqueFd epoll_;
  base::UniqueFd timer_;  // timerfd for connect/handshake deadlines; armed only when needed.
  bool timer_armed_ = false;
  bool guest_ready_ = false;

  std::map<ConnKey, std::unique_ptr<Connection>> conns_;
  std::set<ConnKey> closing_;              // host_gone() connections with a close deadline.
  std::map<int, ConnKey> by_fd_;           // Host socket → connection.
  std::map<int, Handshake> handshakes_;    // Host sockets still owing their CONNECT line.
  std::deque<ConnKey> rx_order_;           // Connections that want rx, round-robin.
  std::set<ConnKey> in_rx_order_;
  std::deque<Header> rst_queue_;           // RSTs for packets that matched no connection.
  uint32_t next_local_port_;               // Host-initiated ports (MuxerOptions).
};

}  // namespace supermachine::devices::virtio::vsock
