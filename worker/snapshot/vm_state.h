// File: vm_state.h
// Save and restore of the VM-wide in-kernel devices: PIT (KVM_GET_PIT2), kvmclock
// (KVM_GET_CLOCK) and the irqchip (PIC master, PIC slave, IOAPIC). All vCPUs must be parked.
#pragma once

#include "absl/status/statusor.h"
#include "proto/snapshot.pb.h"
#include "worker/kvm/vm_fd.h"

namespace supermachine::snapshot {

absl::StatusOr<::supermachine::snapshot::v1::VmState> SaveVmState(const kvm::VmFd& vm);
// On a VM that has its irqchip and PIT created, after every vCPU is restored: pit2, clock,
// irqchip.
absl::Status RestoreVmState(kvm::VmFd& vm, const ::supermachine::snapshot::v1::VmState& state);

}  // namespace supermachine::snapshot
