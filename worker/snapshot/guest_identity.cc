// File: guest_identity.cc
// Kernel hashing and the identity check.
#include "worker/snapshot/guest_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"
#include "worker/snapshot/sha256.h"

namespace supermachine::snapshot {

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("hash kernel '", path,
                                                   "' (pass --kernel-sha256 to skip hashing)"));
  }
  (void)posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("read kernel '", path, "'"));
    }
    if (n == 0) {
      break;
    }
    hash.Update(buf.data(), static_cast<size_t>(n));
  }
  const Sha256Digest digest = hash.Finish();
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::Status CheckGuestIdentity(const v1::GuestIdentity& saved, const ExpectedIdentity& expected) {
  auto shown = [](const std::string& s) { return s.empty() ? std::string("none recorded") : s; };
  if (!expected.kernel_sha256.empty() && saved.kernel_sha256() != expected.kernel_sha256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot guest runs kernel sha256 ", shown(saved.kernel_sha256()), " (", 
        saved.kernel_path(), "), ", expected.kernel_sha256,
        " was asked for: take a new snapshot with that kernel or drop --kernel-sha256"));
  }
  if (!expected.agent_version.empty() && saved.agent_version() != expected.agent_version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot guest runs agent version ", shown(saved.agent_version()), ", ",
        expected.agent_version,
        " was asked for: take a new snapshot with that agent or drop --agent-version"));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::snapshot
