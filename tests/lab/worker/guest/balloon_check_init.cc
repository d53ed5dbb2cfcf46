// File: balloon_check_init.cc
// A static PID 1 for the balloon lab test (balloon_lab_test.cc). The host drives it through
// the first 512 bytes of /dev/vdb, which it rewrites while the guest polls them (O_DIRECT, so
// every read reaches the host file) — no timing on either side. Two rounds, the host
// snapshots and restores the VM between them (the guest just keeps polling):
//   "FILL<n>": fill /dev/shm/fill with 128 MiB, print "sm-balloon: filled<n>";
//   "DROP<n>": delete the file (the freed pages are reported ~2 s later), print
//              "sm-balloon: deleted<n>";
// Then, in the restored VM, a balloon target (the host's `balloon-target`):
//   "CACHE":   read /dev/vdb from 1 MiB to its end (buffered) so its pages sit in the page
//              cache — clean and reclaimable for the guest, private dirty copy-on-write pages
//              for the host — and print "sm-balloon: cached MiB=<n>";
//   "PING":    print "sm-balloon: pong <MemFree line>" (the guest runs with the balloon
//              inflated);
//   "DONE":    write and check 96 MiB of fresh memory (reported pages must come back usable
//              and keep what is written to them), print "sm-balloon: alive verify=ok|bad", and
//              reset the VM (the worker boots guests with reboot=t).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void Say(const std::string& line) {
  std::string out = "sm-balloon: " + line + "\n";
  (void)!write(1, out.data(), out.size());
}

// Waits until /dev/vdb starts with `word`.
void WaitFor(const char* word) {
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, 4096) != 0) {
    Say("posix_memalign failed");
    return;
  }
  for (;;) {
    int fd = open("/dev/vdb", O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = pread(fd, buf, 512, 0);
      close(fd);
      if (n == 512 && std::memcmp(buf, word, std::strlen(word)) == 0) {
        break;
      }
    }
    usleep(100 * 1000);
  }
  free(buf);
}

bool Fill() {
  int fd = open("/dev/shm/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    Say(std::string("open /dev/shm/fill: ") + strerror(errno));
    return false;
  }
  std::vector<uint8_t> chunk(1 << 20);
  for (int mib = 0; mib < 128; ++mib) {
    std::memset(chunk.data(), 0x5a ^ mib, chunk.size());
    if (write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) {
      Say(std::string("write /dev/shm/fill: ") + strerror(errno));
      close(fd);
      return false;
    }
  }
  close(fd);
  return true;
}

// Reads /dev/vdb past the command sector into the page cache; returns the MiB read.
int ReadIntoPageCache() {
  int fd = open("/dev/vdb", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Say(std::string("open /dev/vdb: ") + strerror(errno));
    return 0;
  }
  std::vector<uint8_t> chunk(1 << 20);
  int mib = 0;
  for (off_t at = 1 << 20;; at += 1 << 20) {
    if (pread(fd, chunk.data(), chunk.size(), at) != static_cast<ssize_t>(chunk.size())) {
      break;
    }
    ++mib;
  }
  close(fd);
  return mib;
}

// The MemFree line of /proc/meminfo, for the log.
std::string MemFree() {
  char buf[512] = {};
  int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "?";
  }
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  const std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  const size_t at = text.find("MemFree:");
  return at == std::string::npos ? "?" : text.substr(at, text.find('\n', at) - at);
}

bool Verify() {
  constexpr size_t kBytes = 96u << 20;
  auto* p = static_cast<uint8_t*>(malloc(kBytes));
  if (p == nullptr) {
    return false;
  }
  for (size_t i = 0; i < kBytes; i += 4096) {
    std::memset(p + i, static_cast<int>((i >> 12) & 0xff), 4096);
  }
  bool ok = true;
  for (size_t i = 0; i < kBytes && ok; i += 4096) {
    ok = p[i] == ((i >> 12) & 0xff) && p[i + 4095] == ((i >> 12) & 0xff);
  }
  free(p);
  return ok;
}

// "bound features=<bits>" when a virtio device is bound to the balloon driver (the driver
// alone is built in), with its negotiated feature bits as sysfs shows them ('0'/'1', bit 0
// first), else "unbound".
std::string BalloonBinding() {
  const std::string drv = "/sys/bus/virtio/drivers/virtio_balloon";
  DIR* d = opendir(drv.c_str());
  if (d == nullptr) {
    return "unbound";
  }
  std::string device;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, "virtio", 6) == 0) {
      device = e->d_name;
    }
  }
  closedir(d);
  if (device.empty()) {
    return "unbound";
  }
  char bits[128] = {};
  int fd = open((drv + "/" + device + "/features").c_str(), O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, bits, sizeof(bits) - 1) : -1;
  if (fd >= 0) {
    close(fd);
  }
  std::string features(bits, n > 0 ? static_cast<size_t>(n) : 0);
  while (!features.empty() && features.back() == '\n') {
    features.pop_back();
  }
  return "bound features=" + (features.empty() ? std::string("?") : features);
}

}  // namespace

int main() {
  mount("proc", "/proc", "proc", 0, nullptr);
  mount("sysfs", "/sys", "sysfs", 0, nullptr);
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);  // EBUSY if the kernel mounted it: fine.
  Say("device=" + BalloonBinding());
  mkdir("/dev/shm", 01777);
  if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=200m") != 0) {
    Say(std::string("mount /dev/shm: ") + strerror(errno));
  }
  for (int round = 1; round <= 2; ++round) {
    const std::string n = std::to_string(round);
    WaitFor(("FILL" + n).c_str());
    if (!Fill()) {
      break;
    }
    Say("filled" + n);
    WaitFor(("DROP" + n).c_str());
    unlink("/dev/shm/fill");
    Say("deleted" + n);
  }
  WaitFor("CACHE");
  Say("cached MiB=" + std::to_string(ReadIntoPageCache()));
  WaitFor("PING");
  Say("pong " + MemFree());
  WaitFor("DONE");
  Say(std::string("alive verify=") + (Verify() ? "ok" : "bad"));
  sync();
  reboot(RB_AUTOBOOT);
  return 0;
}
