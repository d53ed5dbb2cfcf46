// File: converter.cc
// The tar reading loop (libarchive) feeding LayerTree and SquashfsWriter, and the temp file →
// verify → rename lifecycle of the output.
#include "daemon/layer/converter.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sqfs/xattr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <limits>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/layer/layer_tree.h"
#include "daemon/layer/squashfs_image.h"
#include "daemon/layer/squashfs_writer.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::layer {
namespace {

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
constexpr absl::string_view kAufsMetaPrefix = ".wh..wh.";
constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kReadBlockSize = 128 * 1024;
constexpr size_t kMaxSymlinkTarget = 4095;  // Linux PATH_MAX - 1.
constexpr size_t kMaxXattrValue = 65536;    // Linux XATTR_SIZE_MAX.

std::string ArchiveErrorText(struct archive* a) {
  const char* text = archive_error_string(a);
  return text == nullptr ? std::string("unknown libarchive error") : std::string(text);
}

LayerCompression FromFilterCode(int code) {
  switch (code) {
    case ARCHIVE_FILTER_GZIP: return LayerCompression::kGzip;
    case ARCHIVE_FILTER_ZSTD: return LayerCompression::kZstd;
    default: return LayerCompression::kNone;
  }
}

// Linux's new_encode_dev(), which squashfs stores and the kernel decodes with new_decode_dev().
absl::StatusOr<uint32_t> EncodeDevice(uint64_t major, uint64_t minor) {
  if (major > 0xfff || minor > 0xfffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("device number ", major, ":", minor, " does not fit squashfs"));
  }
  return static_cast<uint32_t>((minor & 0xff) | (major << 8) | ((minor & ~uint64_t{0xff}) << 12));
}

absl::StatusOr<uint32_t> CheckId(int64_t id, absl::string_view what) {
  if (id < 0 || id > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", id, " is out of range"));
  }
  return static_cast<uint32_t>(id);
}

uint32_t ClampTime(int64_t t) {
  // squashfs stores unsigned 32-bit seconds.
  if (t < 0) {
    return 0;
  }
  if (t > std::numeric_limits<uint32_t>::max()) {
    return std::numeric_limits<uint32_t>::max();
  }
  return static_cast<uint32_t>(t);
}

const char* EntryPath(struct archive_entry* entry) {
  const char* path = archive_entry_pathname(entry);
  return path != nullptr ? path : archive_entry_pathname_utf8(entry);
}

const char* EntryHardlink(struct archive_entry* entry) {
  const char* path = archive_entry_hardlink(entry);
  return path != nullptr ? path : archive_entry_hardlink_utf8(entry);
}

const char* EntrySymlink(struct archive_entry* entry) {
  const char* path = archive_entry_symlink(entry);
  return path != nullptr ? path : archive_entry_symlink_utf8(entry);
}

// One conversion's state: the tar reader, the tree and the squashfs writer.
class Conversion {
 public:
  Conversion(const ConvertOptions& options, std::optional<LayerCompression> expected)
      : options_(options), expected_(expected), tree_(options.max_entries),
        zeros_(kReadBlockSize, 0) {}

  // errno of the first failed write to the output (0: none).
  int write_errno() const { return writer_ ? writer_->write_errno() : 0; }

  absl::StatusOr<ConvertStats> Run(int in_fd, int out_fd) {
    archive_.reset(archive_read_new());
    if (!archive_) {
      return absl::ResourceExhaustedError("allocating tar reader");
    }
    struct archive* a = archive_.get();
    // ARCHIVE_WARN here would mean libarchive falls back to an external program; we only
    // accept the built-in decoders.
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_format_empty(a) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("libarchive lacks built-in gzip/zstd/tar support: ", ArchiveErrorText(a)));
    }
    if (archive_read_open_fd(a, in_fd, kReadBlockSize) != ARCHIVE_OK) {
      return absl::DataLossError(absl::StrCat("not a tar stream: ", ArchiveErrorText(a)));
    }

    SquashfsWriterOptions wopts;
    wopts.block_size = options_.block_size;
    wopts.zstd_level = options_.zstd_level;
    wopts.num_workers = options_.num_workers != 0
                            ? options_.num_workers
                            : std::max(1u, std::thread::hardware_concurrency());
    SM_ASSIGN_OR_RETURN(writer_, SquashfsWriter::Create(out_fd, wopts));

    while (true) {
      struct archive_entry* entry = nullptr;
      int r = archive_read_next_header(a, &entry);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat("reading tar entry #", stats_.entries + 1, ": ",
                                                ArchiveErrorText(a)));
      }
      ++stats_.entries;
      if (stats_.entries == 1) {
        SM_RETURN_IF_ERROR(CheckCompression());
      }
      const char* raw_path = EntryPath(entry);
      if (raw_path == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("tar entry #", stats_.entries, " has no path"));
      }
      SM_RETURN_IF_ERROR(
          base::Annotate(AddEntry(entry), absl::StrCat("entry '", raw_path, "'")));
    }
    if (stats_.entries == 0) {
      SM_RETURN_IF_ERROR(CheckCompression());
    }
    SM_ASSIGN_OR_RETURN(stats_.bytes_out, writer_->Finish(tree_));
    stats_.bytes_in = static_cast<uint64_t>(archive_filter_bytes(a, -1));
    stats_.bytes_uncompressed = static_cast<uint64_t>(archive_filter_bytes(a, 0));
    // Stop the worker threads before the tree (whose inodes they update) goes away.
    writer_.reset();
    return stats_;
  }

 private:
  absl::Status CheckCompression() {
    struct archive* a = archive_.get();
    // Filters are numbered from the format side; the last one is the raw input ("none").
    const int count = archive_filter_count(a);
    if (count > 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer is compressed ", count - 1, " times over"));
    }
    stats_.compression = FromFilterCode(archive_filter_code(a, 0));
    if (expected_.has_value() && *expected_ != stats_.compression) {
      return absl::InvalidArgumentError(absl::StrCat(
          "media type '", options_.media_type, "' declares ", CompressionName(*expected_),
          " compression but the blob is ", CompressionName(stats_.compression)));
    }
    return absl::OkStatus();
  }

  absl::Status AddEntry(struct archive_entry* entry) {
    SM_ASSIGN_OR_RETURN(std::vector<std::string> path, NormalizeEntryPath(EntryPath(entry)));
    const std::string base = path.empty() ? std::string() : path.back();
    if (!path.empty() && path.size() > 1 && absl::StartsWith(path.front(), kAufsMetaPrefix)) {
      // Inside an aufs metadata directory (/.wh..wh.plnk/...): aufs bookkeeping only.
      ++stats_.aufs_entries_skipped;
      return absl::OkStatus();
    }
    if (absl::StartsWith(base, kWhiteoutPrefix)) {
      return AddWhiteout(entry, std::move(path));
    }
    if (const char* link = EntryHardlink(entry); link != nullptr) {
      auto target = NormalizeEntryPath(link);
      if (!target.ok()) {
        return base::Annotate(target.status(), absl::StrCat("hard link target '", link, "'"));
      }
      ++stats_.hard_links;
      return tree_.AddHardLink(path, *target);
    }
    SM_ASSIGN_OR_RETURN(EntryAttrs attrs, ConvertAttrs(entry));
    const bool regular = (attrs.mode & S_IFMT) == S_IFREG;
    SM_ASSIGN_OR_RETURN(LayerInode * inode, tree_.AddEntry(path, std::move(attrs)));
    if (regular) {
      return CopyData(entry, inode);
    }
    return absl::OkStatus();
  }

  absl::Status AddWhiteout(struct archive_entry* entry, std::vector<std::string> path) {
    const std::string base = path.back();
    path.pop_back();
    if (base == kOpaqueMarker) {
      ++stats_.opaque_dirs;
      return tree_.MarkOpaque(path);
    }
    if (absl::StartsWith(base, kAufsMetaPrefix)) {
      // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning for overlayfs; Docker and
      // containerd skip these as well.
      ++stats_.aufs_entries_skipped;
      return absl::OkStatus();
    }
    const std::string name = base.substr(kWhiteoutPrefix.size());
    if (name.empty()) {
      return absl::InvalidArgumentError("whiteout names no file");
    }
    EntryAttrs attrs;
    SM_ASSIGN_OR_RETURN(attrs.uid, CheckId(archive_entry_uid(entry), "uid"));
    SM_ASSIGN_OR_RETURN(attrs.gid, CheckId(archive_entry_gid(entry), "gid"));
    attrs.mtime = ClampTime(archive_entry_mtime(entry));
    ++stats_.whiteouts;
    return tree_.AddWhiteout(path, name, attrs);
  }

  absl::StatusOr<EntryAttrs> ConvertAttrs(struct archive_entry* entry) {
    EntryAttrs attrs;
    const mode_t type = archive_entry_filetype(entry);
    switch (type) {
      case AE_IFREG:
      case AE_IFDIR:
      case AE_IFIFO:
      case AE_IFSOCK:
        break;
      case AE_IFLNK: {
        const char* target = EntrySymlink(entry);
        if (target == nullptr || target[0] == '\0') {
          return absl::InvalidArgumentError("symlink has an empty target");
        }
        attrs.symlink_target = target;
        if (attrs.symlink_target.size() > kMaxSymlinkTarget) {
          return absl::InvalidArgumentError(
              absl::StrCat("symlink target is ", attrs.symlink_target.size(), " bytes long"));
        }
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK: {
        SM_ASSIGN_OR_RETURN(attrs.devno, EncodeDevice(archive_entry_rdevmajor(entry),
                                                      archive_entry_rdevminor(entry)));
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("entry type 0", absl::Hex(type), " is not allowed in a layer"));
    }
    attrs.mode = static_cast<uint32_t>(type) | (archive_entry_perm(entry) & 07777);
    SM_ASSIGN_OR_RETURN(attrs.uid, CheckId(archive_entry_uid(entry), "uid"));
    SM_ASSIGN_OR_RETURN(attrs.gid, CheckId(archive_entry_gid(entry), "gid"));
    attrs.mtime = ClampTime(archive_entry_mtime(entry));

    archive_entry_xattr_reset(entry);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
      if (name == nullptr) {
        continue;
      }
      // trusted.overlay.* would let a layer forge overlayfs state (opaque, redirect,
      // metacopy) beyond what OCI whiteouts express; other prefixes do not fit squashfs.
      if (absl::StartsWith(name, "trusted.overlay.") || sqfs_get_xattr_prefix_id(name) < 0) {
        ++stats_.xattrs_dropped;
        continue;
      }
      if (size > kMaxXattrValue) {
        return absl::InvalidArgumentError(
            absl::StrCat("xattr '", name, "' value is ", size, " bytes"));
      }
      attrs.xattrs[name] = std::string(static_cast<const char*>(value), size);
    }
    return attrs;
  }

  absl::Status CopyData(struct archive_entry* entry, LayerInode* inode) {
    struct archive* a = archive_.get();
    SM_RETURN_IF_ERROR(writer_->BeginFile(inode));
    uint64_t position = 0;
    while (true) {
      const void* buffer = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a, &buffer, &size, &offset);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat("reading file data: ", ArchiveErrorText(a)));
      }
      if (offset < 0 || static_cast<uint64_t>(offset) < position) {
        return absl::DataLossError("file data blocks overlap (broken sparse map)");
      }
      // Holes of sparse files arrive as gaps; the block processor stores zero blocks sparse.
      SM_RETURN_IF_ERROR(WriteZeros(static_cast<uint64_t>(offset) - position));
      SM_RETURN_IF_ERROR(CountFileBytes(size));
      SM_RETURN_IF_ERROR(writer_->Append(buffer, size));
      position = static_cast<uint64_t>(offset) + size;
    }
    if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0 &&
        static_cast<uint64_t>(archive_entry_size(entry)) > position) {
      SM_RETURN_IF_ERROR(WriteZeros(static_cast<uint64_t>(archive_entry_size(entry)) - position));
    }
    return writer_->EndFile();
  }

  absl::Status CountFileBytes(uint64_t count) {
    file_bytes_ += count;
    if (file_bytes_ > options_.max_file_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "layer holds more than ", options_.max_file_bytes, " bytes of file data"));
    }
    return absl::OkStatus();
  }

  absl::Status WriteZeros(uint64_t count) {
    SM_RETURN_IF_ERROR(CountFileBytes(count));
    while (count > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(count, zeros_.size()));
      SM_RETURN_IF_ERROR(writer_->Append(zeros_.data(), n));
      count -= n;
    }
    return absl::OkStatus();
  }

  const ConvertOptions& options_;
  std::optional<LayerCompression> expected_;
  ConvertStats stats_;
  // The tree outlives the writer (declared first, destroyed last): block processor threads
  // update file inodes owned by the tree until the writer is gone.
  LayerTree tree_;
  std::unique_ptr<SquashfsWriter> writer_;
  ArchiveReadPtr archive_;
  std::vector<uint8_t> zeros_;
  uint64_t file_bytes_ = 0;
};

absl::Status FsyncDir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("open directory ", dir.string()));
  }
  base::UniqueFd owner(fd);
  if (::fsync(fd) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync directory ", dir.string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ConvertStats> ConvertLayerImpl(const std::string& input_path,
                                              const std::string& output_path,
                                              const ConvertOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SM_ASSIGN_OR_RETURN(std::optional<LayerCompression> expected,
                      CompressionForMediaType(options.media_type));
  int raw_in = ::open(input_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw_in < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("open layer blob ", input_path));
  }
  base::UniqueFd in_fd(raw_in);

  std::string temp_path = output_path + ".tmp-XXXXXX";
  int raw_out = ::mkostemp(temp_path.data(), O_CLOEXEC);
  if (raw_out < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("create temp file for ", output_path));
  }
  base::UniqueFd out_fd(raw_out);
  absl::Cleanup remove_temp = [&temp_path] { ::unlink(temp_path.c_str()); };

  ConvertStats stats;
  {
    Conversion conversion(options, expected);
    absl::StatusOr<ConvertStats> run = conversion.Run(in_fd.get(), out_fd.get());
    if (!run.ok() && conversion.write_errno() != 0) {
      // Say why the write failed (a full disk), not only libsquashfs' "input/output error".
      return base::ErrnoToStatus(conversion.write_errno(),
                                 absl::StrCat("write ", temp_path, " (", run.status().message(), ")"));
    }
    SM_ASSIGN_OR_RETURN(stats, std::move(run));
  }
  // mkostemp creates 0600; workers that attach the image as a disk may run unprivileged.
  if (::fchmod(out_fd.get(), 0644) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("chmod ", temp_path));
  }
  if (::fsync(out_fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync ", temp_path));
  }
  {
    auto image = OpenSquashfsImageFd(std::move(out_fd));
    if (!image.ok()) {
      return absl::InternalError(
          absl::StrCat("written image failed verification: ", image.status().message()));
    }
    absl::Status verified = VerifySquashfsImage(*image);
    if (!verified.ok()) {
      return absl::InternalError(
          absl::StrCat("written image failed verification: ", verified.message()));
    }
  }
  if (::rename(temp_path.c_str(), output_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", temp_path, " to ", output_path));
  }
  std::move(remove_temp).Cancel();
  std::filesystem::path parent = std::filesystem::path(output_path).parent_path();
  SM_RETURN_IF_ERROR(FsyncDir(parent.empty() ? std::filesystem::path(".") : parent));
  stats.duration = absl::FromChrono(std::chrono::steady_clock::now() - start);
  return stats;
}

}  // namespace

absl::StatusOr<ConvertStats> ConvertLayer(const std::string& input_path,
                                          const std::string& output_path,
                                          const ConvertOptions& options) {
  auto stats = ConvertLayerImpl(input_path, output_path, options);
  if (!stats.ok()) {
    const std::string& name = options.layer_name.empty() ? input_path : options.layer_name;
    return base::Annotate(stats.status(), absl::StrCat("layer ", name));
  }
  return stats;
}

}  // namespace supermachine::layer
