// File: device.h
// VirtioDevice: what a device (block, rng, ...) gives the transport — its type, features,
// config space and queue processing. The transport owns negotiation, status and queue setup
// (kvmtool's split of virtio/mmio.c from virtio/rng.c). Calls arrive with the transport's lock
// held, so a device needs no locking of its own for state the transport reaches.
//
// Devices driven by the host as well as by the guest (vsock now, net later) also expose a
// pollable fd: the VM's event loop watches it and, when it is readable, calls
// ProcessHostEvents through the transport, with the lock held and all queues at hand, so the
// device can fill rx queues and have the interrupt raised like after a notification.
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
inline constexpr uint32_t kDeviceTypeVsock = 19;

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
  // A device implements this or, when its queues interact, ProcessQueues.
  virtual absl::StatusOr<bool> ProcessQueue(uint32_t index, Queue& queue,
                                            const memory::GuestMemory& mem) {
    return absl::UnimplementedError(name() + ": ProcessQueue");
  }
  // What the transport calls on a notification of queue `index`, with every queue of the
  // device: for devices that answer on one queue what arrives on another (vsock replies on
  // rx to packets from tx). A queue other than `index` may not be ready: check
  // queue.state().ready before using it. The default handles `index` alone.
  virtual absl::StatusOr<bool> ProcessQueues(uint32_t index, absl::Span<Queue> queues,
                                             const memory::GuestMemory& mem) {
    return ProcessQueue(index, queues[index], mem);
  }
  // A level-triggered pollable fd (EPOLLIN) that the VM's event loop watches for this device,
  // or -1. Fixed for the device's lifetime (a device with changing sources keeps its own
  // epoll set and returns that).
  virtual int host_event_fd() const { return -1; }
  // host_event_fd() is readable. Called whatever the driver status (the device must consume
  // the readiness, or the loop spins; it must check its own activation and queue readiness
  // before touching queues). Returns true when used entries were added.
  virtual absl::StatusOr<bool> ProcessHostEvents(absl::Span<Queue> queues,
                                                 const memory::GuestMemory& mem) {
    return false;
  }
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
