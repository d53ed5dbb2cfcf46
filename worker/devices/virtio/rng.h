// File: rng.h
// virtio-rng (virtio 1.x §5.4): fills each device-writable buffer with bytes from the host's
// getrandom(2). One request fills at most kMaxBytesPerRequest, whatever the guest asked for:
// the guest is hostile and must not make us produce (or block on) unbounded entropy
// (Firecracker devices/virtio/rng/device.rs bounds the same way with MAX_ENTROPY_BYTES).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "worker/devices/virtio/device.h"

namespace supermachine::devices::virtio {

struct RngState {
  uint64_t acked_features = 0;
  uint64_t bytes_served = 0;
};

class Rng : public VirtioDevice {
 public:
  static constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;

  // The entropy source; the default is getrandom(2). Tests inject a deterministic one.
  using Source = std::function<bool(absl::Span<uint8_t>)>;
  Rng();
  explicit Rng(Source source) : source_(std::move(source)) {}

  uint32_t device_type() const override { return kDeviceTypeRng; }
  std::string name() const override { return "virtio-rng"; }
  uint64_t features() const override { return kFeatureVersion1; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const override;
  void Activate(uint64_t acked) override { state_.acked_features = acked; }
  absl::StatusOr<bool> ProcessQueue(uint32_t index, Queue& queue,
                                    const memory::GuestMemory& mem) override;

  const RngState& state() const { return state_; }

 private:
  Source source_;
  RngState state_;
};

}  // namespace supermachine::devices::virtio
