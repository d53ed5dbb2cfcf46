// File: vcpu_fd.h
// VcpuFd: owner of a KVM vCPU fd and its mmap'd kvm_run page; one wrapper per vCPU ioctl.
// After Firecracker src/vmm/src/vstate/vcpu.rs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"
#include "worker/kvm/kvm.h"
#include "worker/memory/mapping.h"

namespace supermachine::kvm {

class VcpuFd {
 public:
  static absl::StatusOr<VcpuFd> Create(base::UniqueFd fd, uint32_t id, int mmap_size);

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  kvm_run* run() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  // KVM_RUN. Returns the errno on failure (EINTR when kicked), 0 on a normal exit.
  int Run();

  absl::StatusOr<kvm_regs> GetRegs() const;
  absl::Status SetRegs(const kvm_regs& regs);
  absl::StatusOr<kvm_sregs> GetSregs() const;
  absl::Status SetSregs(const kvm_sregs& sregs);
  absl::Status SetFpu(const kvm_fpu& fpu);
  absl::Status SetCpuid(const CpuidList& cpuid);
  // Sets the given (index, value) MSRs; fails unless KVM accepted all of them.
  absl::Status SetMsrs(const std::vector<kvm_msr_entry>& entries);
  absl::StatusOr<kvm_lapic_state> GetLapic() const;
  absl::Status SetLapic(const kvm_lapic_state& lapic);

  // "rip=... rsp=... cr0=..." for error reports.
  std::string DumpRegisters() const;

 private:
  VcpuFd(base::UniqueFd fd, uint32_t id, memory::Mapping run)
      : fd_(std::move(fd)), id_(id), run_(std::move(run)) {}
  base::UniqueFd fd_;
  uint32_t id_;
  memory::Mapping run_;
};

}  // namespace supermachine::kvm
