// File: memory_file.h
// Guest RAM to and from a snapshot's memory file. Writing produces a sparse file: only pages
// that hold data are written, found cheaply — SEEK_DATA/SEEK_HOLE on the backing file skips
// never-touched ranges without reading them, /proc/self/pagemap adds the pages a restored
// (MAP_PRIVATE) guest wrote, and all-zero pages among those are skipped too. So a 256 MiB guest
// that touched 40 MiB writes about 40 MiB. Restoring maps the file MAP_PRIVATE
// (GuestMemory::CreatePrivateFromFile): nothing is copied up front.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "proto/snapshot.pb.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::snapshot {

struct MemoryFileStats {
  uint64_t file_size = 0;      // Apparent size (all regions back to back).
  uint64_t data_bytes = 0;     // Bytes actually written (non-zero pages).
  uint64_t scanned_bytes = 0;  // Bytes looked at (candidates for data).
};

// Writes every region of `mem` back to back to `path` (atomically: temp file, fsync, rename)
// and describes the result in `layout` (file_name = the last path component).
absl::StatusOr<MemoryFileStats> WriteMemoryFile(const memory::GuestMemory& mem,
                                                const std::string& path,
                                                ::supermachine::snapshot::v1::MemoryLayout* layout);

// Maps the memory file of `layout` (relative to `dir`) privately for a restored guest.
absl::StatusOr<memory::GuestMemory> MapMemoryFile(
    const std::string& dir, const ::supermachine::snapshot::v1::MemoryLayout& layout);

}  // namespace supermachine::snapshot
