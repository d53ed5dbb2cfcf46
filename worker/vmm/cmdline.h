// File: cmdline.h
// Builds the guest kernel command line: the user's line plus one
// `virtio_mmio.device=4K@0x<base>:<irq>` per device (drivers/virtio/virtio_mmio.c), checked
// against the kernel's limit so a truncated line (silently losing devices) is an error instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::vmm {

struct MmioDeviceSlot {
  uint64_t base = 0;
  uint32_t irq = 0;
};

// The x86 kernel's COMMAND_LINE_SIZE (2048 in 6.1) including the NUL, used when the image does
// not state its own (ELF vmlinux).
inline constexpr uint32_t kDefaultCmdlineLimit = 2048;

// `limit` counts bytes including the terminating NUL.
absl::StatusOr<std::string> BuildKernelCmdline(absl::string_view base,
                                               const std::vector<MmioDeviceSlot>& devices,
                                               uint32_t limit);

// Window and IRQ of virtio device number `index` (0-based): consecutive 4 KiB windows from
// kVirtioMmioBase; IRQs kFirstVirtioIrq..kLastVirtioIrq, then shared round-robin.
MmioDeviceSlot VirtioSlot(uint32_t index);

}  // namespace supermachine::vmm
