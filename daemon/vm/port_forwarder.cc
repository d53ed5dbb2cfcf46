// File: port_forwarder.cc
// Host TCP listener → agent Connect, spliced with non-blocking sockets and one bounded buffer
// per direction, so a stalled direction never stops the other.
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

// Bytes read from one side and not yet written to the other; a side is read again only once
// its buffer is empty, so each direction holds at most this much (backpressure).
constexpr size_t kSpliceBuffer = size_t{64} * 1024;

// One direction of a spliced connection.
struct Direction {
  int from = -1;
  int to = -1;
  std::string buf;
  size_t off = 0;
  bool eof = false;   // `from` said EOF (or will send no more).
  bool shut = false;  // EOF passed on: `to`'s write half is shut down.
  bool empty() const { return off == buf.size(); }
};

enum class Io { kOk, kFailed };

// Reads once into the (empty) buffer. kFailed on a hard error (reset): the connection ends.
Io Fill(Direction* d) {
  d->buf.resize(kSpliceBuffer);
  d->off = 0;
  ssize_t n;
  do {
    n = ::recv(d->from, d->buf.data(), d->buf.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    d->buf.clear();
    return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kOk : Io::kFailed;
  }
  d->buf.resize(static_cast<size_t>(n));
  d->eof = n == 0;
  return Io::kOk;
}

// Writes what the socket takes; passes EOF on once drained. kFailed when `to` is gone.
Io Drain(Direction* d) {
  while (!d->empty()) {
    ssize_t n = ::send(d->to, d->buf.data() + d->off, d->buf.size() - d->off,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK ? Io::kOk : Io::kFailed;
    }
    d->off += static_cast<size_t>(n);
  }
  if (d->eof && !d->shut) {
    ::shutdown(d->to, SHUT_WR);  // half-close: the peer sees EOF and may still answer
    d->shut = true;
  }
  return Io::kOk;
}

// poll events one side needs: readable while its outgoing buffer is empty and open, writable
// while the other direction has bytes for it.
short EventsFor(const Direction& out_of, const Direction& into) {
  short ev = 0;
  if (!out_of.eof && out_of.empty()) {
    ev |= POLLIN;
  }
  if (!into.empty()) {
    ev |= POLLOUT;
  }
  return ev;
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
    base::UniqueFd client(
        ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) {
      continue;
    }
    absl::MutexLock lock(&mu_);
    ReapLocked();
    Conn& conn = conns_.emplace_back();
    conn.thread = std::thread([this, &conn, fd = std::move(client)]() mutable {
      Splice(std::move(fd));
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

void PortForwarder::Splice(base::UniqueFd client) {
  const int c = client.get();
  absl::StatusOr<base::UniqueFd> guest = connector_(absl::Now() + kConnectTimeout);
  if (!guest.ok()) {
    // The guest port cannot be reached: the client sees the connection close, as with a
    // refusal, now rather than never.
    ::shutdown(c, SHUT_RDWR);
    return;
  }
  const int g = guest->get();
  const int flags = ::fcntl(g, F_GETFL);
  if (flags < 0 || ::fcntl(g, F_SETFL, flags | O_NONBLOCK) != 0) {
    ::shutdown(c, SHUT_RDWR);
    return;
  }
  Direction up{.from = c, .to = g};    // client → guest
  Direction down{.from = g, .to = c};  // guest → client
  bool c_hup = false;
  bool g_hup = false;
  bool clean = false;
  while (true) {
    if (up.shut && down.shut) {
      clean = true;  // both EOFs passed on: a normal end
      break;
    }
    // A side is watched while we want something from it or it may still report an error; a
    // side that hung up keeps reporting POLLHUP unasked and would spin the loop.
    const short cev = EventsFor(up, down);
    const short gev = EventsFor(down, up);
    const bool watch_c = cev != 0 || (!c_hup && !(up.eof && down.shut));
    const bool watch_g = gev != 0 || (!g_hup && !(down.eof && up.shut));
    pollfd fds[3] = {{watch_c ? c : -1, cev, 0},
                     {watch_g ? g : -1, gev, 0},
                     {stop_r_.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (fds[2].revents != 0) {
      break;  // the forwarder is going away
    }
    // A reset on either side ends both: the other side must not wait for what cannot come.
    if (((fds[0].revents | fds[1].revents) & (POLLERR | POLLNVAL)) != 0) {
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP)) != 0 && !up.eof && up.empty() &&
        Fill(&up) == Io::kFailed) {
      break;
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0 && !down.eof && down.empty() &&
        Fill(&down) == Io::kFailed) {
      break;
    }
    if (Drain(&up) == Io::kFailed || Drain(&down) == Io::kFailed) {
      break;
    }
    c_hup = c_hup || (fds[0].revents & POLLHUP) != 0;
    g_hup = g_hup || (fds[1].revents & POLLHUP) != 0;
    // Hung up and read to EOF: that side is closed both ways and takes nothing more, so the
    // direction into it is over (whatever it still had is undeliverable).
    if (c_hup && up.eof && !down.shut) {
      down = Direction{.from = g, .to = c, .eof = true, .shut = true};
    }
    if (g_hup && down.eof && !up.shut) {
      up = Direction{.from = c, .to = g, .eof = true, .shut = true};
    }
  }
  if (!clean) {
    // An abnormal end reaches the client as a reset, so a truncated answer never looks like a
    // complete one (HTTP/1.0 bodies end at EOF).
    linger lg{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  ::shutdown(c, SHUT_RDWR);
  // `guest` and `client` close here.
}

}  // namespace supermachine::vm
