// File: gdt.cc
// GDT descriptor packing.
#include "worker/arch/x86_64/gdt.h"

namespace supermachine::arch {

uint64_t GdtEntry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((static_cast<uint64_t>(base) & 0xff000000ull) << (56 - 24)) |
         ((static_cast<uint64_t>(flags) & 0x0000f0ffull) << 40) |
         ((static_cast<uint64_t>(limit) & 0x000f0000ull) << (48 - 16)) |
         ((static_cast<uint64_t>(base) & 0x00ffffffull) << 16) |
         (static_cast<uint64_t>(limit) & 0x0000ffffull);
}

kvm_segment SegmentFromGdt(uint64_t entry, uint8_t index) {
  kvm_segment seg{};
  seg.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | (((entry >> 48) & 0xf) << 16));
  seg.g = static_cast<uint8_t>((entry >> 55) & 1);
  // With the granularity bit the limit counts 4 KiB pages; KVM wants bytes.
  seg.limit = seg.g ? ((limit << 12) | 0xfff) : limit;
  seg.selector = static_cast<uint16_t>(index * 8);
  seg.type = static_cast<uint8_t>((entry >> 40) & 0xf);
  seg.s = static_cast<uint8_t>((entry >> 44) & 1);
  seg.dpl = static_cast<uint8_t>((entry >> 45) & 3);
  seg.present = static_cast<uint8_t>((entry >> 47) & 1);
  seg.avl = static_cast<uint8_t>((entry >> 52) & 1);
  seg.l = static_cast<uint8_t>((entry >> 53) & 1);
  seg.db = static_cast<uint8_t>((entry >> 54) & 1);
  seg.unusable = seg.present ? 0 : 1;
  return seg;
}

BootGdt MakeBootGdt(BootMode mode) {
  // 0xa09b: present, DPL0, code exec/read, accessed, L=1, G=1 (64-bit).
  // 0xc09b: the same with D=1 instead of L (32-bit, for PVH).
  // 0xc093: present, data read/write, accessed, D/B=1, G=1.
  // 0x808b: present, 32-bit busy TSS (VMX refuses to enter with TR unusable).
  const uint16_t code = mode == BootMode::kLong64 ? 0xa09b : 0xc09b;
  BootGdt gdt;
  gdt.entries = {0, 0, GdtEntry(code, 0, 0xfffff), GdtEntry(0xc093, 0, 0xfffff),
                 GdtEntry(0x808b, 0, 0x67)};
  gdt.code_index = 2;
  gdt.data_index = 3;
  gdt.tss_index = 4;
  return gdt;
}

}  // namespace supermachine::arch
