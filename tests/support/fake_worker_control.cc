// File: fake_worker_control.cc
#include "tests/support/fake_worker_control.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "gtest/gtest.h"

namespace supermachine::test_support {

FakeWorkerControl::FakeWorkerControl(std::string path, std::string reply, Then then)
    : path_(std::move(path)) {
  fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  EXPECT_LT(path_.size(), sizeof(addr.sun_path)) << path_;
  std::memcpy(addr.sun_path, path_.data(), std::min(path_.size(), sizeof(addr.sun_path) - 1));
  EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::listen(fd_.get(), 4), 0);
  thread_ = std::thread([this, reply = std::move(reply), then] {
    base::UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char ch = 0;
    while (c && ::recv(c.get(), &ch, 1, 0) == 1) {
      got_.push_back(ch);
      if (ch == '\n') {
        break;
      }
    }
    got_line_.Notify();
    if (c && !reply.empty()) {
      (void)::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    if (then == Then::kHold) {
      test_over_.WaitForNotification();
    }
  });
}

FakeWorkerControl::~FakeWorkerControl() {
  test_over_.Notify();
  ::shutdown(fd_.get(), SHUT_RDWR);  // Ends an accept that no client came to.
  thread_.join();
}

std::string FakeWorkerControl::got() {
  got_line_.WaitForNotification();
  return got_;
}

}  // namespace supermachine::test_support
