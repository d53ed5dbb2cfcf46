// File: console_log_reader.cc
// Following a rotated console log (see the header for the guarantees).
#include "daemon/vm/console_log_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

// The worker's name for the previous generation (worker/vmm/rotating_log.h kRotatedSuffix).
constexpr char kRotatedSuffix[] = ".1";

}  // namespace

bool ConsoleLogReader::OpenNew(const std::string& path, const std::deque<Open>& known,
                               Open* out) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    return false;
  }
  for (const Open& k : known) {
    if (k.dev == st.st_dev && k.ino == st.st_ino) {
      return false;
    }
  }
  *out = {.fd = std::move(fd), .dev = st.st_dev, .ino = st.st_ino};
  return true;
}

bool ConsoleLogReader::CatchUp() {
  Open& live = files_.back();
  struct stat st {};
  const off_t pos = ::lseek(live.fd.get(), 0, SEEK_CUR);
  if (::fstat(live.fd.get(), &st) == 0 && pos > st.st_size) {
    // Truncated in place: what is there now was written after the truncate.
    return ::lseek(live.fd.get(), 0, SEEK_SET) == 0;
  }
  if (::stat(path_.c_str(), &st) != 0 || (st.st_dev == live.dev && st.st_ino == live.ino)) {
    return false;  // Not replaced (or between the worker's rename and its new file).
  }
  // Replaced. Open FILE before FILE.1: if another rotation slips in between, FILE.1 is then
  // the FILE just opened (skipped as known), not a newer file read out of order.
  Open next;
  if (!OpenNew(path_, files_, &next)) {
    return false;
  }
  Open missed;
  if (OpenNew(path_ + kRotatedSuffix, files_, &missed) &&
      !(missed.dev == next.dev && missed.ino == next.ino)) {
    files_.push_back(std::move(missed));  // Rotated twice since the last look.
  }
  files_.push_back(std::move(next));
  return true;
}

absl::StatusOr<size_t> ConsoleLogReader::Read(absl::Span<char> out) {
  if (files_.empty()) {
    // FILE first, then FILE.1, for the same reason as in CatchUp.
    Open current, older;
    const bool have_current = OpenNew(path_, files_, &current);
    if (OpenNew(path_ + kRotatedSuffix, files_, &older) &&
        !(have_current && older.dev == current.dev && older.ino == current.ino)) {
      files_.push_back(std::move(older));
    }
    if (have_current) {
      files_.push_back(std::move(current));
    }
  }
  while (!files_.empty()) {
    const ssize_t n = ::read(files_.front().fd.get(), out.data(), out.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("read the console log ", path_));
    }
    if (n > 0) {
      return static_cast<size_t>(n);
    }
    if (files_.size() > 1) {
      files_.pop_front();  // An older file, read to its end: it gets no more writes.
      continue;
    }
    if (!CatchUp()) {
      return 0;
    }
  }
  return 0;
}

}  // namespace supermachine::vm
