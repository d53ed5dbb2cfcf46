// File: guest-agent/init/mounts.cc
// Mounts the pseudo filesystems every later step of the agent relies on.
#include "guest-agent/init/mounts.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace supermachine::agent {
namespace {

struct PseudoMount {
  const char* fstype;
  const char* target;
  unsigned long flags;
  const char* data;
};

// nosuid/noexec/nodev as systemd and Kata's agent mount them; /dev needs device nodes and
// keeps exec off as well (nothing is executed from /dev). Order matters: /dev/pts and /dev/shm
// live on the devtmpfs. ptmxmode=0666 makes /dev/pts/ptmx usable by non-root workloads (the
// /dev/ptmx node of devtmpfs is already 0666). /tmp and /run are the usual tmpfs; /run also
// holds the agent's staging area while the root is assembled (rootfs/assemble.h).
constexpr std::array<PseudoMount, 7> kEssential = {{
    {"proc", "/proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, nullptr},
    {"sysfs", "/sys", MS_NOSUID | MS_NOEXEC | MS_NODEV, nullptr},
    {"devtmpfs", "/dev", MS_NOSUID | MS_NOEXEC, nullptr},
    {"devpts", "/dev/pts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
    {"tmpfs", "/dev/shm", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/run", MS_NOSUID | MS_NODEV, "mode=0755"},
}};

}  // namespace

std::vector<std::string> MountEssentialFilesystems() {
  std::vector<std::string> errors;
  for (const PseudoMount& m : kEssential) {
    if (mkdir(m.target, 0755) != 0 && errno != EEXIST) {
      errors.push_back(std::string("mkdir ") + m.target + ": " + std::strerror(errno));
      continue;
    }
    if (mount(m.fstype, m.target, m.fstype, m.flags, m.data) != 0 && errno != EBUSY) {
      errors.push_back(std::string("mount ") + m.fstype + " on " + m.target + ": " +
                       std::strerror(errno));
    }
  }
  return errors;
}

}  // namespace supermachine::agent
