// File: port_forwarder.cc
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
constexpr size_t kSpliceBuffer = size_t{64} * 1024;

// Copies what `from` has to `to`; false on EOF or error (the connection then ends).
bool Pump(int from, int to) {
  char buf[kSpliceBuffer];
  ssize_t n = ::read(from, buf, sizeof(buf));
  if (n <= 0) {
    return false;
  }
  size_t off = 0;
  while (off < static_cast<size_t>(n)) {
    ssize_t w = ::send(to, buf + off, static_cast<size_t>(n) - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PortForwarder>> PortForwarder::Start(const std::string& address,
                                                                    uint16_t host_port,
                                                                    Connector connector) {
  const std::string addr = address.empty() ? "127.0.0.1" : address;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(host_port);
  if (::inet_pton(AF_INET, addr.c_str(), &sin.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("host address '", addr, "' is not an IPv4 address (e.g. 127.0.0.1)"));
  }
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return base::ErrnoToStatus(errno, "socket");
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    if (errno == EADDRINUSE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "host port ", addr, ":", host_port,
          " is already in use; pick another with -p HOST:GUEST or use 0 for an ephemeral one"));
    }
    return base::ErrnoToStatus(errno, absl::StrCat("bind ", addr, ":", host_port));
  }
  if (::listen(fd.get(), 128) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("listen on ", addr, ":", host_port));
  }
  socklen_t len = sizeof(sin);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return base::ErrnoToStatus(errno, "pipe2");
  }
  return std::unique_ptr<PortForwarder>(
      new PortForwarder(addr, ntohs(sin.sin_port), std::move(fd), base::UniqueFd(pipe_fds[0]),
                        base::UniqueFd(pipe_fds[1]), std::move(connector)));
}

PortForwarder::PortForwarder(std::string address, uint16_t port, base::UniqueFd listener,
                             base::UniqueFd stop_r, base::UniqueFd stop_w, Connector connector)
    : address_(std::move(address)),
      port_(port),
      listener_(std::move(listener)),
      stop_r_(std::move(stop_r)),
      stop_w_(std::move(stop_w)),
      connector_(std::move(connector)) {
  accept_ = std::thread([this] { AcceptLoop(); });
}

PortForwarder::~PortForwarder() {
  // Closing the write end makes stop_r_ readable (EOF) for every poller at once.
  stop_w_.Reset();
  accept_.join();
  absl::MutexLock lock(&mu_);
  for (Conn& c : conns_) {
    c.thread.join();
  }
}

void PortForwarder::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      continue;
    }
    absl::MutexLock lock(&mu_);
    ReapLocked();
    Conn& conn = conns_.emplace_back();
    conn.client.Reset(c);
    conn.thread = std::thread([this, c, &conn] {
      Splice(c);
      conn.done = true;
    });
  }
}

void PortForwarder::ReapLocked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->done) {
      it->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void PortForwarder::Splice(int client_fd) {
  absl::StatusOr<base::UniqueFd> guest = connector_(absl::Now() + kConnectTimeout);
  if (!guest.ok()) {
    // Nothing listens in the guest: the client sees the connection close, as with a refusal.
    ::shutdown(client_fd, SHUT_RDWR);
    return;
  }
  const int g = guest->get();
  bool client_open = true;
  bool guest_open = true;
  while (client_open || guest_open) {
    pollfd fds[3] = {{client_open ? client_fd : -1, POLLIN, 0},
                     {guest_open ? g : -1, POLLIN, 0},
                     {stop_r_.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (fds[2].revents != 0) {
      break;
    }
    if (client_open && fds[0].revents != 0 && !Pump(client_fd, g)) {
      client_open = false;
      ::shutdown(g, SHUT_WR);  // half-close: the guest sees EOF, may still answer
    }
    if (guest_open && fds[1].revents != 0 && !Pump(g, client_fd)) {
      guest_open = false;
      ::shutdown(client_fd, SHUT_WR);
    }
  }
  ::shutdown(client_fd, SHUT_RDWR);
}

}  // namespace supermachine::vm
