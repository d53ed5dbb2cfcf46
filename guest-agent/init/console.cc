// File: guest-agent/init/console.cc
// Attaches fds 0-2 to /dev/console when the kernel could not.
#include "guest-agent/init/console.h"

#include <fcntl.h>
#include <unistd.h>

namespace supermachine::agent {

bool AttachConsole() {
  bool ok = true;
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) {
      continue;
    }
    // Not O_CLOEXEC on purpose: these are the stdio fds that workloads inherit.
    int console = open("/dev/console", (fd == 0 ? O_RDONLY : O_WRONLY) | O_NOCTTY);
    if (console < 0) {
      ok = false;
      continue;
    }
    if (console != fd) {
      dup2(console, fd);
      close(console);
    }
  }
  return ok;
}

}  // namespace supermachine::agent
