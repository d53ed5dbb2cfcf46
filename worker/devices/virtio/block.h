// File: block.h
// virtio-blk (virtio 1.x §5.2) over a host file: read-only or read-write, FLUSH, GET_ID, with
// IOERR for out-of-range or failed I/O and UNSUPP for unknown requests. I/O is synchronous
// pread/pwrite straight into guest memory on the thread that handles the queue notification.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/device.h"

namespace supermachine::devices::virtio {

struct BlockConfig {
  std::string path;
  bool read_only = false;
  std::string id;  // Returned by GET_ID (at most 20 bytes are sent).
};

inline constexpr uint32_t kBlockRequestIn = 0;
inline constexpr uint32_t kBlockRequestOut = 1;
inline constexpr uint32_t kBlockRequestFlush = 4;
inline constexpr uint32_t kBlockRequestGetId = 8;
inline constexpr uint8_t kBlockStatusOk = 0;
inline constexpr uint8_t kBlockStatusIoErr = 1;
inline constexpr uint8_t kBlockStatusUnsupp = 2;
inline constexpr uint64_t kFeatureBlockRo = 1ull << 5;      // VIRTIO_BLK_F_RO
inline constexpr uint64_t kFeatureBlockFlush = 1ull << 9;   // VIRTIO_BLK_F_FLUSH
inline constexpr uint32_t kBlockIdBytes = 20;               // VIRTIO_BLK_ID_BYTES
inline constexpr uint64_t kSectorSize = 512;

// Plain state for snapshots (the file itself is reopened from config on restore).
struct BlockState {
  uint64_t capacity_sectors = 0;
  uint64_t acked_features = 0;
};

class Block : public VirtioDevice {
 public:
  // Opens the file (O_RDONLY for read-only) and sizes the disk. Errors name the path.
  static absl::StatusOr<std::unique_ptr<Block>> Open(const BlockConfig& config);

  uint32_t device_type() const override { return kDeviceTypeBlock; }
  std::string name() const override { return "virtio-blk " + config_.path; }
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const override;
  void Activate(uint64_t acked) override { state_.acked_features = acked; }
  absl::StatusOr<bool> ProcessQueue(uint32_t index, Queue& queue,
                                    const memory::GuestMemory& mem) override;

  const BlockState& state() const { return state_; }
  // The last malformed request, for the VMM's log ("" if none).
  const std::string& last_error() const { return last_error_; }

 private:
  Block(BlockConfig config, base::UniqueFd fd, uint64_t capacity_sectors)
      : config_(std::move(config)), fd_(std::move(fd)) {
    state_.capacity_sectors = capacity_sectors;
  }
  // Handles one request; returns (status byte, bytes written into guest buffers).
  std::pair<uint8_t, uint32_t> Handle(const memory::GuestMemory& mem,
                                      const DescriptorChain& chain, const Descriptor& status_desc);

  BlockConfig config_;
  base::UniqueFd fd_;
  BlockState state_;
  std::string last_error_;
};

}  // namespace supermachine::devices::virtio
