// File: inherited_listener.cc
#include "daemon/service/inherited_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <grpcpp/server_posix.h>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::service {

absl::StatusOr<std::unique_ptr<InheritedListener>> InheritedListener::Start(
    base::UniqueFd listen_fd, grpc::Server* server,
    std::function<void(const std::string&)> on_error) {
  // The passed fd must not leak into the workers we spawn.
  if (::fcntl(listen_fd.get(), F_SETFD, FD_CLOEXEC) != 0) {
    return base::ErrnoToStatus(errno, "set FD_CLOEXEC on the passed socket");
  }
  base::UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) {
    return base::ErrnoToStatus(errno, "eventfd");
  }
  std::unique_ptr<InheritedListener> l(
      new InheritedListener(std::move(listen_fd), std::move(stop), server, std::move(on_error)));
  l->thread_ = std::thread([raw = l.get()] { raw->Loop(); });
  return l;
}

InheritedListener::~InheritedListener() {
  const uint64_t one = 1;
  if (::write(stop_fd_.get(), &one, sizeof(one)) < 0) {
    // eventfd writes only fail on counter overflow; the loop is ending anyway.
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void InheritedListener::Loop() {
  for (;;) {
    pollfd fds[2] = {{.fd = listen_fd_.get(), .events = POLLIN},
                     {.fd = stop_fd_.get(), .events = POLLIN}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (on_error_) {
        on_error_(absl::StrCat("poll on the passed socket: ", std::strerror(errno)));
      }
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    // gRPC's endpoint expects a non-blocking fd; CLOEXEC keeps it out of worker processes.
    int conn = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN || err == ECONNABORTED) {
        continue;
      }
      if (on_error_) {
        on_error_(absl::StrCat("accept on the passed socket: ", std::strerror(err)));
      }
      // Out of fds or memory: retrying at once would spin; let some connections end first.
      ::poll(fds + 1, 1, 100);
      continue;
    }
    // Counted before the hand-over: once gRPC has the fd, the client's call can complete
    // before this thread runs again, and a reader of accepted() must already see it.
    accepted_.fetch_add(1);
    // gRPC owns `conn` from here and closes it when the transport ends.
    grpc::AddInsecureChannelFromFd(server_, conn);
  }
}

}  // namespace supermachine::service
