// File: connection.h
// One vsock stream between a guest socket and a host Unix socket: the state machine of
// virtio 1.2 §5.10.6.4 (REQUEST/RESPONSE, SHUTDOWN, RST) and credit-based flow control in
// both directions (§5.10.6.3). Guest→host data goes to the host socket, and what the socket
// cannot take yet waits in a buffer bounded by the credit we advertise (kBufAlloc); a guest
// that sends beyond it is reset. Host→guest data is read from the socket only when the guest
// has credit and an rx buffer is at hand, straight into that buffer.
//
// The connection never blocks and owns no event registration: the muxer tells it about
// host-socket readiness (edge-triggered epoll flags) and guest packets, and asks it for the
// next packet for the guest (ProduceRx) while WantsRx(). After Firecracker's
// devices/virtio/vsock/csm/connection.rs; Linux's net/vmw_vsock/virtio_transport_common.c is
// the peer whose expectations this follows (a full SHUTDOWN is answered with RST, data beyond
// credit is dropped there, so we never send it).
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/vsock/packet.h"

namespace supermachine::devices::virtio::vsock {

// A connection's identity on the wire: our (host) port and the guest's port.
struct ConnKey {
  uint32_t local_port = 0;
  uint32_t peer_port = 0;
  bool operator==(const ConnKey&) const = default;
  bool operator<(const ConnKey& o) const {
    return local_port != o.local_port ? local_port < o.local_port : peer_port < o.peer_port;
  }
};

class Connection {
 public:
  // Guest→host bytes we accept ahead of the host socket, per connection (our buf_alloc).
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  // We tell the guest about freed space once this much is unreported, so a guest that keeps
  // sending never runs dry while we keep up (Linux uses the same order of magnitude).
  static constexpr uint32_t kCreditUpdateThreshold = kBufAlloc / 4;

  enum class State {
    kConnecting,   // Host-initiated: REQUEST queued or sent, waiting for the guest's RESPONSE.
    kEstablished,  // Data flows.
    kClosed,       // Finished; the owner drops it (closing the host socket).
  };

  // The host client on `host` asked for guest port key.peer_port: queues a REQUEST. Once the
  // guest answers, "OK <local_port>\n" is written to the host socket ahead of any data.
  static std::unique_ptr<Connection> HostInitiated(base::UniqueFd host, ConnKey key,
                                                   uint64_t guest_cid);
  // The guest's REQUEST `req` was accepted by connecting `host`: queues a RESPONSE.
  static std::unique_ptr<Connection> GuestInitiated(base::UniqueFd host, const Header& req,
                                                    uint64_t guest_cid);

  // A packet from the guest for this connection (the muxer routed it by key).
  void OnGuestPacket(const Header& h, absl::Span<const uint8_t> payload);
  // Readiness of the host socket (EPOLLIN/OUT/RDHUP/HUP/ERR, edge-triggered).
  void OnHostEvents(uint32_t events);
  // Gives up: the host socket is shut down and a RST is queued for the guest.
  void Abort();

  // Whether ProduceRx may have a packet (control, or data the guest has credit for).
  bool WantsRx() const;
  // The next packet for the guest. Data is read into `space` (the rx buffer after its
  // header); the returned header's len says how much. nullopt: nothing to send right now.
  std::optional<Header> ProduceRx(absl::Span<const iovec> space);

  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }
  ConnKey key() const { return key_; }
  int host_fd() const { return host_.get(); }
  // Bytes the guest may still send us / we may still send the guest.
  uint32_t OurFreeSpace() const { return kBufAlloc - buffered(); }
  uint32_t PeerCredit() const;
  uint32_t fwd_cnt() const { return fwd_cnt_; }
  // Guest bytes waiting for the host socket.
  uint32_t buffered() const;
  // The host client closed both directions: only delivering what it sent before, then the
  // guest's RST (or its full SHUTDOWN), is still expected, and the owner must not wait for
  // that forever. Not gated on having read the host's EOF: a guest that gives no credit would
  // never let us read that far (issue #9: such a connection stayed open with no host side).
  bool host_gone() const { return host_hup_; }
  // A RST is queued: the connection ends as soon as the guest takes it.
  bool resetting() const { return pending_rst_; }
  // Host-initiated, while connecting: when the guest must have answered. Once host_gone():
  // when the guest must have closed. The owner sets it; steady clock.
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }
  void set_deadline(std::chrono::steady_clock::time_point t) { deadline_ = t; }

 private:
  Connection(base::UniqueFd host, ConnKey key, uint64_t guest_cid, State state)
      : host_(std::move(host)), key_(key), guest_cid_(guest_cid), state_(state) {}

  Header MakeHeader(Op op);
  // Writes buffered bytes to the host socket; then applies the consequences (credit update,
  // half-close, RST after the guest's full shutdown).
  void FlushTx();
  void AfterTxProgress();
  void Consume(size_t n);
  bool CanSendData() const;

  base::UniqueFd host_;
  ConnKey key_;
  uint64_t guest_cid_;
  State state_;

  // Pending control packets for the guest.
  bool pending_request_ = false;
  bool pending_response_ = false;
  bool pending_rst_ = false;
  bool pending_credit_update_ = false;
  uint32_t pending_shutdown_ = 0;  // kShutdown* flags still to send.

  // Host socket.
  bool host_readable_ = false;  // Edge seen and not yet read to EAGAIN.
  bool host_eof_ = false;       // read() returned 0.
  bool host_hup_ = false;       // Peer closed both directions.
  bool host_wr_shut_ = false;   // We shut down the write side (guest sent SHUTDOWN SEND).
  bool aborted_ = false;        // No more host I/O.

  // Guest→host: bytes not yet written to the host socket, from tx_off_. The first
  // `uncounted_` of them are our own "OK" line, which is not guest data and earns no credit.
  std::string tx_buf_;
  size_t tx_off_ = 0;
  size_t uncounted_ = 0;
  uint32_t peer_shutdown_ = 0;  // kShutdown* flags the guest sent.

  // Credit (wrapping u32 counters, as on the wire).
  uint32_t fwd_cnt_ = 0;             // Guest bytes written to the host socket.
  uint32_t last_fwd_cnt_sent_ = 0;   // fwd_cnt_ as last told to the guest.
  uint32_t tx_cnt_ = 0;              // Bytes sent to the guest.
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;

  std::chrono::steady_clock::time_point deadline_{};
};

}  // namespace supermachine::devices::virtio::vsock
