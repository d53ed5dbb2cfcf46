// File: vm_fd.h
// VmFd: owner of a KVM VM fd; one wrapper per VM ioctl (memory slots, irqchip, PIT, TSS,
// irqfd/ioeventfd, IRQ lines, vCPU creation). After Firecracker src/vmm/src/vstate/vm.rs.
#pragma once

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

 private:
  base::UniqueFd fd_;
};

}  // namespace supermachine::kvm
