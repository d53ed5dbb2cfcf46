// File: guest_memory.cc
// memfd-backed guest RAM and its bounds-checked accessors.
#include "worker/memory/guest_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/base/status_macros.h"

namespace supermachine::memory {

absl::StatusOr<GuestMemory> GuestMemory::Create(const std::vector<RegionSpec>& specs) {
  if (specs.empty()) {
    return absl::InvalidArgumentError("guest memory: no regions");
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::vector<RegionSpec> sorted = specs;
  std::sort(sorted.begin(), sorted.end(),
            [](const RegionSpec& a, const RegionSpec& b) { return a.guest_base < b.guest_base; });
  uint64_t total = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const RegionSpec& s = sorted[i];
    if (s.size == 0 || s.size % page != 0 || s.guest_base % page != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory region at 0x%x size 0x%x: must be non-empty and page-aligned",
          s.guest_base, s.size));
    }
    if (s.guest_base + s.size < s.guest_base) {
      return absl::InvalidArgumentError("guest memory region wraps the address space");
    }
    if (i > 0 && sorted[i - 1].guest_base + sorted[i - 1].size > s.guest_base) {
      return absl::InvalidArgumentError("guest memory regions overlap");
    }
    total += s.size;
  }

  GuestMemory mem;
  mem.fd_ = base::UniqueFd(memfd_create("supermachine-guest-ram", MFD_CLOEXEC));
  if (!mem.fd_.valid()) {
    return base::ErrnoToStatus(errno, "memfd_create for guest RAM");
  }
  if (ftruncate(mem.fd_.get(), static_cast<off_t>(total)) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("size guest RAM memfd to ", total, " bytes"));
  }
  uint64_t offset = 0;
  for (const RegionSpec& s : sorted) {
    // MAP_NORESERVE: untouched guest pages cost nothing; MAP_SHARED so the memfd (and a later
    // snapshot write-out) sees exactly what the guest wrote.
    SM_ASSIGN_OR_RETURN(Mapping m, Mapping::Map(mem.fd_.get(), s.size, PROT_READ | PROT_WRITE,
                                                MAP_SHARED | MAP_NORESERVE,
                                                static_cast<off_t>(offset)));
    mem.regions_.push_back(Region{.guest_base = s.guest_base,
                                  .size = s.size,
                                  .file_offset = offset,
                                  .mapping = std::move(m)});
    offset += s.size;
  }
  return mem;
}

absl::StatusOr<GuestMemory> GuestMemory::CreatePrivateFromFile(
    const std::string& path, const std::vector<FileRegionSpec>& specs) {
  if (specs.empty()) {
    return absl::InvalidArgumentError("guest memory: no regions");
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::vector<FileRegionSpec> sorted = specs;
  std::sort(sorted.begin(), sorted.end(), [](const FileRegionSpec& a, const FileRegionSpec& b) {
    return a.guest_base < b.guest_base;
  });
  uint64_t needed = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const FileRegionSpec& s = sorted[i];
    if (s.size == 0 || s.size % page != 0 || s.guest_base % page != 0 ||
        s.file_offset % page != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory region at 0x%x size 0x%x file offset 0x%x: must be non-empty and "
          "page-aligned",
          s.guest_base, s.size, s.file_offset));
    }
    if (s.guest_base + s.size < s.guest_base || s.file_offset + s.size < s.file_offset) {
      return absl::InvalidArgumentError("guest memory region wraps the address space");
    }
    if (i > 0 && sorted[i - 1].guest_base + sorted[i - 1].size > s.guest_base) {
      return absl::InvalidArgumentError("guest memory regions overlap");
    }
    needed = std::max(needed, s.file_offset + s.size);
  }

  GuestMemory mem;
  mem.private_ = true;
  mem.fd_ = base::UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem.fd_.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("open RAM file ", path));
  }
  struct stat st {};
  if (fstat(mem.fd_.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat RAM file ", path));
  }
  if (static_cast<uint64_t>(st.st_size) < needed) {
    return absl::DataLossError(absl::StrFormat(
        "RAM file %s is %d bytes but the snapshot's memory layout needs %d: the file is "
        "truncated or belongs to another snapshot",
        path, st.st_size, needed));
  }
  for (const FileRegionSpec& s : sorted) {
    // PROT_WRITE on a read-only fd is allowed for MAP_PRIVATE: writes go to private copies.
    SM_ASSIGN_OR_RETURN(Mapping m,
                        Mapping::Map(mem.fd_.get(), s.size, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_NORESERVE,
                                     static_cast<off_t>(s.file_offset)));
    mem.regions_.push_back(Region{.guest_base = s.guest_base,
                                  .size = s.size,
                                  .file_offset = s.file_offset,
                                  .mapping = std::move(m)});
  }
  return mem;
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const Region& r : regions_) {
    total += r.size;
  }
  return total;
}

GuestAddress GuestMemory::end() const {
  return regions_.empty() ? 0 : regions_.back().guest_base + regions_.back().size;
}

const Region* GuestMemory::FindRegion(GuestAddress addr, uint64_t len) const {
  for (const Region& r : regions_) {
    if (r.Contains(addr, len)) {
      return &r;
    }
  }
  return nullptr;
}

bool GuestMemory::IsValidRange(GuestAddress addr, uint64_t len) const {
  return FindRegion(addr, len) != nullptr;
}

absl::StatusOr<uint8_t*> GuestMemory::HostSlice(GuestAddress addr, uint64_t len) const {
  const Region* r = FindRegion(addr, len);
  if (r == nullptr) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest range [0x%x, +0x%x) is not inside guest RAM", addr, len));
  }
  return r->host() + (addr - r->guest_base);
}

void GuestMemory::Prefault(GuestAddress addr, uint64_t len) const {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack it.
#endif
  absl::StatusOr<uint8_t*> host = HostSlice(addr, len);
  if (!host.ok() || len == 0) {
    return;
  }
  // madvise wants a page-aligned start: step back to the page boundary (region bases are
  // page-aligned, so this stays inside the mapping) and round the length up.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t head = (addr - FindRegion(addr, len)->guest_base) % page;
  const uint64_t span = (head + len + page - 1) / page * page;
  (void)madvise(*host - head, span, MADV_POPULATE_WRITE);
}

absl::Status GuestMemory::Read(GuestAddress addr, absl::Span<uint8_t> out) const {
  SM_ASSIGN_OR_RETURN(uint8_t * src, HostSlice(addr, out.size()));
  if (!out.empty()) {
    std::memcpy(out.data(), src, out.size());
  }
  return absl::OkStatus();
}

absl::Status GuestMemory::Write(GuestAddress addr, absl::Span<const uint8_t> in) const {
  SM_ASSIGN_OR_RETURN(uint8_t * dst, HostSlice(addr, in.size()));
  if (!in.empty()) {
    std::memcpy(dst, in.data(), in.size());
  }
  return absl::OkStatus();
}

}  // namespace supermachine::memory
