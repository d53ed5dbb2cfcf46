// File: cpuid.h
// CPUID normalisation for one vCPU: start from KVM_GET_SUPPORTED_CPUID, then set topology and
// APIC ids, the hypervisor bit, and hide leaves that describe the host rather than the guest.
// After Firecracker src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs, reduced to what Linux
// needs to boot and count CPUs correctly.
#pragma once

#include <cstdint>

#include "worker/kvm/kvm.h"

namespace supermachine::arch {

struct CpuidOptions {
  uint32_t vcpu_id = 0;
  uint32_t vcpu_count = 1;
  // KVM_CAP_TSC_DEADLINE_TIMER: KVM_GET_SUPPORTED_CPUID never reports the TSC-deadline bit
  // because it depends on the in-kernel LAPIC; the VMM sets it when the cap is there. Without
  // it Linux programs the LAPIC timer through MMIO and calibrates it at boot (~0.1 s of ticks).
  bool tsc_deadline = false;
};

// Rewrites `cpuid` in place for one vCPU.
void NormalizeCpuid(const CpuidOptions& options, kvm::CpuidList* cpuid);

}  // namespace supermachine::arch
