// File: guest-agent/rootfs/disks.cc
// Reads /sys/block/*/serial.
#include "guest-agent/rootfs/disks.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

namespace supermachine::agent {

std::map<std::string, std::string> DisksBySerial(const std::string& sys_block_dir) {
  std::map<std::string, std::string> out;
  DIR* dir = opendir(sys_block_dir.c_str());
  if (dir == nullptr) {
    return out;
  }
  while (const dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    std::string serial_path = sys_block_dir;
    serial_path.append("/").append(name).append("/serial");
    int fd = open(serial_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0) {
      continue;
    }
    std::string serial(buf, static_cast<size_t>(n));
    while (!serial.empty() && (serial.back() == '\n' || serial.back() == '\0' ||
                               serial.back() == ' ')) {
      serial.pop_back();
    }
    if (!serial.empty()) {
      out.emplace(serial, "/dev/" + name);
    }
  }
  closedir(dir);
  return out;
}

}  // namespace supermachine::agent
