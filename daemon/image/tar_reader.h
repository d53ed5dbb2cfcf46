// File: tar_reader.h
// Sequential tar reading over libarchive, for OCI and docker archives (nothing is extracted).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::image {

struct TarEntry {
  std::string path;            // normalised: no leading "./" or "/"
  int64_t size = 0;
  bool regular = false;
  bool symlink = false;
  bool hardlink = false;
  std::string link_target;     // for symlinks and hard links
};

// Move-only owner of one libarchive read handle.
class TarReader {
 public:
  // Opens `path` (plain tar; gzip/zstd-compressed tars are accepted too).
  static absl::StatusOr<TarReader> Open(const std::string& path);
  TarReader(TarReader&& other) noexcept;
  TarReader& operator=(TarReader&& other) noexcept;
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;
  ~TarReader();

  // Advances to the next entry; false at the end. Unread data is skipped.
  absl::StatusOr<bool> Next(TarEntry* entry);
  // Streams the current entry's data.
  absl::Status ReadData(const std::function<absl::Status(absl::string_view)>& sink);
  // The current entry's data, refusing more than max bytes.
  absl::StatusOr<std::string> ReadAll(int64_t max);

 private:
  TarReader(void* archive, std::string path) : archive_(archive), path_(std::move(path)) {}
  void* archive_ = nullptr;  // struct archive*
  std::string path_;
};

}  // namespace supermachine::image
