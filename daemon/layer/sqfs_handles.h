// File: sqfs_handles.h
// RAII owners for libsquashfs and libarchive objects, and a libsquashfs error → Status helper.
#pragma once

#include <archive.h>
#include <sqfs/error.h>
#include <sqfs/predef.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace supermachine::layer {

// Every libsquashfs object starts with sqfs_object_t; sqfs_destroy() calls its destructor.
struct SqfsObjectDeleter {
  void operator()(void* object) const { sqfs_destroy(object); }
};
template <typename T>
using SqfsPtr = std::unique_ptr<T, SqfsObjectDeleter>;

// Plain buffers allocated by libsquashfs (inodes, tree nodes) are released with sqfs_free.
struct SqfsFreeDeleter {
  void operator()(void* ptr) const { sqfs_free(ptr); }
};
template <typename T>
using SqfsMallocPtr = std::unique_ptr<T, SqfsFreeDeleter>;

struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchiveReadPtr = std::unique_ptr<struct archive, ArchiveReadDeleter>;

// Text for a libsquashfs SQFS_ERROR_* code.
const char* SqfsErrorText(int code);

// Maps a libsquashfs error code to a Status: corruption → DataLoss, allocation →
// ResourceExhausted, I/O → Unavailable (the disk may recover), the rest → Internal.
absl::Status SqfsError(int code, absl::string_view context);

}  // namespace supermachine::layer
