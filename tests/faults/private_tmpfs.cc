// File: private_tmpfs.cc
// unshare + MS_PRIVATE + tmpfs size=N (see private_tmpfs.h).
#include "tests/faults/private_tmpfs.h"

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::faults {

absl::StatusOr<std::unique_ptr<PrivateTmpfs>> PrivateTmpfs::Mount(const std::string& dir,
                                                                  uint64_t bytes) {
  if (::unshare(CLONE_NEWNS) != 0) {
    return base::ErrnoToStatus(
        errno, "unshare(CLONE_NEWNS) for a private tmpfs (the fault tests need root / "
               "CAP_SYS_ADMIN to simulate a full disk)");
  }
  // Without this a mount under a shared parent (systemd makes / shared) would propagate to
  // the host's namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return base::ErrnoToStatus(errno, "make / private in the test's mount namespace");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));
  }
  const std::string opts = absl::StrCat("size=", bytes, ",mode=0755");
  if (::mount("sm-faults", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("mount tmpfs (", opts, ") on ", dir));
  }
  return std::unique_ptr<PrivateTmpfs>(new PrivateTmpfs(dir));
}

PrivateTmpfs::~PrivateTmpfs() { ::umount2(path_.c_str(), MNT_DETACH); }

absl::Status PrivateTmpfs::Resize(uint64_t bytes) {
  const std::string opts = absl::StrCat("size=", bytes);
  if (::mount("sm-faults", path_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
              opts.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("remount tmpfs ", path_, " with ", opts));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::faults
