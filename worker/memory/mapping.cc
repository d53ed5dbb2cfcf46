// File: mapping.cc
// mmap/munmap for Mapping.
#include "worker/memory/mapping.h"

#include <errno.h>
#include <sys/mman.h>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::memory {

absl::StatusOr<Mapping> Mapping::Map(int fd, size_t size, int prot, int flags, off_t offset) {
  if (size == 0) {
    return absl::InvalidArgumentError("mmap: size must be non-zero");
  }
  void* addr = mmap(nullptr, size, prot, flags, fd, offset);
  if (addr == MAP_FAILED) {
    return base::ErrnoToStatus(errno, absl::StrCat("mmap ", size, " bytes"));
  }
  return Mapping(addr, size);
}

void Mapping::Reset() {
  if (addr_ != nullptr) {
    munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }
}

}  // namespace supermachine::memory
