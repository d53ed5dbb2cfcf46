// File: unique_fd.cc
#include "worker/base/unique_fd.h"

#include <unistd.h>

namespace supermachine::base {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) {
    // close() is not retried on EINTR: on Linux the fd is released even then.
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace supermachine::base
