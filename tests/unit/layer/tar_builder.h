// File: tar_builder.h
// Builds layer tars for tests with libarchive's writer: every entry type, attributes, xattrs
// (as pax SCHILY.xattr records), hard links, plain / gzip / zstd.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/support/temp_dir.h"

namespace supermachine::layer::testing {

enum class TarCompression { kNone, kGzip, kZstd };

struct TarEntry {
  enum class Kind { kFile, kDir, kSymlink, kHardLink, kCharDev, kBlockDev, kFifo };
  Kind kind = Kind::kFile;
  std::string path;
  std::string content;  // Files.
  std::string target;   // Symlinks and hard links.
  uint32_t perm = 0644;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 1700000000;
  uint32_t major = 0;
  uint32_t minor = 0;
  std::map<std::string, std::string> xattrs;
};

struct Attrs {
  uint32_t perm = 0;  // 0: the kind's default (0644 files, 0755 dirs, 0777 symlinks).
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 1700000000;
  std::map<std::string, std::string> xattrs;
};

TarEntry File(std::string path, std::string content, Attrs attrs = {});
TarEntry Dir(std::string path, Attrs attrs = {});
TarEntry Symlink(std::string path, std::string target, Attrs attrs = {});
TarEntry HardLink(std::string path, std::string target);
TarEntry CharDev(std::string path, uint32_t major, uint32_t minor, Attrs attrs = {});
TarEntry BlockDev(std::string path, uint32_t major, uint32_t minor, Attrs attrs = {});
TarEntry Fifo(std::string path, Attrs attrs = {});

// Writes `entries` in order as a pax tar to `path`.
absl::Status WriteTar(const std::string& path, const std::vector<TarEntry>& entries,
                      TarCompression compression = TarCompression::kNone);

// The shared test helpers (tests/support/temp_dir.h), by the names layer tests use.
using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::ReadFileOrDie;
using ::supermachine::test_support::WriteFileOrDie;
}  // namespace supermachine::layer::testing
