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

  // Snapshot state (worker/snapshot/ calls these in the documented order).
  absl::StatusOr<kvm_mp_state> GetMpState() const;
  absl::Status SetMpState(const kvm_mp_state& state);
  // The CPUID table set with KVM_SET_CPUID2.
  absl::StatusOr<CpuidList> GetCpuid() const;
  // `xsave2_size` is KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on the VM fd: > 0 selects
  // KVM_GET_XSAVE2 with a buffer of that many bytes; 0 falls back to KVM_GET_XSAVE (4096).
  absl::StatusOr<std::vector<uint8_t>> GetXsave(size_t xsave2_size) const;
  // KVM_SET_XSAVE reads as many bytes as the kernel's XSAVE2 size; `xsave` must hold at least
  // that many (a buffer from GetXsave with the same size does).
  absl::Status SetXsave(const std::vector<uint8_t>& xsave);
  absl::StatusOr<kvm_xcrs> GetXcrs() const;
  absl::Status SetXcrs(const kvm_xcrs& xcrs);
  absl::StatusOr<kvm_debugregs> GetDebugRegs() const;
  absl::Status SetDebugRegs(const kvm_debugregs& regs);
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() const;
  absl::Status SetVcpuEvents(const kvm_vcpu_events& events);
  // KVM_GET_TSC_KHZ / KVM_SET_TSC_KHZ (KVM_CAP_GET_TSC_KHZ / KVM_CAP_TSC_CONTROL).
  absl::StatusOr<uint32_t> GetTscKhz() const;
  absl::Status SetTscKhz(uint32_t khz);
  // Reads the MSRs in `indices`. KVM stops at the first it cannot read: the result may be
  // shorter than `indices` (entries [0, size) are valid, indices[size] failed).
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(const std::vector<uint32_t>& indices) const;
  // KVM_KVMCLOCK_CTRL: tells a kvmclock guest it was paused, so its soft-lockup watchdog does
  // not fire for the time it was stopped. EINVAL (the guest has no kvmclock) is not an error.
  absl::Status KvmclockCtrl();

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
