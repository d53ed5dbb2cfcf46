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
};

// nosuid/noexec/nodev as systemd and Kata's agent mount them; /dev needs device nodes and
// keeps exec off as well (nothing is executed from /dev).
constexpr std::array<PseudoMount, 3> kEssential = {{
    {"proc", "/proc", MS_NOSUID | MS_NOEXEC | MS_NODEV},
    {"sysfs", "/sys", MS_NOSUID | MS_NOEXEC | MS_NODEV},
    {"devtmpfs", "/dev", MS_NOSUID | MS_NOEXEC},
}};

}  // namespace

std::vector<std::string> MountEssentialFilesystems() {
  std::vector<std::string> errors;
  for (const PseudoMount& m : kEssential) {
    if (mkdir(m.target, 0755) != 0 && errno != EEXIST) {
      errors.push_back(std::string("mkdir ") + m.target + ": " + std::strerror(errno));
      continue;
    }
    if (mount(m.fstype, m.target, m.fstype, m.flags, nullptr) != 0 && errno != EBUSY) {
      errors.push_back(std::string("mount ") + m.fstype + " on " + m.target + ": " +
                       std::strerror(errno));
    }
  }
  return errors;
}

}  // namespace supermachine::agent
