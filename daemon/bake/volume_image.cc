// File: volume_image.cc
// mke2fs on a sparse temp file, superblock check, rename.
#include "daemon/bake/volume_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/bake/worker_booter.h"
#include "worker/base/child_process.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::bake {
namespace {

// ext4 on-disk superblock fields we read (all little-endian), offsets from byte 1024.
constexpr off_t kSuperblockOffset = 1024;
constexpr size_t kSuperblockReadSize = 1024;
constexpr size_t kBlocksCountLo = 4;
constexpr size_t kLogBlockSize = 24;
constexpr size_t kMagic = 56;
constexpr size_t kVolumeName = 120;
constexpr size_t kVolumeNameLen = 16;
constexpr size_t kFeatureIncompat = 0x60;
constexpr uint32_t kIncompat64Bit = 0x80;
constexpr size_t kBlocksCountHi = 0x150;  // only with the 64bit feature
constexpr uint16_t kExt4Magic = 0xEF53;
// mke2fs on a 16 TiB sparse file writes a few hundred MiB of metadata; bound it anyway.
constexpr absl::Duration kMke2fsTimeout = absl::Minutes(10);

uint32_t Le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

absl::Status MkdirIfMissing(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return base::ErrnoToStatus(errno, "volume: mkdir " + path);
  }
  return absl::OkStatus();
}

}  // namespace

std::string VolumeLabel(const Volume& volume) { return volume.name.substr(0, kVolumeNameLen); }

VolumeOwner VolumeOwnerFor(const std::string& user) {
  std::vector<std::string> parts = absl::StrSplit(user, absl::MaxSplits(':', 1));
  uint32_t uid = 0;
  if (user.empty() || !absl::SimpleAtoi(parts[0], &uid)) {
    return {};
  }
  uint32_t gid = uid;
  if (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &gid)) {
    return {};  // a named group: resolved in the guest only
  }
  return {.uid = uid, .gid = gid};
}

absl::Status CheckExt4Image(const std::string& path, const std::string& label) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return base::ErrnoToStatus(errno, "volume: open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, "volume: stat " + path);
  }
  unsigned char sb[kSuperblockReadSize] = {};
  const ssize_t n = ::pread(fd.get(), sb, sizeof(sb), kSuperblockOffset);
  if (n != static_cast<ssize_t>(sizeof(sb))) {
    return absl::DataLossError(absl::StrCat("volume image ", path, ": too short for an ext4 superblock"));
  }
  const uint16_t magic = static_cast<uint16_t>(sb[kMagic] | sb[kMagic + 1] << 8);
  if (magic != kExt4Magic) {
    return absl::DataLossError(
        absl::StrCat("volume image ", path, ": no ext4 superblock (magic 0x", absl::Hex(magic), ")"));
  }
  const uint32_t log = Le32(sb + kLogBlockSize);
  if (log > 6) {
    return absl::DataLossError(absl::StrCat("volume image ", path, ": block size 2^", 10 + log));
  }
  uint64_t blocks = Le32(sb + kBlocksCountLo);
  if ((Le32(sb + kFeatureIncompat) & kIncompat64Bit) != 0) {
    blocks |= static_cast<uint64_t>(Le32(sb + kBlocksCountHi)) << 32;
  }
  const uint64_t fs_bytes = blocks << (10 + log);
  if (fs_bytes == 0 || fs_bytes > static_cast<uint64_t>(st.st_size)) {
    return absl::DataLossError(absl::StrCat("volume image ", path, ": the filesystem (", fs_bytes,
                                            " bytes) does not fit the file (", st.st_size, ")"));
  }
  const char* name = reinterpret_cast<const char*>(sb + kVolumeName);
  const std::string found(name, ::strnlen(name, kVolumeNameLen));
  if (found != label) {
    return absl::DataLossError(absl::StrCat("volume image ", path, ": label '", found,
                                            "', expected '", label, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateVolumeImage(const Volume& volume, const std::string& dir,
                                              const VolumeImageOptions& options) {
  SM_RETURN_IF_ERROR(CheckVolume(volume));
  const std::string vol_dir = absl::StrCat(dir, "/", kVolumesSubdir);
  SM_RETURN_IF_ERROR(MkdirIfMissing(vol_dir));
  const std::string final_path = absl::StrCat(dir, "/", VolumeImageRelPath(volume));
  if (::access(final_path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat("volume image ", final_path, " exists"));
  }
  const std::string tmp = absl::StrCat(vol_dir, "/.", volume.name, ".img.tmp-", ::getpid());
  const std::string log_path = tmp + ".log";
  absl::Cleanup drop = [&] {
    ::unlink(tmp.c_str());
    ::unlink(log_path.c_str());
  };
  {
    base::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, "volume: create " + tmp);
    }
    // Sparse: only what mke2fs writes takes space.
    if (::ftruncate(fd.get(), static_cast<off_t>(volume.size_bytes)) != 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("volume: size ", tmp, " to ",
                                                     volume.size_bytes, " bytes"));
    }
  }
  base::UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log.valid()) {
    return base::ErrnoToStatus(errno, "volume: create " + log_path);
  }
  const std::vector<std::string> argv = {
      options.mke2fs, "-F", "-q", "-t", "ext4", "-m", "0", "-L", VolumeLabel(volume), "-E",
      absl::StrCat("root_owner=", options.owner.uid, ":", options.owner.gid), tmp};
  absl::StatusOr<base::ChildProcess> child = base::ChildProcess::Spawn(
      {.argv = argv, .stdout_fd = log.get(), .stderr_fd = log.get()});
  if (!child.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume '", volume.name, "': cannot run ", options.mke2fs, " (", child.status().message(),
        "); install e2fsprogs"));
  }
  absl::StatusOr<base::ExitStatus> exit = child->WaitFor(kMke2fsTimeout);
  if (!exit.ok() || !exit->success()) {
    const std::string why = exit.ok() ? exit->ToString() : std::string(exit.status().message());
    const std::string out = FileTail(log_path, 20);
    const absl::StatusCode code = absl::StrContains(out, "No space left")
                                      ? absl::StatusCode::kResourceExhausted
                                      : absl::StatusCode::kFailedPrecondition;
    return absl::Status(code, absl::StrCat("volume '", volume.name, "': ", options.mke2fs, " ",
                                           why, out.empty() ? "" : ":\n", out));
  }
  SM_RETURN_IF_ERROR(CheckExt4Image(tmp, VolumeLabel(volume)));
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, "volume: rename into " + final_path);
  }
  return final_path;
}

}  // namespace supermachine::bake
