// File: tar_builder.cc
// libarchive-based tar writer for layer tests.
#include "tests/unit/layer/tar_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace supermachine::layer::testing {
namespace {

struct WriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

TarEntry Make(TarEntry::Kind kind, std::string path, const Attrs& attrs, uint32_t default_perm) {
  TarEntry e;
  e.kind = kind;
  e.path = std::move(path);
  e.perm = attrs.perm != 0 ? attrs.perm : default_perm;
  e.uid = attrs.uid;
  e.gid = attrs.gid;
  e.mtime = attrs.mtime;
  e.xattrs = attrs.xattrs;
  return e;
}

}  // namespace

TarEntry File(std::string path, std::string content, Attrs attrs) {
  TarEntry e = Make(TarEntry::Kind::kFile, std::move(path), attrs, 0644);
  e.content = std::move(content);
  return e;
}
TarEntry Dir(std::string path, Attrs attrs) {
  return Make(TarEntry::Kind::kDir, std::move(path), attrs, 0755);
}
TarEntry Symlink(std::string path, std::string target, Attrs attrs) {
  TarEntry e = Make(TarEntry::Kind::kSymlink, std::move(path), attrs, 0777);
  e.target = std::move(target);
  return e;
}
TarEntry HardLink(std::string path, std::string target) {
  TarEntry e = Make(TarEntry::Kind::kHardLink, std::move(path), Attrs{}, 0644);
  e.target = std::move(target);
  return e;
}
TarEntry CharDev(std::string path, uint32_t major, uint32_t minor, Attrs attrs) {
  TarEntry e = Make(TarEntry::Kind::kCharDev, std::move(path), attrs, 0644);
  e.major = major;
  e.minor = minor;
  return e;
}
TarEntry BlockDev(std::string path, uint32_t major, uint32_t minor, Attrs attrs) {
  TarEntry e = Make(TarEntry::Kind::kBlockDev, std::move(path), attrs, 0644);
  e.major = major;
  e.minor = minor;
  return e;
}
TarEntry Fifo(std::string path, Attrs attrs) {
  return Make(TarEntry::Kind::kFifo, std::move(path), attrs, 0644);
}

absl::Status WriteTar(const std::string& path, const std::vector<TarEntry>& entries,
                      TarCompression compression) {
  std::unique_ptr<struct archive, WriteDeleter> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  // Names are bytes (as on Linux), whatever the test's locale: no charset translation.
  archive_write_set_format_option(a.get(), "pax", "hdrcharset", "BINARY");
  switch (compression) {
    case TarCompression::kNone: archive_write_add_filter_none(a.get()); break;
    case TarCompression::kGzip: archive_write_add_filter_gzip(a.get()); break;
    case TarCompression::kZstd: archive_write_add_filter_zstd(a.get()); break;
  }
  if (archive_write_open_filename(a.get(), path.c_str()) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("open ", path, ": ", archive_error_string(a.get())));
  }
  for (const TarEntry& t : entries) {
    std::unique_ptr<struct archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_uid(e.get(), t.uid);
    archive_entry_set_gid(e.get(), t.gid);
    archive_entry_set_mtime(e.get(), t.mtime, 0);
    archive_entry_set_perm(e.get(), t.perm);
    archive_entry_set_size(e.get(), 0);
    switch (t.kind) {
      case TarEntry::Kind::kFile:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(t.content.size()));
        break;
      case TarEntry::Kind::kDir: archive_entry_set_filetype(e.get(), AE_IFDIR); break;
      case TarEntry::Kind::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), t.target.c_str());
        break;
      case TarEntry::Kind::kHardLink:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), t.target.c_str());
        break;
      case TarEntry::Kind::kCharDev:
      case TarEntry::Kind::kBlockDev:
        archive_entry_set_filetype(
            e.get(), t.kind == TarEntry::Kind::kCharDev ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(e.get(), t.major);
        archive_entry_set_rdevminor(e.get(), t.minor);
        break;
      case TarEntry::Kind::kFifo: archive_entry_set_filetype(e.get(), AE_IFIFO); break;
    }
    for (const auto& [key, value] : t.xattrs) {
      archive_entry_xattr_add_entry(e.get(), key.c_str(), value.data(), value.size());
    }
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("write header ", t.path, ": ", archive_error_string(a.get())));
    }
    if (t.kind == TarEntry::Kind::kFile && !t.content.empty()) {
      if (archive_write_data(a.get(), t.content.data(), t.content.size()) !=
          static_cast<la_ssize_t>(t.content.size())) {
        return absl::InternalError(
            absl::StrCat("write data ", t.path, ": ", archive_error_string(a.get())));
      }
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("close ", path, ": ", archive_error_string(a.get())));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::layer::testing
