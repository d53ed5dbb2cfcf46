// File: guest-agent/rootfs/network.cc
// sethostname and the SIOCSIFFLAGS dance for lo.
#include "guest-agent/rootfs/network.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace supermachine::agent {

std::string SetHostname(const std::string& name) {
  if (sethostname(name.data(), name.size()) != 0) {
    return "sethostname " + name + ": " + std::strerror(errno);
  }
  return "";
}

std::string BringUpLoopback() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return std::string("socket for lo: ") + std::strerror(errno);
  }
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  std::string error;
  if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) {
    error = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  } else {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
    if (ioctl(fd, SIOCSIFFLAGS, &req) != 0) {
      error = std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
    }
  }
  close(fd);
  return error;
}

}  // namespace supermachine::agent
