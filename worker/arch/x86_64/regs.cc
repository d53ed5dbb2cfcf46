// File: regs.cc
// Boot register, descriptor-table and page-table setup.
#include "worker/arch/x86_64/regs.h"

#include "worker/arch/x86_64/layout.h"
#include "worker/base/status_macros.h"

namespace supermachine::arch {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;
// Page-table entry bits: present | writable, and PS (2 MiB page) in the PD.
constexpr uint64_t kPtePresentRw = 0x3;
constexpr uint64_t kPdePs = 0x80;

absl::Status WriteIdentityPageTables(const memory::GuestMemory& mem) {
  SM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kPml4Addr, kPdptAddr | kPtePresentRw));
  SM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kPdptAddr, kPdAddr | kPtePresentRw));
  // 512 × 2 MiB = the first GiB, identity-mapped: enough for the kernel image, zero page and
  // command line; the kernel builds its real page tables before touching anything above.
  for (uint64_t i = 0; i < 512; ++i) {
    SM_RETURN_IF_ERROR(
        mem.WriteObj<uint64_t>(kPdAddr + i * 8, (i << 21) | kPtePresentRw | kPdePs));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BootRegs> SetupBootRegs(const memory::GuestMemory& mem, BootMode mode,
                                       uint64_t entry, uint64_t boot_info) {
  BootGdt gdt = MakeBootGdt(mode);
  for (size_t i = 0; i < gdt.entries.size(); ++i) {
    SM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kGdtAddr + i * 8, gdt.entries[i]));
  }
  SM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kIdtAddr, 0));

  BootRegs out;
  kvm_sregs& s = out.sregs;
  s.gdt.base = kGdtAddr;
  s.gdt.limit = static_cast<uint16_t>(gdt.entries.size() * 8 - 1);
  s.idt.base = kIdtAddr;
  s.idt.limit = 7;
  s.cs = SegmentFromGdt(gdt.entries[gdt.code_index], gdt.code_index);
  kvm_segment data = SegmentFromGdt(gdt.entries[gdt.data_index], gdt.data_index);
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.tr = SegmentFromGdt(gdt.entries[gdt.tss_index], gdt.tss_index);

  if (mode == BootMode::kLong64) {
    SM_RETURN_IF_ERROR(WriteIdentityPageTables(mem));
    // Long mode needs PAE + LME before PG; setting them all at once through KVM_SET_SREGS is
    // allowed because KVM validates the final state, not a sequence of writes.
    s.cr3 = kPml4Addr;
    s.cr4 = kCr4Pae;
    s.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
    s.efer = kEferLme | kEferLma;
    out.regs.rsi = boot_info;
  } else {
    // PVH: 32-bit protected mode, paging off (xen/include/public/arch-x86/hvm/start_info.h).
    s.cr0 = kCr0Pe | kCr0Et;
    s.cr4 = 0;
    s.efer = 0;
    out.regs.rbx = boot_info;
  }
  out.regs.rip = entry;
  out.regs.rflags = 0x2;  // Bit 1 is reserved-as-one; interrupts stay off until the kernel.
  out.regs.rsp = kBootStackTop;
  out.regs.rbp = kBootStackTop;

  // x87 control word and MXCSR at their reset values with all exceptions masked, as the
  // kernel's early FPU code expects (Firecracker setup_fpu).
  out.fpu.fcw = 0x37f;
  out.fpu.mxcsr = 0x1f80;
  return out;
}

void MergeBootSregs(const kvm_sregs& boot, kvm_sregs* current) {
  current->gdt = boot.gdt;
  current->idt = boot.idt;
  current->cs = boot.cs;
  current->ds = boot.ds;
  current->es = boot.es;
  current->fs = boot.fs;
  current->gs = boot.gs;
  current->ss = boot.ss;
  current->tr = boot.tr;
  current->cr0 = boot.cr0;
  current->cr3 = boot.cr3;
  current->cr4 = boot.cr4;
  current->efer = boot.efer;
}

}  // namespace supermachine::arch
