// File: file_tree.cc
// FileTree printing and overlayfs flattening.
#include "daemon/layer/file_tree.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace supermachine::layer {
namespace {

// Erases `path` and everything below it.
void EraseSubtree(FileTree& tree, const std::string& path) {
  tree.erase(path);
  const std::string prefix = path == "/" ? path : path + "/";
  auto it = tree.lower_bound(prefix);
  while (it != tree.end() && absl::StartsWith(it->first, prefix)) {
    it = tree.erase(it);
  }
}

// Erases only what is below `path`.
void EraseBelow(FileTree& tree, const std::string& path) {
  const std::string prefix = path == "/" ? path : path + "/";
  auto it = tree.upper_bound(path);
  while (it != tree.end() && absl::StartsWith(it->first, prefix)) {
    it = tree.erase(it);
  }
}

char TypeChar(FileType type) {
  switch (type) {
    case FileType::kRegular: return '-';
    case FileType::kDirectory: return 'd';
    case FileType::kSymlink: return 'l';
    case FileType::kCharDevice: return 'c';
    case FileType::kBlockDevice: return 'b';
    case FileType::kFifo: return 'p';
    case FileType::kSocket: return 's';
  }
  return '?';
}

}  // namespace

const char* FileTypeName(FileType type) {
  switch (type) {
    case FileType::kRegular: return "file";
    case FileType::kDirectory: return "directory";
    case FileType::kSymlink: return "symlink";
    case FileType::kCharDevice: return "char device";
    case FileType::kBlockDevice: return "block device";
    case FileType::kFifo: return "fifo";
    case FileType::kSocket: return "socket";
  }
  return "unknown";
}

bool FileEntry::IsWhiteout() const {
  return type == FileType::kCharDevice && dev_major == 0 && dev_minor == 0;
}

bool FileEntry::IsOpaque() const {
  if (type != FileType::kDirectory) {
    return false;
  }
  auto it = xattrs.find("trusted.overlay.opaque");
  return it != xattrs.end() && it->second == "y";
}

std::string DescribeTree(const FileTree& tree) {
  std::string out;
  for (const auto& [path, e] : tree) {
    absl::StrAppendFormat(&out, "%c%04o %u:%u n%u i%u %d", TypeChar(e.type), e.permissions, e.uid,
                          e.gid, e.nlink, e.inode_id, e.mtime);
    if (e.type == FileType::kRegular) {
      absl::StrAppend(&out, " size=", e.size);
    }
    if (e.type == FileType::kCharDevice || e.type == FileType::kBlockDevice) {
      absl::StrAppend(&out, " dev=", e.dev_major, ":", e.dev_minor);
    }
    absl::StrAppend(&out, " ", path);
    if (e.type == FileType::kSymlink) {
      absl::StrAppend(&out, " -> ", e.symlink_target);
    }
    for (const auto& [key, value] : e.xattrs) {
      absl::StrAppend(&out, " [", key, "=", absl::CHexEscape(value), "]");
    }
    out += '\n';
  }
  return out;
}

FileTree FlattenLayers(const std::vector<FileTree>& layers) {
  FileTree merged;
  for (size_t index = 0; index < layers.size(); ++index) {
    for (const auto& [path, upper] : layers[index]) {
      if (upper.IsWhiteout()) {
        EraseSubtree(merged, path);
        continue;
      }
      FileEntry entry = upper;
      entry.inode_id = (uint64_t{index} << 32) | (upper.inode_id & 0xffffffffu);
      for (auto it = entry.xattrs.begin(); it != entry.xattrs.end();) {
        it = absl::StartsWith(it->first, "trusted.overlay.") ? entry.xattrs.erase(it)
                                                               : std::next(it);
      }
      auto lower = merged.find(path);
      if (upper.type == FileType::kDirectory) {
        const bool merge = lower != merged.end() && lower->second.type == FileType::kDirectory &&
                           !upper.IsOpaque();
        if (!merge) {
          EraseBelow(merged, path);
        }
      }
      // Non-directories have nothing below them in `merged` that should survive: a lower
      // directory's contents go with it.
      if (upper.type != FileType::kDirectory) {
        EraseSubtree(merged, path);
      }
      merged[path] = std::move(entry);
    }
  }
  return merged;
}

}  // namespace supermachine::layer
