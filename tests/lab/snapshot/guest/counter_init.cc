// File: counter_init.cc
// Static PID 1 for the snapshot lab test: counts in memory forever, printing
// "sm-counter: N" every 200 ms (a timer sleep, so the guest clock must work after a restore)
// after reading one 4 KiB block of /dev/vda with O_DIRECT (so virtio-blk must still work
// after a restore: the read goes to the device, not the page cache). A restored guest must go
// on from the N it had, never from 1.
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

int main() {
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);  // EBUSY if the kernel mounted it: fine.
  const int disk = open("/dev/vda", O_RDONLY | O_DIRECT | O_CLOEXEC);
  void* block = nullptr;
  if (posix_memalign(&block, 4096, 4096) != 0) {
    return 1;
  }
  for (unsigned long counter = 1;; ++counter) {
    const off_t offset = static_cast<off_t>((counter % 16) * 4096);
    const ssize_t got = disk >= 0 ? pread(disk, block, 4096, offset) : -1;
    const int err = errno;
    char line[96];
    const int n = got == 4096
                      ? std::snprintf(line, sizeof(line), "sm-counter: %lu disk=ok\n", counter)
                      : std::snprintf(line, sizeof(line), "sm-counter: %lu disk=error(%zd,%s)\n",
                                      counter, got, std::strerror(err));
    (void)!write(1, line, static_cast<size_t>(n));
    timespec ts{.tv_sec = 0, .tv_nsec = 200L * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}
