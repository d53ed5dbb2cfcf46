// File: sqfs_fd_file.h
// A libsquashfs sqfs_file_t over a file descriptor we own elsewhere (a base::UniqueFd), so the
// converter controls how the file is opened (O_CLOEXEC, mkostemp), fsynced and renamed.
// libsquashfs's own sqfs_open_file() opens without O_CLOEXEC and owns the fd.
#pragma once

#include <sqfs/io.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "daemon/layer/sqfs_handles.h"

namespace supermachine::layer {

// Wraps `fd` (not owned: it must outlive the returned object). `size` is the current file
// size (0 for a fresh file). Reads and writes use pread/pwrite and retry on EINTR.
absl::StatusOr<SqfsPtr<sqfs_file_t>> MakeSqfsFdFile(int fd, uint64_t size);

// The errno of the first failed write through a file made by MakeSqfsFdFile (0: none), which
// libsquashfs itself only reports as SQFS_ERROR_IO.
int SqfsFdFileWriteErrno(const sqfs_file_t* file);

// As above for reading an existing file: takes the size from fstat.
absl::StatusOr<SqfsPtr<sqfs_file_t>> MakeSqfsFdFileForRead(int fd);

}  // namespace supermachine::layer
