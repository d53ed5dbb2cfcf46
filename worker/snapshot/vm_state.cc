// File: vm_state.cc
// VM-wide KVM state to and from its snapshot message.
#include "worker/snapshot/vm_state.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::snapshot {
namespace {


template <typename T>
std::string ToBlob(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
absl::StatusOr<T> FromBlob(const std::string& blob, const char* name) {
  if (blob.size() != sizeof(T)) {
    return absl::DataLossError(absl::StrCat("vm ", name, ": ", blob.size(),
                                            " bytes saved, expected ", sizeof(T),
                                            "; the state file is corrupt or foreign"));
  }
  T value;
  std::memcpy(&value, blob.data(), sizeof(T));
  return value;
}

}  // namespace

absl::StatusOr<v1::VmState> SaveVmState(const kvm::VmFd& vm) {
  v1::VmState state;
  SM_ASSIGN_OR_RETURN(kvm_pit_state2 pit, vm.GetPit2());
  state.set_pit2(ToBlob(pit));
  SM_ASSIGN_OR_RETURN(kvm_clock_data clock, vm.GetClock());
  state.set_clock(ToBlob(clock));
  SM_ASSIGN_OR_RETURN(kvm_irqchip master, vm.GetIrqchip(KVM_IRQCHIP_PIC_MASTER));
  state.set_pic_master(ToBlob(master));
  SM_ASSIGN_OR_RETURN(kvm_irqchip slave, vm.GetIrqchip(KVM_IRQCHIP_PIC_SLAVE));
  state.set_pic_slave(ToBlob(slave));
  SM_ASSIGN_OR_RETURN(kvm_irqchip ioapic, vm.GetIrqchip(KVM_IRQCHIP_IOAPIC));
  state.set_ioapic(ToBlob(ioapic));
  return state;
}

absl::Status RestoreVmState(kvm::VmFd& vm, const v1::VmState& state) {
  SM_ASSIGN_OR_RETURN(kvm_pit_state2 pit, FromBlob<kvm_pit_state2>(state.pit2(), "pit2"));
  SM_ASSIGN_OR_RETURN(kvm_clock_data clock, FromBlob<kvm_clock_data>(state.clock(), "clock"));
  SM_ASSIGN_OR_RETURN(kvm_irqchip master, FromBlob<kvm_irqchip>(state.pic_master(), "pic_master"));
  SM_ASSIGN_OR_RETURN(kvm_irqchip slave, FromBlob<kvm_irqchip>(state.pic_slave(), "pic_slave"));
  SM_ASSIGN_OR_RETURN(kvm_irqchip ioapic, FromBlob<kvm_irqchip>(state.ioapic(), "ioapic"));
  if (master.chip_id != KVM_IRQCHIP_PIC_MASTER || slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
      ioapic.chip_id != KVM_IRQCHIP_IOAPIC) {
    return absl::DataLossError("vm irqchip: chip ids do not match PIC master/slave/IOAPIC; the "
                               "state file is corrupt");
  }
  SM_RETURN_IF_ERROR(base::Annotate(vm.SetPit2(pit), "restore pit2"));
  // Only the clock value: KVM_CLOCK_REALTIME/HOST_TSC would make KVM advance the guest clock by
  // the time the snapshot sat on disk (the agent sets the wall clock after restore instead,
  // and monotonic time continuing from the snapshot is what the guest expects), and
  // TSC_STABLE is an output flag that older kernels reject on input.
  clock.flags = 0;
  SM_RETURN_IF_ERROR(base::Annotate(vm.SetClock(clock), "restore clock"));
  SM_RETURN_IF_ERROR(base::Annotate(vm.SetIrqchip(master), "restore PIC master"));
  SM_RETURN_IF_ERROR(base::Annotate(vm.SetIrqchip(slave), "restore PIC slave"));
  SM_RETURN_IF_ERROR(base::Annotate(vm.SetIrqchip(ioapic), "restore IOAPIC"));
  return absl::OkStatus();
}

}  // namespace supermachine::snapshot
