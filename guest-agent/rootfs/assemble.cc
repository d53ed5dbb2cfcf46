// File: guest-agent/rootfs/assemble.cc
// The mount sequence from boot root to container root.
#include "guest-agent/rootfs/assemble.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "guest-agent/rootfs/disks.h"
#include "guest-agent/rootfs/overlay_options.h"

namespace supermachine::agent {
namespace {

// Pseudo filesystems mounted on the boot root that the container root inherits. /dev moves
// with its submounts (/dev/pts, /dev/shm); /run last, as it holds the staging area.
constexpr std::array<const char*, 5> kCarriedOver = {"/proc", "/sys", "/dev", "/tmp", "/run"};
// Where pivot_root parks the boot root; the delta's /.supermachine always exists.
constexpr char kOldRoot[] = "/.supermachine/oldroot";

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// mkdir -p; true if the directory exists afterwards.
bool MakeDirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      std::string prefix = path.substr(0, pos);
      if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
        return false;
      }
    }
  }
  return true;
}

std::string KnownDisks(const std::map<std::string, std::string>& disks) {
  std::string out;
  for (const auto& [serial, dev] : disks) {
    if (!out.empty()) {
      out += ", ";
    }
    out.append(serial).append("=").append(dev);
  }
  return out.empty() ? "none" : out;
}

class Assembler {
 public:
  Assembler(const LaunchConfig& config, const RootfsPaths& paths)
      : config_(config), paths_(paths), disks_(DisksBySerial(paths.sys_block)) {}

  std::string Run() {
    std::string err = Stage();
    if (err.empty()) {
      err = Pivot();
    }
    // A parked workload gets its volumes when it starts (MountVolumes, after a restore).
    if (err.empty() && !config_.start_on_restore) {
      err = MountVolumes();
    }
    return err;
  }

  std::string MountVolumes() {
    std::string err;
    for (const VolumeMount& v : config_.volumes) {
      std::string dev = Device(v.disk, "volume", &err);
      if (dev.empty()) {
        return err;
      }
      // The snapshot may hold this disk's first blocks in the block device's cache (the
      // kernel's partition scan at boot), read from the image the bake made; a restore may
      // hand in a copy that has been written since. Drop them so ext4 reads the disk as it is.
      int fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ioctl(fd, BLKFLSBUF, 0);
        close(fd);
      }
      if (!MakeDirs(v.path, 0755)) {
        return Errno("mkdir volume mount point " + v.path);
      }
      if (mount(dev.c_str(), v.path.c_str(), "ext4", 0, nullptr) != 0) {
        return Errno("mount volume \"" + v.disk + "\" (" + dev + ", ext4) on " + v.path);
      }
    }
    return "";
  }

 private:
  // Resolves a disk id to its device node; "" and sets *error when absent.
  std::string Device(const std::string& id, const std::string& role, std::string* error) {
    auto it = disks_.find(id);
    if (it == disks_.end()) {
      *error = role + " disk \"" + id + "\" not found (disks by virtio serial: " +
               KnownDisks(disks_) + ")";
      return "";
    }
    return it->second;
  }

  std::string MountAt(const std::string& source, const std::string& target, const char* fstype,
                      unsigned long flags, const char* data, const std::string& role) {
    if (!MakeDirs(target, 0755)) {
      return Errno("mkdir " + target);
    }
    if (mount(source.c_str(), target.c_str(), fstype, flags, data) != 0) {
      return Errno("mount " + role + " (" + source + ", " + (fstype ? fstype : "bind") + ") on " +
                   target);
    }
    staged_.push_back(target);
    return "";
  }

  std::string Stage() {
    const std::string& s = paths_.stage;
    OverlayLayout layout;
    std::string err;
    for (size_t i = 0; i < config_.layers.size(); ++i) {
      std::string dev = Device(config_.layers[i], "layer", &err);
      if (dev.empty()) {
        return err;
      }
      std::string dir = s + "/layers/" + std::to_string(i);
      err = MountAt(dev, dir, "squashfs", MS_RDONLY, nullptr,
                    "layer " + std::to_string(i) + " \"" + config_.layers[i] + "\"");
      if (!err.empty()) {
        return err;
      }
      layout.lowers_bottom_first.push_back(dir);
    }
    // The boot root is the delta; a non-recursive bind shows it without the pseudo mounts.
    err = MountAt("/", s + "/delta", nullptr, MS_BIND, nullptr, "delta");
    if (!err.empty()) {
      return err;
    }
    layout.lowers_bottom_first.push_back(s + "/delta");
    if (config_.upper_disk.empty()) {
      err = MountAt("tmpfs", s + "/rw", "tmpfs", MS_NOSUID, "mode=0755", "upper");
    } else {
      std::string dev = Device(config_.upper_disk, "upper", &err);
      if (dev.empty()) {
        return err;
      }
      err = MountAt(dev, s + "/rw", "ext4", 0, nullptr, "upper \"" + config_.upper_disk + "\"");
    }
    if (!err.empty()) {
      return err;
    }
    layout.upper = s + "/rw/upper";
    layout.work = s + "/rw/work";
    if (!MakeDirs(layout.upper, 0755) || !MakeDirs(layout.work, 0700)) {
      return Errno("mkdir upper/work in " + s + "/rw");
    }
    std::string data = OverlayMountData(layout);
    err = MountAt("overlay", s + "/root", "overlay", 0, data.c_str(), "root overlay");
    if (!err.empty()) {
      return err + " (" + data + ")";
    }
    return "";
  }

  std::string Pivot() {
    const std::string root = paths_.stage + "/root";
    const std::string old = root + kOldRoot;
    if (!MakeDirs(old, 0700)) {
      return Errno("mkdir " + old);
    }
    // glibc has no wrapper for pivot_root.
    if (syscall(SYS_pivot_root, root.c_str(), old.c_str()) != 0) {
      return Errno("pivot_root " + root);
    }
    if (chdir("/") != 0) {
      return Errno("chdir / after pivot_root");
    }
    for (const char* p : kCarriedOver) {
      std::string from = std::string(kOldRoot) + p;
      if (!MakeDirs(p, 0755)) {
        return Errno(std::string("mkdir ") + p + " in the new root");
      }
      if (mount(from.c_str(), p, nullptr, MS_MOVE, nullptr) != 0) {
        return Errno("move " + from + " to " + p);
      }
    }
    // The staging mounts moved with /run. overlayfs holds private clones of its layers, so
    // detaching the originals only tidies /run and the mount table for the workload.
    // The staging mounts (under /run) moved with /run. overlayfs holds private clones of its
    // layers, so detaching the originals only tidies /run and the workload's mount table.
    for (auto it = staged_.rbegin(); it != staged_.rend(); ++it) {
      if (*it != root) {
        umount2(it->c_str(), MNT_DETACH);
      }
      rmdir(it->c_str());
    }
    rmdir((paths_.stage + "/layers").c_str());
    rmdir(paths_.stage.c_str());
    if (umount2(kOldRoot, MNT_DETACH) != 0) {
      return Errno(std::string("detach the boot root at ") + kOldRoot);
    }
    rmdir(kOldRoot);
    return "";
  }

  const LaunchConfig& config_;
  const RootfsPaths& paths_;
  std::map<std::string, std::string> disks_;
  std::vector<std::string> staged_;  // Mount points under the stage dir, in mount order.
};

}  // namespace

std::string AssembleRoot(const LaunchConfig& config, const RootfsPaths& paths) {
  return Assembler(config, paths).Run();
}

std::string MountVolumes(const LaunchConfig& config, const RootfsPaths& paths) {
  return Assembler(config, paths).MountVolumes();
}

}  // namespace supermachine::agent
