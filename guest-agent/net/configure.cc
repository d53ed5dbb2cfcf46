// File: guest-agent/net/configure.cc
// SIOCSIFADDR/SIOCSIFNETMASK/SIOCSIFFLAGS/SIOCADDRT and the sysfs driver rebind.
#include "guest-agent/net/configure.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

namespace supermachine::agent::net {
namespace {

constexpr char kDriverDir[] = "/sys/bus/virtio/drivers/virtio_net";

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string Basename(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string ReadLink(const std::string& path) {
  char buf[512];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::string WriteSmallFile(const std::string& path, const std::string& contents) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    return Errno("open " + path);
  }
  const ssize_t n = write(fd, contents.data(), contents.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(contents.size())) {
    errno = n < 0 ? err : EIO;
    return Errno("write " + path);
  }
  return "";
}

sockaddr SockaddrIn(in_addr a) {
  sockaddr s{};
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr = a;
  std::memcpy(&s, &sin, sizeof(sin));
  return s;
}

}  // namespace

std::string FindVirtioNetInterface() {
  DIR* d = opendir("/sys/class/net");
  if (d == nullptr) {
    return "";
  }
  std::string found;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (Basename(ReadLink("/sys/class/net/" + name + "/device/driver")) == "virtio_net") {
      found = name;
      break;
    }
  }
  closedir(d);
  return found;
}

std::string Configure(const std::string& ifname, const GuestNet& net,
                      const std::string& resolv_conf_path) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return "no virtio-net interface found (is virtio_net built into the guest kernel?)";
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Errno("socket for " + ifname);
  }
  std::string error;
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  req.ifr_addr = SockaddrIn(net.addr);
  in_addr mask{};
  mask.s_addr = htonl(net.prefix_len >= 32 ? 0xffffffffu : ~(0xffffffffu >> net.prefix_len));
  if (ioctl(fd, SIOCSIFADDR, &req) != 0) {
    error = Errno("SIOCSIFADDR " + ifname);
  }
  if (error.empty()) {
    req.ifr_netmask = SockaddrIn(mask);
    if (ioctl(fd, SIOCSIFNETMASK, &req) != 0) {
      error = Errno("SIOCSIFNETMASK " + ifname);
    }
  }
  if (error.empty()) {
    if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) {
      error = Errno("SIOCGIFFLAGS " + ifname);
    } else {
      req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
      if (ioctl(fd, SIOCSIFFLAGS, &req) != 0) {
        error = Errno("SIOCSIFFLAGS " + ifname + " up");
      }
    }
  }
  if (error.empty()) {
    rtentry rt{};
    rt.rt_dst = SockaddrIn(in_addr{});
    rt.rt_genmask = SockaddrIn(in_addr{});
    rt.rt_gateway = SockaddrIn(net.gateway);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    std::string dev = ifname;
    rt.rt_dev = dev.data();
    if (ioctl(fd, SIOCADDRT, &rt) != 0 && errno != EEXIST) {
      error = Errno("SIOCADDRT default via gateway on " + ifname);
    }
  }
  close(fd);
  if (!error.empty() || resolv_conf_path.empty()) {
    return error;
  }
  char dns[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &net.dns, dns, sizeof(dns));
  const std::string dir = resolv_conf_path.substr(0, resolv_conf_path.rfind('/'));
  if (!dir.empty()) {
    mkdir(dir.c_str(), 0755);  // EEXIST is the normal case.
  }
  // resolv.conf is often a dangling symlink in images (to systemd-resolved's file): replace it.
  struct stat st {};
  if (lstat(resolv_conf_path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    unlink(resolv_conf_path.c_str());
  }
  return WriteSmallFile(resolv_conf_path, std::string("nameserver ") + dns + "\n");
}

std::string Reconfigure(const GuestNet& net, const std::string& resolv_conf_path) {
  const std::string ifname = FindVirtioNetInterface();
  if (ifname.empty()) {
    return "no virtio-net interface to re-configure";
  }
  const std::string device = Basename(ReadLink("/sys/class/net/" + ifname + "/device"));
  if (device.empty()) {
    return "no sysfs device behind " + ifname;
  }
  // Unbind + bind: the driver probes again and reads the new MAC from config space; the old
  // interface's addresses, routes and neighbour entries go with it.
  if (std::string err = WriteSmallFile(std::string(kDriverDir) + "/unbind", device);
      !err.empty()) {
    return "unbinding " + device + " from virtio_net: " + err;
  }
  if (std::string err = WriteSmallFile(std::string(kDriverDir) + "/bind", device);
      !err.empty()) {
    return "binding " + device + " to virtio_net: " + err;
  }
  std::string fresh;
  for (int i = 0; i < 200 && fresh.empty(); ++i) {  // Probe registers the netdev; ≤ 2 s.
    fresh = FindVirtioNetInterface();
    if (fresh.empty()) {
      usleep(10000);
    }
  }
  return Configure(fresh, net, resolv_conf_path);
}

std::string ApplyFromKernelCmdline(bool after_restore, const std::string& root) {
  const int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "";  // No procfs (host tests): nothing to configure.
  }
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  const ParsedNet parsed = ParseNetCmdline(n > 0 ? std::string(buf, static_cast<size_t>(n)) : "");
  if (!parsed.error.empty()) {
    return parsed.error;
  }
  if (!parsed.net.has_value()) {
    return "";
  }
  const std::string resolv = (root == "/" ? "" : root) + "/etc/resolv.conf";
  return after_restore ? Reconfigure(*parsed.net, resolv)
                       : Configure(FindVirtioNetInterface(), *parsed.net, resolv);
}

}  // namespace supermachine::agent::net
