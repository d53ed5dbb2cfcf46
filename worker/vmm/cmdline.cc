// File: cmdline.cc
// Kernel command line assembly.
#include "worker/vmm/cmdline.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/arch/x86_64/layout.h"

namespace supermachine::vmm {

MmioDeviceSlot VirtioSlot(uint32_t index) {
  constexpr uint32_t kPins = arch::kLastVirtioIrq - arch::kFirstVirtioIrq + 1;
  return {.base = arch::kVirtioMmioBase + static_cast<uint64_t>(index) * arch::kVirtioMmioSize,
          .irq = arch::kFirstVirtioIrq + index % kPins};
}

absl::StatusOr<std::string> BuildKernelCmdline(absl::string_view base,
                                               const std::vector<MmioDeviceSlot>& devices,
                                               uint32_t limit) {
  if (base.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("kernel command line contains a NUL byte");
  }
  std::string line(base);
  for (const MmioDeviceSlot& d : devices) {
    if (!line.empty()) {
      line += ' ';
    }
    absl::StrAppendFormat(&line, "virtio_mmio.device=4K@0x%x:%u", d.base, d.irq);
  }
  if (limit == 0) {
    limit = kDefaultCmdlineLimit;
  }
  if (line.size() + 1 > limit || line.size() + 1 > arch::kCmdlineMaxSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel command line is ", line.size() + 1, " bytes with ", devices.size(),
        " virtio devices; the kernel accepts ", limit,
        " (COMMAND_LINE_SIZE). Use fewer disks or a kernel built with a larger "
        "COMMAND_LINE_SIZE"));
  }
  return line;
}

}  // namespace supermachine::vmm
