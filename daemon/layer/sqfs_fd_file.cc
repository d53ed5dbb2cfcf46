// File: sqfs_fd_file.cc
// sqfs_file_t implementation over a borrowed file descriptor.
#include "daemon/layer/sqfs_fd_file.h"

#include <errno.h>

#include <atomic>
#include <sys/stat.h>
#include <unistd.h>

#include <new>

#include "worker/base/status_macros.h"

namespace supermachine::layer {
namespace {

// `base` must stay the first member: libsquashfs casts sqfs_file_t* to this struct.
struct FdFile {
  sqfs_file_t base;
  int fd;
  uint64_t size;
  // First failed write's errno: libsquashfs reduces it to SQFS_ERROR_IO, and "No space left
  // on device" is what a user needs to read (SqfsFdFileWriteErrno).
  std::atomic<int> write_errno;
};

FdFile* Self(sqfs_file_t* file) { return reinterpret_cast<FdFile*>(file); }
const FdFile* Self(const sqfs_file_t* file) { return reinterpret_cast<const FdFile*>(file); }

void Destroy(sqfs_object_t* object) { delete reinterpret_cast<FdFile*>(object); }

int ReadAt(sqfs_file_t* file, sqfs_u64 offset, void* buffer, size_t size) {
  FdFile* self = Self(file);
  char* out = static_cast<char*>(buffer);
  while (size > 0) {
    ssize_t n = ::pread(self->fd, out, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return SQFS_ERROR_IO;
    }
    if (n == 0) {
      return SQFS_ERROR_OUT_OF_BOUNDS;
    }
    out += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<sqfs_u64>(n);
  }
  return 0;
}

int WriteAt(sqfs_file_t* file, sqfs_u64 offset, const void* buffer, size_t size) {
  FdFile* self = Self(file);
  const char* in = static_cast<const char*>(buffer);
  while (size > 0) {
    ssize_t n = ::pwrite(self->fd, in, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int expected = 0;
      self->write_errno.compare_exchange_strong(expected, errno);
      return SQFS_ERROR_IO;
    }
    if (n == 0) {
      return SQFS_ERROR_IO;
    }
    in += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<sqfs_u64>(n);
  }
  if (offset > self->size) {
    self->size = offset;
  }
  return 0;
}

sqfs_u64 GetSize(const sqfs_file_t* file) { return Self(file)->size; }

int Truncate(sqfs_file_t* file, sqfs_u64 size) {
  FdFile* self = Self(file);
  if (::ftruncate(self->fd, static_cast<off_t>(size)) != 0) {
    return SQFS_ERROR_IO;
  }
  self->size = size;
  return 0;
}

}  // namespace

absl::StatusOr<SqfsPtr<sqfs_file_t>> MakeSqfsFdFile(int fd, uint64_t size) {
  auto* file = new (std::nothrow) FdFile{};
  if (file == nullptr) {
    return absl::ResourceExhaustedError("allocating squashfs file wrapper");
  }
  file->fd = fd;
  file->size = size;
  file->base.base.destroy = Destroy;
  file->base.base.copy = nullptr;  // sqfs_copy() then returns NULL: no library path needs it.
  file->base.read_at = ReadAt;
  file->base.write_at = WriteAt;
  file->base.get_size = GetSize;
  file->base.truncate = Truncate;
  return SqfsPtr<sqfs_file_t>(&file->base);
}

int SqfsFdFileWriteErrno(const sqfs_file_t* file) { return Self(file)->write_errno.load(); }

absl::StatusOr<SqfsPtr<sqfs_file_t>> MakeSqfsFdFileForRead(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return base::ErrnoToStatus(errno, "fstat squashfs image");
  }
  return MakeSqfsFdFile(fd, static_cast<uint64_t>(st.st_size));
}

}  // namespace supermachine::layer
