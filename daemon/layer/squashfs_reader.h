// File: squashfs_reader.h
// Reads a squashfs image back into a FileTree with libsquashfs' reader API (directory reader,
// data reader, xattr reader). For tests and debugging, not for the guest's data path.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/layer/file_tree.h"

namespace supermachine::layer {

struct ReadOptions {
  // Regular files up to this size get their content read into FileEntry::content; larger
  // ones only their size (bounds memory on real images).
  uint64_t max_content_bytes = 1 << 20;
};

absl::StatusOr<FileTree> ReadSquashfsTree(const std::string& path, const ReadOptions& options);

}  // namespace supermachine::layer
