// File: gdt.h
// Boot GDT entries and their kvm_segment form (the same descriptors must be in guest memory and
// in the vCPU's hidden segment state, or the first segment reload changes them).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace supermachine::arch {

// Packs a descriptor from the access/flags word (as Linux's GDT_ENTRY), base and limit.
uint64_t GdtEntry(uint16_t flags, uint32_t base, uint32_t limit);
// The hidden-state view of descriptor `entry` at GDT index `index`.
kvm_segment SegmentFromGdt(uint64_t entry, uint8_t index);

enum class BootMode { kLong64, kProtected32 };

struct BootGdt {
  std::vector<uint64_t> entries;  // Written at kGdtAddr.
  uint8_t code_index;
  uint8_t data_index;
  uint8_t tss_index;
};
// null, null, code @0x10, data @0x18, TSS @0x20: 64-bit code for the Linux 64-bit entry, 32-bit
// code for PVH, which starts in protected mode with paging off.
BootGdt MakeBootGdt(BootMode mode);

}  // namespace supermachine::arch
