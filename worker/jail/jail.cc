// File: jail.cc
// Namespaces, pivot_root and privilege dropping for EnterJail (jail.h). Order matters and is
// explained above each step.
#include "worker/jail/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace supermachine::jail {
namespace {

absl::Status Check(int rc, absl::string_view what) {
  return rc == 0 ? absl::OkStatus() : base::ErrnoToStatus(errno, what);
}

// Threads in /proc/self/task: unshare(CLONE_NEWNS) and pivot_root would change this thread's
// view only, leaving others outside the jail.
absl::Status RequireSingleThread() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) {
    return base::ErrnoToStatus(errno, "jail: list /proc/self/task");
  }
  int tasks = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') {
      ++tasks;
    }
  }
  closedir(d);
  if (tasks != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("jail: the worker has ", tasks, " threads; it must be entered with one"));
  }
  return absl::OkStatus();
}

// Creates what a bind mount lands on: a directory for a directory, an empty file otherwise.
absl::Status MakeMountPoint(const std::string& source, const std::string& target) {
  struct stat st {};
  if (stat(source.c_str(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("jail: bind source ", source));
  }
  std::error_code ec;
  const std::filesystem::path t(target);
  std::filesystem::create_directories(S_ISDIR(st.st_mode) ? t : t.parent_path(), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("jail: create ", target, ": ", ec.message()));
  }
  if (!S_ISDIR(st.st_mode)) {
    base::UniqueFd fd(open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, absl::StrCat("jail: create ", target));
    }
  }
  return absl::OkStatus();
}

absl::Status Bind(const std::string& root, const BindMount& b, std::optional<uid_t> uid,
                  std::optional<gid_t> gid) {
  const std::string target = root + b.path;
  SM_RETURN_IF_ERROR(MakeMountPoint(b.path, target));
  SM_RETURN_IF_ERROR(Check(mount(b.path.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC,
                                 nullptr),
                           absl::StrCat("jail: bind ", b.path)));
  struct stat st {};
  (void)stat(b.path.c_str(), &st);
  const bool device = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode);
  // A bind mount's flags can only be changed by a remount of the bind: nosuid always, nodev
  // except for device nodes (/dev/urandom), read-only unless asked otherwise.
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (device ? 0 : MS_NODEV) |
                        (b.read_only ? MS_RDONLY : 0);
  SM_RETURN_IF_ERROR(Check(mount(nullptr, target.c_str(), nullptr, flags, nullptr),
                           absl::StrCat("jail: remount ", b.path)));
  if (!b.read_only && uid.has_value() &&
      chown(b.path.c_str(), *uid, gid.value_or(static_cast<gid_t>(-1))) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("jail: chown ", b.path, " to the VM's uid"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CloseOnExecAll() {
  return Check(static_cast<int>(syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC)),
               "close_range(CLOSE_RANGE_CLOEXEC)");
}

absl::Status DropPrivileges(std::optional<uid_t> uid, std::optional<gid_t> gid) {
  if (uid.has_value() != gid.has_value()) {
    return absl::InvalidArgumentError("jail: give both --uid and --gid, or neither");
  }
  // The bounding set first: dropping from it needs CAP_SETPCAP, which setresuid takes away.
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return base::ErrnoToStatus(errno, absl::StrCat("jail: drop capability ", cap));
    }
  }
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (uid.has_value()) {
    // Groups and gid while we still may; the uid last.
    SM_RETURN_IF_ERROR(Check(setgroups(0, nullptr), "jail: setgroups"));
    SM_RETURN_IF_ERROR(Check(setresgid(*gid, *gid, *gid), absl::StrCat("jail: setresgid ", *gid)));
    SM_RETURN_IF_ERROR(Check(setresuid(*uid, *uid, *uid), absl::StrCat("jail: setresuid ", *uid)));
  }
  // A non-zero uid already lost its capabilities with setresuid; root (no --uid) drops them
  // here, so even an un-switched worker holds none.
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[2] = {};
  SM_RETURN_IF_ERROR(Check(static_cast<int>(syscall(SYS_capset, &header, data)),
                           "jail: clear capabilities"));
  return Check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
}

absl::Status EnterJail(const JailOptions& o) {
  if (o.jail_dir.empty() || o.jail_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--jail-dir '", o.jail_dir, "': must be an absolute path"));
  }
  SM_RETURN_IF_ERROR(RequireSingleThread());
  std::error_code ec;
  std::filesystem::create_directories(o.jail_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("jail: create ", o.jail_dir, ": ", ec.message()));
  }
  const int ns = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (o.new_net_ns ? CLONE_NEWNET : 0);
  SM_RETURN_IF_ERROR(Check(unshare(ns), "jail: unshare namespaces"));
  // Nothing we mount from here on may propagate back to the host's mount table.
  SM_RETURN_IF_ERROR(Check(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr),
                           "jail: make mounts private"));
  // A fresh tmpfs as the new root: nothing of the host's directory tree leaks in, and nothing
  // is left on disk afterwards. pivot_root needs the new root to be a mount point; it is.
  SM_RETURN_IF_ERROR(Check(mount("supermachine-jail", o.jail_dir.c_str(), "tmpfs",
                                 MS_NOSUID | MS_NODEV, "mode=0755,size=1m"),
                           absl::StrCat("jail: tmpfs on ", o.jail_dir)));
  for (const BindMount& b : o.binds) {
    SM_RETURN_IF_ERROR(Bind(o.jail_dir, b, o.uid, o.gid));
  }
  if (o.mount_proc) {
    const std::string proc = o.jail_dir + "/proc";
    SM_RETURN_IF_ERROR(Check(mkdir(proc.c_str(), 0555), "jail: mkdir /proc"));
    SM_RETURN_IF_ERROR(Check(mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                   "hidepid=invisible,subset=pid"),
                             "jail: mount a pid-only /proc (needs Linux 5.8+)"));
  }
  SM_RETURN_IF_ERROR(Check(chdir(o.jail_dir.c_str()), "jail: chdir"));
  // pivot_root(".", "."): the old root ends up stacked on the new one and is detached at once,
  // the idiom runc uses; no directory for the old root is needed inside the jail.
  SM_RETURN_IF_ERROR(Check(static_cast<int>(syscall(SYS_pivot_root, ".", ".")), "jail: pivot_root"));
  SM_RETURN_IF_ERROR(Check(umount2(".", MNT_DETACH), "jail: detach the old root"));
  SM_RETURN_IF_ERROR(Check(chdir("/"), "jail: chdir /"));
  // The jail's own root holds only mount points: read-only from here on.
  SM_RETURN_IF_ERROR(Check(mount(nullptr, "/", nullptr,
                                 MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr),
                           "jail: remount / read-only"));
  static constexpr char kHostname[] = "supermachine-worker";
  (void)sethostname(kHostname, sizeof(kHostname) - 1);
  SM_RETURN_IF_ERROR(CloseOnExecAll());
  return DropPrivileges(o.uid, o.gid);
}

}  // namespace supermachine::jail
