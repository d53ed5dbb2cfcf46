// File: cpuid.h
// CPUID normalisation for one vCPU: start from KVM_GET_SUPPORTED_CPUID, then set topology and
// APIC ids, the hypervisor bit, and hide leaves that describe the host rather than the guest.
// After Firecracker src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs, reduced to what Linux
// needs to boot and count CPUs correctly.
#pragma once

#include <cstdint>

#include "worker/kvm/kvm.h"

namespace supermachine::arch {

// Rewrites `cpuid` in place for vCPU `vcpu_id` of `vcpu_count`.
void NormalizeCpuid(uint32_t vcpu_id, uint32_t vcpu_count, kvm::CpuidList* cpuid);

}  // namespace supermachine::arch
