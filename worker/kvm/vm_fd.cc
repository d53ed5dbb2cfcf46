// File: vm_fd.cc
// KVM VM ioctls.
#include "worker/kvm/vm_fd.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"

namespace supermachine::kvm {

absl::Status VmFd::SetUserMemoryRegion(uint32_t slot, uint64_t guest_phys, uint64_t size,
                                       void* host) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.guest_phys_addr = guest_phys;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    return base::ErrnoToStatus(
        errno, absl::StrFormat("KVM_SET_USER_MEMORY_REGION slot %u at 0x%x size 0x%x", slot,
                               guest_phys, size));
  }
  return absl::OkStatus();
}

absl::Status VmFd::SetTssAddress(uint64_t addr) {
  if (ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    return base::ErrnoToStatus(errno, "KVM_SET_TSS_ADDR");
  }
  return absl::OkStatus();
}

absl::Status VmFd::SetIdentityMapAddress(uint64_t addr) {
  uint64_t a = addr;
  if (ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &a) < 0) {
    return base::ErrnoToStatus(errno, "KVM_SET_IDENTITY_MAP_ADDR");
  }
  return absl::OkStatus();
}

absl::Status VmFd::CreateIrqchip() {
  if (ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) {
    return base::ErrnoToStatus(errno, "KVM_CREATE_IRQCHIP");
  }
  return absl::OkStatus();
}

absl::Status VmFd::CreatePit2() {
  kvm_pit_config config{};
  // A dummy speaker port: the guest's PC-speaker probes must not reach userspace.
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) {
    return base::ErrnoToStatus(errno, "KVM_CREATE_PIT2");
  }
  return absl::OkStatus();
}

absl::Status VmFd::IrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_IRQ_LINE gsi ", gsi));
  }
  return absl::OkStatus();
}

absl::Status VmFd::RegisterIrqfd(int event_fd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event_fd);
  irqfd.gsi = gsi;
  if (ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_IRQFD gsi ", gsi));
  }
  return absl::OkStatus();
}

absl::Status VmFd::UnregisterIrqfd(int event_fd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event_fd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_IRQFD deassign gsi ", gsi));
  }
  return absl::OkStatus();
}

absl::Status VmFd::RegisterIoeventfd(int event_fd, uint64_t mmio_addr, uint32_t datamatch) {
  kvm_ioeventfd io{};
  io.datamatch = datamatch;
  io.addr = mmio_addr;
  io.len = 4;
  io.fd = event_fd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    return base::ErrnoToStatus(errno, absl::StrFormat("KVM_IOEVENTFD at 0x%x", mmio_addr));
  }
  return absl::OkStatus();
}

absl::Status VmFd::UnregisterIoeventfd(int event_fd, uint64_t mmio_addr, uint32_t datamatch) {
  kvm_ioeventfd io{};
  io.datamatch = datamatch;
  io.addr = mmio_addr;
  io.len = 4;
  io.fd = event_fd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    return base::ErrnoToStatus(errno, "KVM_IOEVENTFD deassign");
  }
  return absl::OkStatus();
}

absl::StatusOr<base::UniqueFd> VmFd::CreateVcpu(uint32_t id) {
  int r = ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (r < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_CREATE_VCPU ", id));
  }
  return base::UniqueFd(r);
}

int VmFd::CheckExtension(int cap) const {
  int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

absl::StatusOr<kvm_pit_state2> VmFd::GetPit2() const {
  kvm_pit_state2 pit{};
  if (ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) {
    return base::ErrnoToStatus(errno, "KVM_GET_PIT2");
  }
  return pit;
}

absl::Status VmFd::SetPit2(const kvm_pit_state2& pit) {
  if (ioctl(fd_.get(), KVM_SET_PIT2, &pit) < 0) {
    return base::ErrnoToStatus(errno, "KVM_SET_PIT2");
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_clock_data> VmFd::GetClock() const {
  kvm_clock_data clock{};
  if (ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) {
    return base::ErrnoToStatus(errno, "KVM_GET_CLOCK");
  }
  return clock;
}

absl::Status VmFd::SetClock(const kvm_clock_data& clock) {
  if (ioctl(fd_.get(), KVM_SET_CLOCK, &clock) < 0) {
    return base::ErrnoToStatus(errno, "KVM_SET_CLOCK");
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_irqchip> VmFd::GetIrqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_GET_IRQCHIP chip ", chip_id));
  }
  return chip;
}

absl::Status VmFd::SetIrqchip(const kvm_irqchip& chip) {
  if (ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip) < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("KVM_SET_IRQCHIP chip ", chip.chip_id));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::kvm
