// File: kvm.cc
// /dev/kvm system ioctls.
#include "worker/kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::kvm {

CpuidList::CpuidList() : storage_(new uint8_t[kBytes]()) { set_size(kMaxEntries); }

CpuidList CpuidList::Clone() const {
  CpuidList copy;
  std::memcpy(copy.storage_.get(), storage_.get(), kBytes);
  return copy;
}

absl::StatusOr<Kvm> Kvm::Open(const std::string& path) {
  base::UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    return base::Annotate(base::ErrnoToStatus(errno, absl::StrCat("open ", path)),
                          "KVM is needed to run a VM (is the kvm module loaded and are you in "
                          "the kvm group?)");
  }
  int version = ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": KVM API version ", version, ", need ", KVM_API_VERSION));
  }
  return Kvm(std::move(fd));
}

int Kvm::CheckExtension(int cap) const {
  int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

absl::StatusOr<int> Kvm::VcpuMmapSize() const {
  int r = ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r < 0) {
    return base::ErrnoToStatus(errno, "KVM_GET_VCPU_MMAP_SIZE");
  }
  return r;
}

absl::StatusOr<CpuidList> Kvm::SupportedCpuid() const {
  CpuidList list;
  if (ioctl(fd_.get(), kIoctlGetSupportedCpuid, list.data()) < 0) {
    return base::ErrnoToStatus(errno, "KVM_GET_SUPPORTED_CPUID");
  }
  return list;
}

absl::StatusOr<std::vector<uint32_t>> Kvm::MsrIndexList() const {
  // First ask with room for none: KVM answers E2BIG and writes the count it needs.
  MsrListHeader probe{.nmsrs = 0};
  if (ioctl(fd_.get(), kIoctlGetMsrIndexList, &probe) < 0 && errno != E2BIG) {
    return base::ErrnoToStatus(errno, "KVM_GET_MSR_INDEX_LIST");
  }
  const uint32_t n = probe.nmsrs;
  std::vector<uint32_t> buf(1 + n);  // header word + indices
  buf[0] = n;
  if (ioctl(fd_.get(), kIoctlGetMsrIndexList, buf.data()) < 0) {
    return base::ErrnoToStatus(errno, "KVM_GET_MSR_INDEX_LIST");
  }
  const uint32_t got = std::min(buf[0], n);
  return std::vector<uint32_t>(buf.begin() + 1, buf.begin() + 1 + got);
}

absl::StatusOr<base::UniqueFd> Kvm::CreateVm() const {
  // Retry on EINTR: KVM_CREATE_VM can be interrupted while the kernel sets up the MMU.
  int r;
  do {
    r = ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    return base::ErrnoToStatus(errno, "KVM_CREATE_VM");
  }
  return base::UniqueFd(r);
}

}  // namespace supermachine::kvm
