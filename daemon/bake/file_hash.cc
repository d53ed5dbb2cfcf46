// File: file_hash.cc
#include "daemon/bake/file_hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {

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
  int64_t bytes = 0;
  SM_ASSIGN_OR_RETURN(out.digest, image::Sha256OfFd(fd.get(), context, &bytes));
  out.size = static_cast<uint64_t>(bytes);
  return out;
}

}  // namespace supermachine::bake
