// File: balloon.h
// virtio-balloon (virtio 1.2 §5.5) for memory give-back: free page reporting
// (VIRTIO_BALLOON_F_REPORTING) and plain inflate/deflate. Every page the guest reports free or
// puts in the balloon is dropped from the host: MADV_DONTNEED on a private (restored, RAM file
// MAP_PRIVATE) mapping, which reverts the page to the file's content, or a hole punched in the
// memfd of a booted VM, which reads back as zeros. Either is fine for pages the guest no longer
// uses: without VIRTIO_BALLOON_F_PAGE_POISON (never offered) the guest makes no assumption about
// the content of a reported page, and Linux then keeps reporting on only when it neither
// poisons nor zeroes freed pages (virtballoon_validate). Stats and free page hinting are not
// offered, so the queues are exactly inflate, deflate, reporting (the driver numbers only the
// queues of negotiated features).
//
// The host sets a target balloon size (SetBalloonTarget, the control socket's `balloon-target`):
// the driver then inflates towards it through the inflate queue. VIRTIO_BALLOON_F_DEFLATE_ON_OOM
// is offered so an inflated guest that becomes busy deflates by itself instead of OOM-killing
// its workload (§5.5.3); adding it to the offer keeps old snapshots restorable, because restore
// only checks that the saved acked features are a subset of what is offered now.
//
// The guest is hostile: a range must be page-aligned, non-empty and wholly inside one RAM
// region, or the whole chain is refused and no page of it is touched. A report chain may
// describe more than Queue::kMaxChainBytes (32 ranges of up to 4 MiB in Linux 6.1) because
// nothing is copied; it is bounded by the guest's RAM instead, and the work per chain by the
// queue size (one madvise/fallocate per descriptor).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/devices/virtio/device.h"
#include "worker/devices/virtio/mmio.h"

namespace supermachine::devices::virtio {

inline constexpr uint32_t kDeviceTypeBalloon = 5;
inline constexpr uint64_t kFeatureBalloonStatsVq = 1ull << 1;    // VIRTIO_BALLOON_F_STATS_VQ
inline constexpr uint64_t kFeatureBalloonDeflateOnOom = 1ull << 2;  // ..._F_DEFLATE_ON_OOM
inline constexpr uint64_t kFeatureBalloonPagePoison = 1ull << 4;  // VIRTIO_BALLOON_F_PAGE_POISON
inline constexpr uint64_t kFeatureBalloonReporting = 1ull << 5;   // VIRTIO_BALLOON_F_REPORTING
// Balloon PFNs are always 4 KiB units, whatever the guest's page size (§5.5.6).
inline constexpr uint64_t kBalloonPfnShift = 12;

// Everything that survives a snapshot plus the counters (which are per worker and not saved).
struct BalloonState {
  uint64_t acked_features = 0;
  uint32_t num_pages = 0;  // Config: the host's target balloon size in 4 KiB pages.
  uint32_t actual = 0;     // Config: what the driver says the balloon holds.
  // Counters since this worker started.
  uint64_t reported_ranges = 0;  // Free page reporting: ranges given back.
  uint64_t reported_bytes = 0;
  uint64_t inflated_pages = 0;   // Inflate queue: 4 KiB pages given back.
  uint64_t deflated_pages = 0;
  uint64_t rejected_chains = 0;  // Malformed chains refused without touching memory.
  uint64_t discard_errors = 0;   // madvise/fallocate failures (memory stays in use).
};

// Drops the host backing of guest range [addr, addr+len), which must be page-aligned and inside
// one region. Private mappings: MADV_DONTNEED; the shared memfd: a punched hole (MADV_DONTNEED
// alone would leave the memfd's pages allocated).
absl::Status DiscardGuestRange(const memory::GuestMemory& mem, uint64_t addr, uint64_t len);

class Balloon : public VirtioDevice {
 public:
  static constexpr uint32_t kInflateQueue = 0;
  static constexpr uint32_t kDeflateQueue = 1;
  static constexpr uint32_t kReportingQueue = 2;
  // Linux needs at least PAGE_REPORTING_CAPACITY (32) entries on the reporting queue or it
  // refuses to register page reporting.
  static constexpr uint16_t kReportingQueueSize = 128;
  // Linux sends at most 256 PFNs per inflate/deflate request (VIRTIO_BALLOON_ARRAY_PFNS_MAX);
  // more in one chain is ignored (and counted as rejected) so one chain costs bounded work.
  static constexpr uint32_t kMaxPfnsPerRequest = 256;
  static constexpr uint64_t kConfigSize = 16;  // num_pages, actual, hint cmd id, poison_val.

  Balloon() = default;

  uint32_t device_type() const override { return kDeviceTypeBalloon; }
  std::string name() const override { return "virtio-balloon"; }
  uint64_t features() const override {
    return kFeatureVersion1 | kFeatureBalloonReporting | kFeatureBalloonDeflateOnOom;
  }
  std::vector<uint16_t> queue_max_sizes() const override {
    return {256, 256, kReportingQueueSize};
  }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const override;
  void WriteConfig(uint64_t offset, absl::Span<const uint8_t> in) override;
  void Activate(uint64_t acked) override { state_.acked_features = acked; }
  absl::StatusOr<bool> ProcessQueue(uint32_t index, Queue& queue,
                                    const memory::GuestMemory& mem) override;
  void Reset() override;

  const BalloonState& state() const { return state_; }
  // Snapshot restore: the config fields (counters start at 0 in a new worker).
  void RestoreConfig(uint32_t num_pages, uint32_t actual) {
    state_.num_pages = num_pages;
    state_.actual = actual;
  }
  // The host's target (config num_pages) in 4 KiB pages; 0 deflates fully. More pages than
  // `ram_bytes` holds is refused (InvalidArgument naming the RAM size): no driver can meet it.
  // Only the config changes; SetBalloonTarget also tells the driver.
  absl::Status SetTarget(uint32_t pages, uint64_t ram_bytes);
  // "reported_ranges=.. reported_bytes=.. inflated_pages=.. ..." for logs and stats.
  std::string StatsLine() const;

 private:
  absl::StatusOr<bool> ProcessReports(Queue& queue, const memory::GuestMemory& mem);
  absl::StatusOr<bool> ProcessPfns(Queue& queue, const memory::GuestMemory& mem, bool inflate);

  BalloonState state_;
};

// Sets the target of the Balloon behind `transport` (bounded by its guest memory) and raises
// a config-change interrupt so a running driver re-reads num_pages and inflates or deflates
// towards it. A driver not yet running reads it when it starts.
absl::Status SetBalloonTarget(MmioTransport& transport, uint32_t pages);

}  // namespace supermachine::devices::virtio
