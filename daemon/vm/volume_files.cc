// File: volume_files.cc
#include "daemon/vm/volume_files.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"
#include "worker/snapshot/state_file.h"

namespace supermachine::vm {
namespace {

// The worker's name for the state file inside a snapshot dir (worker/vmm/vm_snapshot.cc).
constexpr char kStateFileName[] = "state";
constexpr char kVolumesSubdir[] = "volumes";
constexpr uint64_t kSectorSize = 512;
constexpr size_t kCopyChunk = size_t{1} << 20;
constexpr size_t kMaxVolumeName = 64;

absl::Status CopyRange(int in, int out, off_t from, off_t to, std::string& buf,
                       const std::string& src) {
  while (from < to) {
    const size_t want = static_cast<size_t>(std::min<off_t>(to - from, static_cast<off_t>(buf.size())));
    ssize_t n = ::pread(in, buf.data(), want, from);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n == 0 ? absl::DataLossError(absl::StrCat(src, " shrank while being copied"))
                    : base::ErrnoToStatus(errno, absl::StrCat("read ", src));
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::pwrite(out, buf.data() + done, static_cast<size_t>(n - done), from + done);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        return base::ErrnoToStatus(errno, "write a volume copy");
      }
      done += w;
    }
    from += n;
  }
  return absl::OkStatus();
}

// Data extents only: holes stay holes because the copy was ftruncate'd to size first.
absl::Status CopySparse(int in, int out, off_t size, const std::string& src) {
  if (::ftruncate(out, size) != 0) {
    return base::ErrnoToStatus(errno, "size a volume copy");
  }
  std::string buf(kCopyChunk, '\0');
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      break;  // only a hole is left
    }
    if (data < 0) {
      // No SEEK_DATA on this filesystem: copy everything from here (zeros included).
      return CopyRange(in, out, pos, size, buf, src);
    }
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) {
      hole = size;
    }
    SM_RETURN_IF_ERROR(CopyRange(in, out, data, std::min(hole, size), buf, src));
    pos = hole;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<SavedDisk>> ReadSavedDisks(const std::string& snapshot_dir) {
  SM_ASSIGN_OR_RETURN(snapshot::v1::SnapshotState state,
                      snapshot::ReadStateFile(absl::StrCat(snapshot_dir, "/", kStateFileName)));
  std::vector<SavedDisk> out;
  for (const snapshot::v1::DeviceState& d : state.devices()) {
    if (d.has_block()) {
      out.push_back({.path = d.block().path(),
                     .read_only = d.block().read_only(),
                     .id = d.block().id(),
                     .size_bytes = d.block().capacity_sectors() * kSectorSize});
    }
  }
  return out;
}

bool IsVolumeDiskId(const std::string& id) {
  if (id.size() < 2 || id[0] != 'v') {
    return false;
  }
  for (size_t i = 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') {
      return false;
    }
  }
  return true;
}

std::string VolumeTemplatePath(const std::string& snapshot_dir, const SavedDisk& disk) {
  return absl::StrCat(snapshot_dir, "/", kVolumesSubdir, "/",
                      std::filesystem::path(disk.path).filename().string());
}

absl::Status SparseCopyFile(const std::string& src, const std::string& dst) {
  base::UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("open volume template ", src));
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("stat ", src));
  }
  std::string tmp = absl::StrCat(dst, ".tmp-XXXXXX");
  base::UniqueFd out(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!out.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  }
  absl::Cleanup drop_tmp = [&] { ::unlink(tmp.c_str()); };
  if (::fchmod(out.get(), 0600) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("chmod ", tmp));
  }
  // A reflink shares the template's blocks until either side writes; else copy the extents.
  if (::ioctl(out.get(), FICLONE, in.get()) != 0) {
    SM_RETURN_IF_ERROR(CopySparse(in.get(), out.get(), st.st_size, src));
  }
  if (::fsync(out.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dst.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(dst, " exists already"));
    }
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", dst));
  }
  std::move(drop_tmp).Cancel();
  return absl::OkStatus();
}

absl::Status ValidateVolumeName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= kMaxVolumeName;
  for (size_t i = 0; ok && i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '_' || c == '.' || c == '-'));
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume name '", name, "' is invalid: 1-64 characters from A-Z a-z 0-9 _ . -, "
        "starting with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoreDisks> PrepareRestoreDisks(const std::string& snapshot_dir,
                                                 const std::string& vm_dir,
                                                 const std::map<std::string, std::string>& named) {
  RestoreDisks out;
  std::error_code ec;
  if (!std::filesystem::is_directory(absl::StrCat(snapshot_dir, "/", kVolumesSubdir), ec)) {
    if (!named.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot ", snapshot_dir, " has no volumes to bind named volumes to"));
    }
    return out;
  }
  SM_ASSIGN_OR_RETURN(std::vector<SavedDisk> disks, ReadSavedDisks(snapshot_dir));
  absl::Cleanup drop_copies = [&] {
    for (const std::string& p : out.private_copies) {
      ::unlink(p.c_str());
    }
  };
  const std::string copies_dir = absl::StrCat(vm_dir, "/", kVolumesSubdir);
  size_t named_used = 0;
  for (const SavedDisk& d : disks) {
    if (!IsVolumeDiskId(d.id) || d.read_only) {
      // Delta and layers: shared, read-only, where the snapshot recorded them.
      out.disk_args.push_back(absl::StrCat(d.path, ",ro,id=", d.id));
      continue;
    }
    std::string file;
    if (auto it = named.find(d.id); it != named.end()) {
      file = it->second;
      ++named_used;
      struct stat st {};
      if (::stat(file.c_str(), &st) != 0) {
        return base::ErrnoToStatus(errno, absl::StrCat("volume file ", file));
      }
      if (static_cast<uint64_t>(st.st_size) != d.size_bytes) {
        return absl::FailedPreconditionError(absl::StrCat(
            "volume file ", file, " has ", st.st_size, " bytes but the snapshot's volume slot ",
            d.id, " has ", d.size_bytes, "; a named volume only fits slots of its own size"));
      }
    } else {
      std::filesystem::create_directories(copies_dir, ec);
      if (ec) {
        return absl::PermissionDeniedError(
            absl::StrCat("create ", copies_dir, ": ", ec.message()));
      }
      file = absl::StrCat(copies_dir, "/", d.id, ".img");
      ::unlink(file.c_str());  // a leftover of an earlier run under this id is not ours to keep
      SM_RETURN_IF_ERROR(SparseCopyFile(VolumeTemplatePath(snapshot_dir, d), file));
      out.private_copies.push_back(file);
    }
    out.disk_args.push_back(absl::StrCat(file, ",rw,id=", d.id));
  }
  if (named_used != named.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot ", snapshot_dir, " has no volume disk for ", named.size() - named_used,
        " of the named volumes given"));
  }
  std::move(drop_copies).Cancel();
  return out;
}

}  // namespace supermachine::vm
