// File: regs.h
// Boot vCPU register state: the 64-bit Linux boot protocol (long mode, identity-mapped first
// GiB, rsi = zero page) or PVH (32-bit protected mode, paging off, ebx = start_info). Writes
// the GDT, IDT and page tables into guest memory and returns the register values to load;
// after Firecracker src/vmm/src/arch/x86_64/regs.rs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "absl/status/status.h"
#include "worker/arch/x86_64/gdt.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::arch {

struct BootRegs {
  kvm_regs regs{};
  // Only the fields SetBootSregs touches are meaningful; the caller merges them into the
  // vCPU's current sregs (which carry KVM's defaults for everything else).
  kvm_sregs sregs{};
  kvm_fpu fpu{};
};

// Writes GDT/IDT (and page tables for kLong64) and computes registers for the boot vCPU.
// `entry` is the guest-physical entry point; `boot_info` goes in rsi (kLong64: zero page) or
// rbx (kProtected32: PVH start_info).
absl::StatusOr<BootRegs> SetupBootRegs(const memory::GuestMemory& mem, BootMode mode,
                                       uint64_t entry, uint64_t boot_info);
// Copies the boot-relevant fields of `boot` into `current`.
void MergeBootSregs(const kvm_sregs& boot, kvm_sregs* current);

}  // namespace supermachine::arch
