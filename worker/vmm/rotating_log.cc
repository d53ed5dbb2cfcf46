// File: rotating_log.cc
// Size-bounded console file with one previous generation (FILE.1).
#include "worker/vmm/rotating_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::vmm {
namespace {

// O_APPEND: after the truncate fallback (a failed rename) the next write lands at offset 0
// without an lseek.
constexpr int kFileFlags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC;

}  // namespace

absl::StatusOr<std::unique_ptr<RotatingLog>> RotatingLog::Open(const std::string& path,
                                                              uint64_t max_bytes) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec || !abs.has_filename()) {
    return absl::InvalidArgumentError(
        absl::StrCat("serial file '", path, "': expected a file path (file:PATH)"));
  }
  const std::string dir_path = abs.parent_path().string();
  const std::string name = abs.filename().string();
  // O_PATH is enough for *at() calls and needs no permission on the directory itself.
  base::UniqueFd dir(open(dir_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("serial file '", path, "': directory"));
  }
  base::UniqueFd file(openat(dir.get(), name.c_str(), kFileFlags, 0644));
  if (!file.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("serial file '", path, "'"));
  }
  struct stat st {};
  if (fstat(file.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("serial file '", path, "'"));
  }
  if (!S_ISREG(st.st_mode)) {
    max_bytes = 0;  // Renaming /dev/null or a FIFO away would be a bug, not a rotation.
  } else {
    // A previous run's FILE.1 would read as older output of this VM. Best effort: one that
    // cannot be removed is replaced by the first rotation anyway.
    const std::string old = absl::StrCat(name, kRotatedSuffix);
    (void)unlinkat(dir.get(), old.c_str(), 0);
  }
  return std::unique_ptr<RotatingLog>(
      new RotatingLog(std::move(dir), name, std::move(file), max_bytes));
}

void RotatingLog::Write(uint8_t byte) {
  const char c = static_cast<char>(byte);
  Write(absl::string_view(&c, 1));
}

void RotatingLog::Write(absl::string_view bytes) {
  std::lock_guard lock(mu_);
  while (!bytes.empty()) {
    bytes.remove_prefix(WriteSomeLocked(bytes));
  }
}

size_t RotatingLog::WriteSomeLocked(absl::string_view bytes) {
  if (max_bytes_ != 0 && size_ >= max_bytes_) {
    RotateLocked();
  }
  if (!file_.valid()) {
    // The re-open after a rename failed (e.g. too many files, a read-only remount); try again
    // for every write, so the console comes back as soon as the cause goes away.
    file_ = base::UniqueFd(openat(dir_.get(), name_.c_str(), kFileFlags, 0644));
    size_ = 0;
  }
  if (!file_.valid() || (max_bytes_ != 0 && size_ >= max_bytes_)) {
    stats_.dropped += bytes.size();
    return bytes.size();
  }
  const size_t want =
      max_bytes_ == 0 ? bytes.size()
                      : std::min<uint64_t>(bytes.size(), max_bytes_ - size_);
  ssize_t n;
  do {
    n = write(file_.get(), bytes.data(), want);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    // Disk full, I/O error, quota: the bytes are lost, the guest carries on.
    stats_.dropped += want;
    return want;
  }
  size_ += static_cast<uint64_t>(n);
  stats_.written += static_cast<uint64_t>(n);
  return static_cast<size_t>(n);
}

void RotatingLog::RotateLocked() {
  const std::string old = absl::StrCat(name_, kRotatedSuffix);
  // rename(2) replaces an existing FILE.1 atomically: a reader never sees neither file.
  if (renameat(dir_.get(), name_.c_str(), dir_.get(), old.c_str()) != 0) {
    // No way to keep the old generation (e.g. the directory is not writable by a jailed uid):
    // keep the bound by starting FILE over. Losing old console beats filling the disk.
    ++stats_.rotate_errors;
    if (file_.valid() && ftruncate(file_.get(), 0) == 0) {
      size_ = 0;
    }
    return;
  }
  ++stats_.rotations;
  file_ = base::UniqueFd(openat(dir_.get(), name_.c_str(), kFileFlags, 0644));
  size_ = 0;
}

RotatingLogStats RotatingLog::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::string RotatingLog::StatsLine() const {
  const RotatingLogStats s = stats();
  return absl::StrCat("written=", s.written, " dropped=", s.dropped, " rotations=", s.rotations,
                      " rotate_errors=", s.rotate_errors);
}

}  // namespace supermachine::vmm
