// File: file_hash.cc
#include "daemon/bake/file_hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;

}  // namespace

absl::StatusOr<FileFingerprint> FingerprintFile(const std::string& path) {
  const std::string context = absl::StrCat("hash '", path, "'");
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat(context, ": open"));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat(context, ": fstat"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": not a regular file"));
  }
  FileFingerprint out{.mode = static_cast<uint32_t>(st.st_mode & 07777)};
  image::Sha256Hasher hasher;
  std::vector<char> buf(kChunkBytes);
  for (;;) {
    const ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat(context, ": read"));
    }
    if (n == 0) {
      break;
    }
    hasher.Update(buf.data(), static_cast<size_t>(n));
    out.size += static_cast<uint64_t>(n);
  }
  out.digest = hasher.Finish();
  return out;
}

}  // namespace supermachine::bake
