// File: mmio.h
// The virtio-mmio version 2 transport (virtio 1.x §4.2.2): registers for identification,
// feature negotiation, status, queue setup and interrupts, in front of one VirtioDevice. It is
// a plain component: the VM maps it at a 4 KiB window and forwards MMIO exits (or ioeventfd
// notifications) to it; tests drive it directly. State is a plain struct (MmioState) that
// SaveState/RestoreState move in and out for snapshots.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/types/span.h"
#include "worker/devices/irq.h"
#include "worker/devices/virtio/device.h"
#include "worker/devices/virtio/queue.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::devices::virtio {

// Register offsets.
namespace reg {
inline constexpr uint64_t kMagic = 0x000;
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfig = 0x100;
}  // namespace reg

inline constexpr uint32_t kMmioMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kVendorId = 0x554d4551;   // Linux does not care; QEMU's value.

namespace status {
inline constexpr uint32_t kAcknowledge = 1;
inline constexpr uint32_t kDriver = 2;
inline constexpr uint32_t kDriverOk = 4;
inline constexpr uint32_t kFeaturesOk = 8;
inline constexpr uint32_t kNeedsReset = 64;
inline constexpr uint32_t kFailed = 128;
}  // namespace status

inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

struct MmioState {
  uint32_t device_status = 0;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint64_t acked_features = 0;
  uint32_t queue_sel = 0;
  uint32_t interrupt_status = 0;
  uint32_t config_generation = 0;
  std::vector<QueueState> queues;
};

class MmioTransport {
 public:
  MmioTransport(std::unique_ptr<VirtioDevice> device, const memory::GuestMemory* mem,
                IrqLine* irq);

  // `offset` within the 4 KiB window; `data` is the access (1, 2, 4 or 8 bytes).
  void Read(uint64_t offset, absl::Span<uint8_t> data);
  void Write(uint64_t offset, absl::Span<const uint8_t> data);
  // A queue notification (from an MMIO write to QueueNotify or its ioeventfd).
  void Notify(uint32_t queue_index);
  // The device's host_event_fd() (-1: none); the VM's event loop watches it.
  int host_event_fd();
  // host_event_fd() became readable: lets the device work, raises the interrupt if it used
  // buffers.
  void ProcessHostEvents();
  // Runs `fn` on the device and its queues with the lock held, as the transport's own calls
  // do, for device operations the VMM starts itself (e.g. vsock's transport reset after a
  // restore). `fn` returns whether it added used entries; the interrupt is raised if so.
  // Errors are recorded in last_error() and returned.
  using DeviceFn = std::function<absl::StatusOr<bool>(VirtioDevice&, absl::Span<Queue>,
                                                      const memory::GuestMemory&)>;
  absl::Status WithDevice(const DeviceFn& fn);

  // Runs `fn` on the device with the lock held for a config change the host makes (e.g. a new
  // balloon target); when it succeeds, bumps the config generation and, once the driver is
  // running (DRIVER_OK), raises the config-change interrupt so it re-reads the config
  // (§2.5.1, §4.2.3.3). A driver not running yet reads the config when it starts. `fn`'s
  // error is returned and nothing is signalled.
  using ConfigFn = std::function<absl::Status(VirtioDevice&, const memory::GuestMemory&)>;
  absl::Status ChangeConfig(const ConfigFn& fn);

  VirtioDevice& device() { return *device_; }
  size_t num_queues() const { return queues_.size(); }
  // The transport's registers and queues, for a snapshot (and tests). Safe while the device
  // runs; a snapshot takes it with the vCPUs parked and the event loop busy with it, so nothing
  // changes between this and the device-specific state.
  MmioState SaveState();
  // Puts the transport back into `state` as a fresh transport (never touched by a driver) in
  // one step: status, features, selectors, queues with their ring positions, interrupt bits
  // and config generation exactly as saved. The state comes from a file, so it is checked as
  // a driver's register writes would be (acked ⊆ offered with VERSION_1 once FEATURES_OK,
  // DRIVER_OK only after FEATURES_OK, queue sizes, ready rings inside guest memory) and
  // refused whole on the first violation (InvalidArgument; the transport is then unchanged).
  // Activates the device if DRIVER_OK is set and re-raises the interrupt if a bit is pending.
  absl::Status RestoreState(const MmioState& state);
  // Last device error for diagnostics ("" if none).
  std::string last_error();

 private:
  uint32_t ReadRegister(uint64_t offset);  // Requires mu_.
  void WriteRegister(uint64_t offset, uint32_t value);  // Requires mu_.
  void SetStatus(uint32_t value);  // Requires mu_.
  void ResetLocked();  // Requires mu_.
  void NotifyLocked(uint32_t queue_index);  // Requires mu_.
  // Records an error or raises the used-buffer interrupt after a device call. Requires mu_.
  void CompleteLocked(const absl::StatusOr<bool>& used, const std::string& what);
  Queue* SelectedQueue();  // Requires mu_.
  bool QueueConfigWritable() const;  // Requires mu_.

  std::mutex mu_;
  std::unique_ptr<VirtioDevice> device_ ABSL_GUARDED_BY(mu_);
  const memory::GuestMemory* mem_;  // Not owned; outlives the transport.
  IrqLine* irq_;                    // Not owned.
  MmioState state_ ABSL_GUARDED_BY(mu_);
  std::vector<Queue> queues_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::devices::virtio
