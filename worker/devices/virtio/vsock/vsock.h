// File: vsock.h
// virtio-vsock (virtio 1.2 §5.10) in userspace, Firecracker-style "hybrid vsock": guest
// streams end at host Unix sockets (see muxer.h for the CONNECT protocol), so the host needs
// no vhost-vsock module. Queues: rx (0, device→driver), tx (1, driver→device), event (2).
//
// Work arrives from two sides: queue notifications (the guest sent packets or gave rx
// buffers) and host socket readiness (host_event_fd(), an epoll set the VM's event loop
// watches). Both run under the transport's lock and end in the same pump: take the guest's tx
// packets, then fill rx buffers with what connections have for the guest. Guest packets are
// bounded (kMaxPayload) and copied once; host data is read straight into the guest's rx
// buffer, never more than the guest's advertised credit. The device keeps no buffer of the
// guest's between calls: the queues' state is all there is to save in a snapshot (connections
// are not saved; restore calls ResetTransport).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/devices/virtio/device.h"
#include "worker/devices/virtio/vsock/muxer.h"

namespace supermachine::devices::virtio::vsock {

struct VsockConfig {
  std::string uds_path;  // Host listening socket (see muxer.h).
  uint64_t guest_cid = kMinGuestCid;
  std::chrono::milliseconds connect_timeout{5000};  // See MuxerOptions.
  uint32_t first_host_port = kFirstHostPort;        // See MuxerOptions.
};

class Vsock : public VirtioDevice {
 public:
  static constexpr uint32_t kRxQueue = 0;
  static constexpr uint32_t kTxQueue = 1;
  static constexpr uint32_t kEventQueue = 2;

  // Creates the listening socket at config.uds_path (errors name the path).
  static absl::StatusOr<std::unique_ptr<Vsock>> Create(const VsockConfig& config);

  uint32_t device_type() const override { return kDeviceTypeVsock; }
  std::string name() const override { return "virtio-vsock " + config_.uds_path; }
  uint64_t features() const override { return kFeatureVersion1; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256, 16}; }
  // Config space: le64 guest_cid.
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const override;
  void Activate(uint64_t acked) override;
  absl::StatusOr<bool> ProcessQueues(uint32_t index, absl::Span<Queue> queues,
                                     const memory::GuestMemory& mem) override;
  int host_event_fd() const override { return muxer_->epoll_fd(); }
  absl::StatusOr<bool> ProcessHostEvents(absl::Span<Queue> queues,
                                         const memory::GuestMemory& mem) override;
  // Driver reset: every connection is dropped (host sockets closed).
  void Reset() override;

  // For snapshot restore: drops every connection (host sockets closed, the guest is not told
  // per connection) and puts VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the event queue, on which
  // the guest driver resets all its vsock sockets and re-reads the guest CID. Call it under
  // the transport's lock, i.e. through MmioTransport::WithDevice; returns whether an event
  // buffer was used (WithDevice then raises the interrupt). Without a live driver or without
  // an event buffer posted, only the connections are dropped.
  absl::StatusOr<bool> ResetTransport(absl::Span<Queue> queues, const memory::GuestMemory& mem);

  Muxer& muxer() { return *muxer_; }

 private:
  Vsock(VsockConfig config, std::unique_ptr<Muxer> muxer)
      : config_(std::move(config)), muxer_(std::move(muxer)) {}

  // Takes tx packets, then fills rx buffers, until neither makes progress.
  absl::StatusOr<bool> Pump(absl::Span<Queue> queues, const memory::GuestMemory& mem);
  absl::StatusOr<bool> DrainTx(Queue& tx, const memory::GuestMemory& mem);
  absl::StatusOr<bool> FillRx(Queue& rx, const memory::GuestMemory& mem);

  VsockConfig config_;
  std::unique_ptr<Muxer> muxer_;
  bool activated_ = false;
  bool tx_stalled_ = false;  // DrainTx stopped because RST replies are backed up.
  std::vector<uint8_t> payload_;  // Reused tx payload buffer (at most kMaxPayload).
  // Reused rx buffer layouts: the whole buffer, its header part, its payload part.
  std::vector<iovec> rx_iov_;
  std::vector<iovec> rx_header_iov_;
  std::vector<iovec> rx_payload_iov_;
};

}  // namespace supermachine::devices::virtio::vsock
