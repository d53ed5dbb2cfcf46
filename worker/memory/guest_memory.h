// File: guest_memory.h
// GuestMemory: the guest's RAM as memfd-backed shared mappings, one per guest-physical region,
// with bounds-checked access. Every address here may come from the guest, which is hostile: a
// range that is not wholly inside one region is refused, never clamped or asserted.
//
// The backing is a memfd (not anonymous memory) so a snapshot can later write the file out and a
// restore can mmap a RAM file MAP_PRIVATE in its place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/base/unique_fd.h"
#include "worker/memory/mapping.h"

namespace supermachine::memory {

using GuestAddress = uint64_t;

struct RegionSpec {
  GuestAddress guest_base = 0;
  uint64_t size = 0;  // Bytes; a multiple of the page size.
};

struct Region {
  GuestAddress guest_base = 0;
  uint64_t size = 0;
  uint64_t file_offset = 0;  // Where this region starts in the memfd.
  Mapping mapping;

  uint8_t* host() const { return mapping.data(); }
  bool Contains(GuestAddress addr, uint64_t len) const {
    return addr >= guest_base && len <= size && addr - guest_base <= size - len;
  }
};

// A region of a RAM file: where it sits in the guest and in the file.
struct FileRegionSpec {
  GuestAddress guest_base = 0;
  uint64_t size = 0;         // Bytes; a multiple of the page size.
  uint64_t file_offset = 0;  // Page-aligned.
};

class GuestMemory {
 public:
  // Creates one memfd holding all regions back to back. Regions must be page-aligned, non-empty
  // and must not overlap.
  static absl::StatusOr<GuestMemory> Create(const std::vector<RegionSpec>& specs);

  // Restore: maps the regions of the RAM file at `path` MAP_PRIVATE — copy-on-write, pages
  // faulted lazily from the page cache, so clones of one snapshot share every page they have
  // not written, and guest writes never reach the file. Checks first that the file covers
  // every region (a short file would SIGBUS the guest later, not fail here). fd() is then the
  // read-only RAM file.
  static absl::StatusOr<GuestMemory> CreatePrivateFromFile(
      const std::string& path, const std::vector<FileRegionSpec>& specs);

  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  const std::vector<Region>& regions() const { return regions_; }
  int fd() const { return fd_.get(); }
  // True when the regions map a RAM file privately (CreatePrivateFromFile): the guest's
  // writes live in anonymous copy-on-write pages, not in fd().
  bool is_private() const { return private_; }
  uint64_t total_size() const;
  // One past the highest guest-physical address backed by RAM.
  GuestAddress end() const;

  // Host pointer to [addr, addr+len) if that range lies inside one region, else OutOfRange.
  // len 0 is allowed and only checks addr.
  absl::StatusOr<uint8_t*> HostSlice(GuestAddress addr, uint64_t len) const;
  bool IsValidRange(GuestAddress addr, uint64_t len) const;

  // Allocates the pages of [addr, addr+len) now, in one call, instead of one fault per page
  // when they are first written (MADV_POPULATE_WRITE). For ranges the VMM is about to fill,
  // e.g. the kernel image. Best effort: a kernel without it just faults as usual.
  void Prefault(GuestAddress addr, uint64_t len) const;

  absl::Status Read(GuestAddress addr, absl::Span<uint8_t> out) const;
  absl::Status Write(GuestAddress addr, absl::Span<const uint8_t> in) const;

  // Plain-old-data helpers. Unaligned-safe (memcpy).
  template <typename T>
  absl::StatusOr<T> ReadObj(GuestAddress addr) const {
    T value;
    absl::Status st = Read(addr, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    if (!st.ok()) {
      return st;
    }
    return value;
  }
  template <typename T>
  absl::Status WriteObj(GuestAddress addr, const T& value) const {
    return Write(addr, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

 private:
  GuestMemory() = default;
  const Region* FindRegion(GuestAddress addr, uint64_t len) const;

  base::UniqueFd fd_;
  std::vector<Region> regions_;
  bool private_ = false;
};

}  // namespace supermachine::memory
