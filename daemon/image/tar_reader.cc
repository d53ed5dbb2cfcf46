// File: tar_reader.cc
// libarchive read wrapper.
#include "daemon/image/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace supermachine::image {
namespace {

std::string Normalise(absl::string_view p) {
  while (absl::ConsumePrefix(&p, "./") || absl::ConsumePrefix(&p, "/")) {
  }
  return std::string(p);
}

}  // namespace

absl::StatusOr<TarReader> TarReader::Open(const std::string& path) {
  struct archive* a = archive_read_new();
  if (a == nullptr) {
    return absl::ResourceExhaustedError("archive_read_new failed");
  }
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_none(a);
  if (archive_read_open_filename(a, path.c_str(), 1 << 20) != ARCHIVE_OK) {
    const std::string why = archive_error_string(a) != nullptr ? archive_error_string(a) : "unknown error";
    const int err = archive_errno(a);
    archive_read_free(a);
    return absl::Status(err > 0 ? absl::ErrnoToStatusCode(err) : absl::StatusCode::kInvalidArgument,
                        absl::StrCat("open archive ", path, ": ", why));
  }
  return TarReader(a, path);
}

TarReader::TarReader(TarReader&& other) noexcept
    : archive_(std::exchange(other.archive_, nullptr)), path_(std::move(other.path_)) {}

TarReader& TarReader::operator=(TarReader&& other) noexcept {
  if (this != &other) {
    if (archive_ != nullptr) {
      archive_read_free(static_cast<struct archive*>(archive_));
    }
    archive_ = std::exchange(other.archive_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

TarReader::~TarReader() {
  if (archive_ != nullptr) {
    archive_read_free(static_cast<struct archive*>(archive_));
  }
}

absl::StatusOr<bool> TarReader::Next(TarEntry* entry) {
  auto* a = static_cast<struct archive*>(archive_);
  struct archive_entry* e = nullptr;
  const int rc = archive_read_next_header(a, &e);
  if (rc == ARCHIVE_EOF) {
    return false;
  }
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
    return absl::InvalidArgumentError(absl::StrCat("read archive ", path_, ": ",
                                                   archive_error_string(a) != nullptr ? archive_error_string(a) : "corrupt archive"));
  }
  const char* name = archive_entry_pathname(e);
  entry->path = Normalise(name != nullptr ? name : "");
  entry->size = archive_entry_size(e);
  const mode_t type = archive_entry_filetype(e);
  entry->regular = type == AE_IFREG;
  entry->symlink = type == AE_IFLNK;
  const char* hard = archive_entry_hardlink(e);
  entry->hardlink = hard != nullptr;
  if (entry->hardlink) {
    entry->regular = false;
    entry->link_target = Normalise(hard);
  } else if (entry->symlink) {
    const char* target = archive_entry_symlink(e);
    entry->link_target = target != nullptr ? target : "";
  } else {
    entry->link_target.clear();
  }
  return true;
}

absl::Status TarReader::ReadData(const std::function<absl::Status(absl::string_view)>& sink) {
  auto* a = static_cast<struct archive*>(archive_);
  char buf[1 << 16];
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
    if (n == 0) {
      return absl::OkStatus();
    }
    if (n < 0) {
      return absl::DataLossError(absl::StrCat("read archive ", path_, ": ",
                                              archive_error_string(a) != nullptr ? archive_error_string(a) : "truncated"));
    }
    if (absl::Status s = sink(absl::string_view(buf, static_cast<size_t>(n))); !s.ok()) {
      return s;
    }
  }
}

absl::StatusOr<std::string> TarReader::ReadAll(int64_t max) {
  std::string out;
  absl::Status s = ReadData([&](absl::string_view chunk) -> absl::Status {
    if (static_cast<int64_t>(out.size() + chunk.size()) > max) {
      return absl::ResourceExhaustedError(absl::StrCat("archive ", path_, ": entry larger than ", max, " bytes"));
    }
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  });
  if (!s.ok()) {
    return s;
  }
  return out;
}

}  // namespace supermachine::image
