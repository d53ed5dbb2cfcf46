// File: kvm.h
// Kvm: owner of the /dev/kvm system fd (API version check, capabilities, supported CPUID,
// vCPU mmap size). Each ioctl is wrapped once and returns a Status, after Firecracker
// src/vmm/src/vstate/kvm.rs.
#pragma once

#include <linux/kvm.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/base/unique_fd.h"
#include "worker/kvm/abi.h"

namespace supermachine::kvm {

// A kvm_cpuid2 with room for its entries, laid out as the kernel expects (see abi.h for why
// not the header's struct).
class CpuidList {
 public:
  static constexpr uint32_t kMaxEntries = 256;  // KVM_MAX_CPUID_ENTRIES
  CpuidList();
  // The buffer to pass to KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2.
  void* data() const { return storage_.get(); }
  uint32_t size() const { return header()->nent; }
  void set_size(uint32_t n) { header()->nent = n; }
  kvm_cpuid_entry2& at(uint32_t i) { return entries()[i]; }
  const kvm_cpuid_entry2& at(uint32_t i) const { return entries()[i]; }
  // Copy (the storage is heap-owned).
  CpuidList Clone() const;

 private:
  CpuidHeader* header() const { return reinterpret_cast<CpuidHeader*>(storage_.get()); }
  kvm_cpuid_entry2* entries() const {
    return reinterpret_cast<kvm_cpuid_entry2*>(storage_.get() + sizeof(CpuidHeader));
  }
  static constexpr size_t kBytes = sizeof(CpuidHeader) + kMaxEntries * sizeof(kvm_cpuid_entry2);
  std::unique_ptr<uint8_t[]> storage_;
};

class Kvm {
 public:
  // Opens `path` (normally /dev/kvm) and checks the stable API version (12).
  static absl::StatusOr<Kvm> Open(const std::string& path = "/dev/kvm");

  int fd() const { return fd_.get(); }
  // KVM_CHECK_EXTENSION: > 0 when supported (some caps return a count).
  int CheckExtension(int cap) const;
  absl::StatusOr<int> VcpuMmapSize() const;
  absl::StatusOr<CpuidList> SupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST: the MSRs KVM may save/restore for a vCPU. Some of them are not
  // readable on a given vCPU (depends on its CPUID); worker/snapshot filters by probing.
  absl::StatusOr<std::vector<uint32_t>> MsrIndexList() const;
  // KVM_CREATE_VM; the caller wraps the fd in a VmFd.
  absl::StatusOr<base::UniqueFd> CreateVm() const;

 private:
  explicit Kvm(base::UniqueFd fd) : fd_(std::move(fd)) {}
  base::UniqueFd fd_;
};

}  // namespace supermachine::kvm
