// File: cpuid.h
// CPUID normalisation for one vCPU: start from KVM_GET_SUPPORTED_CPUID, then set topology and
// APIC ids, the hypervisor bit, and hide leaves that describe the host rather than the guest.
// After Firecracker src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs, reduced to what Linux
// needs to boot and count CPUs correctly.
#pragma once

#include <array>
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
  // Leaves 0x80000002..4 (the processor brand string, 48 bytes as 12 registers). KVM reports
  // them as zeros and leaves them to the VMM; all-zero here leaves them alone.
  std::array<uint32_t, 12> brand{};
};

// The brand string registers of the CPU we run on (what `cpuid` 0x80000002..4 returns here).
std::array<uint32_t, 12> HostBrandString();

// Rewrites `cpuid` in place for one vCPU.
void NormalizeCpuid(const CpuidOptions& options, kvm::CpuidList* cpuid);

}  // namespace supermachine::arch
