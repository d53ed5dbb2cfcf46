// File: vm_fd.h
// VmFd: owner of a KVM VM fd; one wrapper per VM ioctl (memory slots, irqchip, PIT, TSS,
// irqfd/ioeventfd, IRQ lines, vCPU creation). After Firecracker src/vmm/src/vstate/vm.rs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"

namespace supermachine::kvm {

class VmFd {
 public:
  explicit VmFd(base::UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }

  absl::Status SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size,
                                   void* host);
  absl::Status SetTssAddress(uint64_t addr);
  absl::Status SetIdentityMapAddress(uint64_t addr);
  absl::Status CreateIrqchip();
  absl::Status CreatePit2();
  // Asserts (level 1) or deasserts (0) an in-kernel irqchip input: the fallback when irqfd is
  // unavailable.
  absl::Status IrqLine(uint32_t gsi, bool level);
  absl::Status RegisterIrqfd(int event_fd, uint32_t gsi);
  absl::Status UnregisterIrqfd(int event_fd, uint32_t gsi);
  // An eventfd signalled (instead of an MMIO exit) when the guest writes `datamatch` (4 bytes)
  // to `mmio_addr`.
  absl::Status RegisterIoeventfd(int event_fd, uint64_t mmio_addr, uint32_t datamatch);
  absl::Status UnregisterIoeventfd(int event_fd, uint64_t mmio_addr, uint32_t datamatch);
  absl::StatusOr<base::UniqueFd> CreateVcpu(uint32_t id);
  int CheckExtension(int cap) const;

  // Snapshot state. KVM_GET_PIT2 / KVM_SET_PIT2 (needs CreatePit2 first).
  absl::StatusOr<kvm_pit_state2> GetPit2() const;
  absl::Status SetPit2(const kvm_pit_state2& pit);
  // KVM_GET_CLOCK / KVM_SET_CLOCK: the kvmclock base the guest's kvmclock pages derive from.
  absl::StatusOr<kvm_clock_data> GetClock() const;
  absl::Status SetClock(const kvm_clock_data& clock);
  // KVM_GET_IRQCHIP / KVM_SET_IRQCHIP for one chip: KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or
  // _IOAPIC (needs CreateIrqchip first).
  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id) const;
  absl::Status SetIrqchip(const kvm_irqchip& chip);

 private:
  base::UniqueFd fd_;
};

}  // namespace supermachine::kvm
