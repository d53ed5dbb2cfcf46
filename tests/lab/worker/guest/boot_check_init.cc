// File: boot_check_init.cc
// A static PID 1 for the worker's lab tests. It runs the checks named in the `smcheck`
// environment variable (the kernel passes unknown `key=value` boot parameters to init as
// environment), printing one "sm-check: ..." line per result for the host to parse, then
// resets the VM (the worker boots guests with reboot=t). Checks:
//   basic   read /payload.txt from the read-only squashfs root, write "SMOK:<payload>" to the
//           start of /dev/vdb (read-write), fsync.
//   cpus    print the number of online CPUs.
//   rng     read 32 bytes from /dev/hwrng (virtio-rng) and print which rng is current.
//   disk64  write 64 MiB of pseudo-random data to /dev/vdb, read it back with O_DIRECT and print
//           FNV-1a-64 of what was written and what was read.
//   hang    sleep forever (the host stops the VM with SIGTERM).
//   cpuinfo print the boot CPU's model name and flags lines from /proc/cpuinfo.
//   dmesg   print the kernel log with timestamps (kept even with `quiet`; for boot profiling).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

void Say(const std::string& line) {
  std::string out = "sm-check: " + line + "\n";
  (void)!write(1, out.data(), out.size());
}

std::string ReadSmall(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "";
  }
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

uint64_t Fnv1a(const uint8_t* p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; ++i) {
    h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return h;
}
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;

void Basic() {
  std::string payload = ReadSmall("/payload.txt");
  Say("payload=" + payload.substr(0, payload.find('\n')));
  std::string out = "SMOK:" + payload;
  int fd = open("/dev/vdb", O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size()) ||
      fsync(fd) != 0) {
    Say(std::string("basic FAILED: ") + strerror(errno));
  } else {
    Say("basic wrote " + std::to_string(out.size()));
  }
  if (fd >= 0) {
    close(fd);
  }
}

void Cpus() { Say("cpus_online=" + std::to_string(sysconf(_SC_NPROCESSORS_ONLN))); }

void Rng() {
  std::string current = ReadSmall("/sys/class/misc/hw_random/rng_current");
  Say("rng_current=" + current.substr(0, current.find('\n')));
  int fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
  uint8_t buf[32];
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
  Say("rng_bytes=" + std::to_string(n));
  if (fd >= 0) {
    close(fd);
  }
}

void Disk64() {
  constexpr size_t kTotal = 64u << 20;
  constexpr size_t kChunk = 1u << 20;
  uint8_t* buf = static_cast<uint8_t*>(aligned_alloc(4096, kChunk));
  uint64_t seed = 0;
  int rfd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
  if (rfd < 0 || read(rfd, &seed, sizeof(seed)) != sizeof(seed)) {
    seed = 0x9e3779b97f4a7c15ull;
  }
  if (rfd >= 0) {
    close(rfd);
  }
  seed |= 1;
  int fd = open("/dev/vdb", O_WRONLY | O_CLOEXEC);
  uint64_t h_written = kFnvBasis;
  uint64_t x = seed;
  for (size_t done = 0; fd >= 0 && done < kTotal; done += kChunk) {
    auto* words = reinterpret_cast<uint64_t*>(buf);
    for (size_t i = 0; i < kChunk / 8; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      words[i] = x;
    }
    h_written = Fnv1a(buf, kChunk, h_written);
    if (write(fd, buf, kChunk) != static_cast<ssize_t>(kChunk)) {
      Say(std::string("disk64 write FAILED: ") + strerror(errno));
      return;
    }
  }
  if (fd < 0 || fsync(fd) != 0) {
    Say(std::string("disk64 FAILED: ") + strerror(errno));
    return;
  }
  close(fd);
  // O_DIRECT: the read-back must come through virtio-blk, not the page cache.
  fd = open("/dev/vdb", O_RDONLY | O_DIRECT | O_CLOEXEC);
  uint64_t h_read = kFnvBasis;
  for (size_t done = 0; fd >= 0 && done < kTotal; done += kChunk) {
    if (read(fd, buf, kChunk) != static_cast<ssize_t>(kChunk)) {
      Say(std::string("disk64 read FAILED: ") + strerror(errno));
      return;
    }
    h_read = Fnv1a(buf, kChunk, h_read);
  }
  close(fd);
  char line[128];
  std::snprintf(line, sizeof(line), "disk64 written_fnv=%016llx read_fnv=%016llx",
                static_cast<unsigned long long>(h_written),
                static_cast<unsigned long long>(h_read));
  Say(line);
  free(buf);
}

void Cpuinfo() {
  int fd = open("/proc/cpuinfo", O_RDONLY | O_CLOEXEC);
  std::string all;
  char buf[4096];
  ssize_t n;
  while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
    all.append(buf, static_cast<size_t>(n));
  }
  if (fd >= 0) {
    close(fd);
  }
  for (const char* key : {"model name", "flags", "bugs"}) {
    size_t at = all.find(key);
    if (at != std::string::npos) {
      Say(all.substr(at, all.find('\n', at) - at));
    }
  }
}

void Dmesg() {
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  char rec[8192];
  ssize_t n;
  while (fd >= 0 && (n = read(fd, rec, sizeof(rec))) > 0) {
    // "<prio>,<seq>,<usec>,<flags>;<text>\n"
    std::string r(rec, static_cast<size_t>(n));
    size_t semi = r.find(';');
    size_t c1 = r.find(',');
    size_t c2 = c1 == std::string::npos ? c1 : r.find(',', c1 + 1);
    size_t c3 = c2 == std::string::npos ? c2 : r.find(',', c2 + 1);
    if (semi == std::string::npos || c3 == std::string::npos) {
      continue;
    }
    char line[64];
    std::snprintf(line, sizeof(line), "[%12.6f] ",
                  std::strtoull(r.c_str() + c2 + 1, nullptr, 10) / 1e6);
    std::string out = std::string("kmsg ") + line + r.substr(semi + 1, r.find('\n', semi) - semi - 1);
    Say(out);
  }
  if (fd >= 0) {
    close(fd);
  }
}

}  // namespace

int main() {
  mount("proc", "/proc", "proc", 0, nullptr);
  mount("sysfs", "/sys", "sysfs", 0, nullptr);
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);  // EBUSY if the kernel mounted it: fine.
  Say("init marker");
  const char* checks = getenv("smcheck");
  std::string list = checks ? checks : "";
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    std::string c = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (c == "basic") {
      Basic();
    } else if (c == "cpus") {
      Cpus();
    } else if (c == "rng") {
      Rng();
    } else if (c == "disk64") {
      Disk64();
    } else if (c == "cpuinfo") {
      Cpuinfo();
    } else if (c == "dmesg") {
      Dmesg();
    } else if (c == "hang") {
      Say("hanging");
      for (;;) {
        pause();
      }
    } else if (!c.empty()) {
      Say("unknown check " + c);
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  Say("done");
  sync();
  reboot(RB_AUTOBOOT);
  return 1;
}
