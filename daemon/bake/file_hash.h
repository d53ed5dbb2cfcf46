// File: file_hash.h
// Content fingerprint of a host file (SHA-256 of its bytes, its mode bits and size), read in
// fixed-size chunks so a large kernel or extra file never sits in memory whole.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/image/digest.h"

namespace supermachine::bake {

struct FileFingerprint {
  image::Digest digest;
  uint32_t mode = 0;  // st_mode & 07777
  uint64_t size = 0;
};

// Opens `path` (O_RDONLY|O_CLOEXEC), refuses anything but a regular file, hashes it in 64 KiB
// reads. Errors keep errno's code and name the path: "hash '/x': open: No such file...".
absl::StatusOr<FileFingerprint> FingerprintFile(const std::string& path);

}  // namespace supermachine::bake
