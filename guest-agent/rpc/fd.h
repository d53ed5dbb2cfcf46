// File: guest-agent/rpc/fd.h
// A move-only owner of one file descriptor (internal to rpc/): closed on destruction. The guest
// agent has no absl or worker/base, so this is the small local equivalent of base::UniqueFd.
#pragma once

#include <unistd.h>

#include <utility>

namespace supermachine::agent::rpc {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace supermachine::agent::rpc
