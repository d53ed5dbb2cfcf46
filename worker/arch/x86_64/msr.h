// File: msr.h
// Boot-time MSR values for every vCPU (after Firecracker src/vmm/src/arch/x86_64/msr.rs
// create_boot_msr_entries): syscall MSRs cleared, TSC at 0, fast strings on, MTRRs enabled
// with write-back default so the guest does not run uncached.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace supermachine::arch {

std::vector<kvm_msr_entry> BootMsrs();

}  // namespace supermachine::arch
