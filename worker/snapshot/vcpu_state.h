// File: vcpu_state.h
// Save and restore of one vCPU's KVM state, each step in the order KVM needs (the reasons sit
// above the calls in vcpu_state.cc; after Firecracker src/vmm/src/arch/x86_64/vcpu.rs
// save_state/restore_state). The vCPU must not be inside KVM_RUN: the caller parks it first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/snapshot.pb.h"
#include "worker/kvm/kvm.h"
#include "worker/kvm/vcpu_fd.h"

namespace supermachine::snapshot {

// The MSRs of KVM_GET_MSR_INDEX_LIST that this vCPU can actually read: the list names MSRs
// that depend on CPUID bits the vCPU may not have (KVM_GET_MSRS stops at the first it refuses),
// so probe and drop each refused one, as cloud-hypervisor and Firecracker do. Call after
// KVM_SET_CPUID2 — the answer depends on it.
absl::StatusOr<std::vector<uint32_t>> SaveableMsrs(const kvm::Kvm& kvm, const kvm::VcpuFd& vcpu);

struct VcpuSaveOptions {
  // KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM fd; 0 without the cap.
  size_t xsave2_size = 0;
  // From SaveableMsrs (the same list serves every vCPU of a VM).
  std::vector<uint32_t> msrs;
  // The table the VMM set with KVM_SET_CPUID2 (saved as is); null: read it back with
  // KVM_GET_CPUID2. Prefer the table: some KVMs (PVM) answer KVM_GET_CPUID2 with more feature
  // bits than were set, which a restore on the same host would then refuse as missing.
  const kvm::CpuidList* cpuid = nullptr;
};

absl::StatusOr<::supermachine::snapshot::v1::VcpuState> SaveVcpu(const kvm::VcpuFd& vcpu,
                                                                  const VcpuSaveOptions& options);

// Applies `state` to a freshly created vCPU: tsc_khz, cpuid, mp_state, regs, sregs, xsave,
// xcrs, debugregs, lapic, msrs, vcpu_events. Errors name the step and the vCPU.
absl::Status RestoreVcpu(kvm::VcpuFd& vcpu, const ::supermachine::snapshot::v1::VcpuState& state);

// The CPUID table of a saved vCPU, for compatibility checks before anything is created.
kvm::CpuidList CpuidFromState(const ::supermachine::snapshot::v1::VcpuState& state);

}  // namespace supermachine::snapshot
