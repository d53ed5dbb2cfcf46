// File: file_tree.h
// A plain description of a filesystem tree (what a squashfs layer or a flattened image
// contains), for tests and debugging: read back from an image, stacked with overlayfs rules,
// compared and printed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace supermachine::layer {

enum class FileType { kRegular, kDirectory, kSymlink, kCharDevice, kBlockDevice, kFifo, kSocket };

const char* FileTypeName(FileType type);

struct FileEntry {
  FileType type = FileType::kRegular;
  uint32_t permissions = 0;  // mode & 07777 (setuid, setgid, sticky included).
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 0;
  std::map<std::string, std::string> xattrs;
  uint64_t size = 0;             // Regular files.
  bool content_read = false;     // Whether `content` holds the data (see ReadOptions).
  std::string content;           // Regular files.
  std::string symlink_target;    // Symlinks.
  uint32_t dev_major = 0;        // Devices.
  uint32_t dev_minor = 0;
  uint64_t inode_id = 0;  // Shared by hard links; unique within one tree.
  uint32_t nlink = 0;

  // overlayfs whiteout: character device 0:0.
  bool IsWhiteout() const;
  // Directory with trusted.overlay.opaque=y.
  bool IsOpaque() const;
};

// Absolute paths → entries: "/" is the root, then "/etc", "/etc/passwd", ... Byte order puts
// every directory before its contents.
using FileTree = std::map<std::string, FileEntry>;

// One line per entry, `ls -l` style, for failure messages and debugging.
std::string DescribeTree(const FileTree& tree);

// overlayfs semantics over `layers`, lowest first: a whiteout deletes the path (and below) from
// the layers beneath; an opaque directory hides their contents; a directory over a directory
// merges; anything else replaces. Whiteouts and trusted.overlay.* xattrs do not appear in the
// result. Inode ids are renumbered (layer index in the high 32 bits) so hard links stay
// recognisable and links from different layers never collide.
FileTree FlattenLayers(const std::vector<FileTree>& layers);

}  // namespace supermachine::layer
