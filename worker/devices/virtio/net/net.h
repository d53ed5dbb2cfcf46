// File: net.h
// virtio-net (virtio 1.2 §5.1) over a frame backend (passt, worker/net/passt.h): one rx/tx
// queue pair, the MAC in config space (VIRTIO_NET_F_MAC) and the link state
// (VIRTIO_NET_F_STATUS). No offloads: the guest sends and expects complete checksums and
// frames of at most its MTU, so no GSO/checksum fields are ever interpreted, and no mergeable
// rx buffers (Linux then posts 1518-byte+header "small" buffers; a frame that does not fit is
// dropped and counted).
//
// Every guest frame passes the egress filter (worker/net/frame.h) before it reaches the
// backend; refused frames are counted and answered on rx with a RST or ICMP unreachable.
// Host frames arrive through host_event_fd(), our own epoll set over the backend socket whose
// interest follows what we can take: no EPOLLIN while a frame waits for a guest rx buffer,
// EPOLLOUT only while output is buffered, so the level-triggered event loop never spins.
// Nothing is held across calls but the backend's buffers, which are not guest state: the
// queues' state is all a snapshot needs (a restore re-creates the device with a new backend
// and MAC, docs/networking.md).
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/device.h"
#include "worker/net/frame.h"
#include "worker/net/mac.h"
#include "worker/net/passt.h"

namespace supermachine::devices::virtio::net {

inline constexpr uint32_t kDeviceTypeNet = 1;
inline constexpr uint64_t kFeatureMac = 1ull << 5;      // VIRTIO_NET_F_MAC
inline constexpr uint64_t kFeatureStatus = 1ull << 16;  // VIRTIO_NET_F_STATUS
inline constexpr uint16_t kStatusLinkUp = 1;            // VIRTIO_NET_S_LINK_UP
// struct virtio_net_hdr_v1: what precedes every frame once VERSION_1 is negotiated.
inline constexpr size_t kNetHeaderSize = 12;

// Per-VM counters; read from other threads (the control socket), hence atomics.
struct NetStats {
  std::atomic<uint64_t> tx_packets{0};  // Guest → backend, passed the filter.
  std::atomic<uint64_t> tx_bytes{0};
  std::atomic<uint64_t> rx_packets{0};  // Backend (and our replies) → guest.
  std::atomic<uint64_t> rx_bytes{0};
  std::atomic<uint64_t> dropped_policy{0};     // Refused by the egress policy.
  std::atomic<uint64_t> dropped_malformed{0};  // Unparseable guest frames, bad chains.
  std::atomic<uint64_t> dropped_rx{0};  // Host frames that fit no rx buffer or came too early.
  std::atomic<uint64_t> reset_stale{0};  // TCP segments of connections older than this device.
};

struct NetConfig {
  ::supermachine::net::Mac mac{};
  ::supermachine::net::FilterConfig filter;
};

class VirtioNet : public VirtioDevice {
 public:
  static constexpr uint32_t kRxQueue = 0;
  static constexpr uint32_t kTxQueue = 1;
  static constexpr size_t kMaxPendingReplies = 64;

  static absl::StatusOr<std::unique_ptr<VirtioNet>> Create(
      NetConfig config, ::supermachine::net::PasstBackend backend);

  uint32_t device_type() const override { return kDeviceTypeNet; }
  std::string name() const override;
  uint64_t features() const override { return kFeatureVersion1 | kFeatureMac | kFeatureStatus; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
  // Config space: u8 mac[6], le16 status.
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const override;
  void Activate(uint64_t acked) override;
  absl::StatusOr<bool> ProcessQueues(uint32_t index, absl::Span<Queue> queues,
                                     const memory::GuestMemory& mem) override;
  int host_event_fd() const override { return epoll_.get(); }
  absl::StatusOr<bool> ProcessHostEvents(absl::Span<Queue> queues,
                                         const memory::GuestMemory& mem) override;
  void Reset() override;

  // The link bit the guest reads from config space (the transport announces changes).
  void set_link_up(bool up) { link_up_ = up; }
  const ::supermachine::net::Mac& mac() const { return config_.mac; }
  const NetConfig& config() const { return config_; }
  const NetStats& stats() const { return stats_; }
  // One line of counters: "rx_packets=N rx_bytes=N tx_packets=N ..." (control socket `stats`).
  std::string StatsLine() const;

 private:
  VirtioNet(NetConfig config, ::supermachine::net::PasstBackend backend, base::UniqueFd epoll);

  absl::StatusOr<bool> Pump(absl::Span<Queue> queues, const memory::GuestMemory& mem);
  absl::StatusOr<bool> DrainTx(Queue& tx, const memory::GuestMemory& mem);
  absl::StatusOr<bool> FillRx(Queue& rx, const memory::GuestMemory& mem);
  enum class RxResult { kDelivered, kDropped, kNoBuffer };
  // Copies header + frame into the next rx buffer; `used` is set when a used entry was added.
  absl::StatusOr<RxResult> DeliverRx(Queue& rx, const memory::GuestMemory& mem,
                                     absl::Span<const uint8_t> frame, bool& used);
  void DiscardHostFrames();
  // Flow bookkeeping for a passed TCP frame; true when it must be reset as stale instead.
  bool StaleTcp(const ::supermachine::net::FrameInfo& info);
  void UpdateInterest();

  NetConfig config_;
  ::supermachine::net::PasstBackend backend_;
  base::UniqueFd epoll_;
  uint32_t interest_ = 0;
  bool registered_ = true;
  bool activated_ = false;
  bool link_up_ = true;
  bool rx_stalled_ = false;  // A frame waits for a guest rx buffer.
  bool closed_logged_ = false;
  std::deque<std::vector<uint8_t>> replies_;  // RST/ICMP for the guest, before host frames.
  std::vector<uint8_t> tx_frame_;            // Reused guest frame buffer.
  // TCP connections whose SYN this device passed. A guest segment of any other connection
  // belongs to one from before a restore, which the new passt does not know and would
  // silently ignore: it gets a RST instead, so it fails at once rather than hang. Bounded;
  // past kMaxFlows the check is given up (counted connections are never wrongly reset).
  static constexpr size_t kMaxFlows = 1 << 16;
  bool track_flows_ = true;
  std::unordered_set<std::string> flows_;
  NetStats stats_;
};

}  // namespace supermachine::devices::virtio::net
