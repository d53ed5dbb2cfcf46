// File: device.h
// VirtioDevice: what a device (block, rng, ...) gives the transport — its type, features,
// config space and queue processing. The transport owns negotiation, status and queue setup
// (kvmtool's split of virtio/mmio.c from virtio/rng.c). Calls arrive with the transport's lock
// held, so a device needs no locking of its own for state the transport reaches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "worker/devices/virtio/queue.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::devices::virtio {

inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;  // VIRTIO_F_VERSION_1

inline constexpr uint32_t kDeviceTypeBlock = 2;
inline constexpr uint32_t kDeviceTypeRng = 4;

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_type() const = 0;
  virtual std::string name() const = 0;
  // Offered features, including kFeatureVersion1.
  virtual uint64_t features() const = 0;
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  // Reads/writes of the device config space (offset from 0x100). Out-of-range bytes read 0 and
  // writes to them are ignored, as the spec allows.
  virtual void ReadConfig(uint64_t offset, absl::Span<uint8_t> out) const = 0;
  virtual void WriteConfig(uint64_t offset, absl::Span<const uint8_t> in) {}
  // The driver acknowledged `features` (⊆ features()) and set DRIVER_OK.
  virtual void Activate(uint64_t acked_features) {}
  // Processes what the driver published on queue `index`. Returns true when used entries were
  // added (the transport then raises the interrupt). Errors are for the VMM's log only: a bad
  // request must already have been completed with an error status for the guest.
  virtual absl::StatusOr<bool> ProcessQueue(uint32_t index, Queue& queue,
                                            const memory::GuestMemory& mem) = 0;
  // Driver reset (status 0): forget per-session state.
  virtual void Reset() {}
};

// Helpers for devices: gather readable descriptors / scatter into writable ones.
// Copies up to out.size() bytes from the chain's device-readable descriptors, starting at
// byte `skip` of the readable stream. Returns bytes copied.
absl::StatusOr<uint64_t> ReadFromChain(const memory::GuestMemory& mem,
                                       const DescriptorChain& chain, uint64_t skip,
                                       absl::Span<uint8_t> out);

}  // namespace supermachine::devices::virtio
