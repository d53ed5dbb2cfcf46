// File: squashfs_image.h
// Opening an existing squashfs image with libsquashfs: super block, decompressor, and a cheap
// structural check used after writing and on cache hits.
#pragma once

#include <sqfs/compressor.h>
#include <sqfs/io.h>
#include <sqfs/super.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/layer/sqfs_handles.h"
#include "worker/base/unique_fd.h"

namespace supermachine::layer {

struct SquashfsImage {
  base::UniqueFd fd;
  SqfsPtr<sqfs_file_t> file;  // Reads through `fd`.
  sqfs_super_t super{};
  SqfsPtr<sqfs_compressor_t> decompressor;
};

// Opens `path` read-only and reads the super block and compressor options. DataLoss when the
// file is not a squashfs image or is shorter than its super block claims.
absl::StatusOr<SquashfsImage> OpenSquashfsImage(const std::string& path);
absl::StatusOr<SquashfsImage> OpenSquashfsImageFd(base::UniqueFd fd);

// Checks an opened image: zstd compressed, the root directory inode readable.
absl::Status VerifySquashfsImage(SquashfsImage& image);

}  // namespace supermachine::layer
