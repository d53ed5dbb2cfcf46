// File: guest-agent/rpc/connect.cc
// The `connect` operation (host port forwarding): a TCP connection inside the guest, then raw
// bytes both ways. Half-close aware: when one side finishes sending, the other side's write
// half is shut down once everything before the EOF is delivered, and the other direction keeps
// flowing. It ends when both directions are done, on an error, or when the host hangs up.
// The TCP connect is bounded (kConnectTimeoutMs, and the host hanging up meanwhile): a port
// whose accept queue is full drops SYNs, and a blocking connect would then sit in the kernel's
// SYN retries for about two minutes, long after the host stopped waiting (issue #9).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "guest-agent/rpc/connection.h"

namespace supermachine::agent::rpc {
namespace {

constexpr size_t kBufferBytes = size_t{64} * 1024;
// The host's forwarder waits 10 s for the whole connect operation (PortForwarder::
// kConnectTimeout); past that nobody reads our answer.
constexpr int kConnectTimeoutMs = 10'000;

// One direction of the splice: bytes read from `from`, not yet written to `to`.
struct Pipe {
  int from = -1;
  int to = -1;
  std::string buf;
  size_t offset = 0;
  bool eof = false;   // `from` said EOF.
  bool shut = false;  // EOF forwarded: `to`'s write half is shut down.
  bool empty() const { return offset == buf.size(); }
};

// Reads into an empty buffer. False on a hard error.
bool Fill(Pipe* p) {
  p->buf.resize(kBufferBytes);
  p->offset = 0;
  ssize_t n = ::recv(p->from, p->buf.data(), kBufferBytes, MSG_DONTWAIT);
  if (n < 0) {
    p->buf.clear();
    return errno == EAGAIN || errno == EINTR;
  }
  p->buf.resize(static_cast<size_t>(n));
  if (n == 0) {
    p->eof = true;
  }
  return true;
}

// Writes what is buffered; forwards EOF once drained. False on a hard error.
bool Drain(Pipe* p) {
  while (!p->empty()) {
    ssize_t n = ::send(p->to, p->buf.data() + p->offset, p->buf.size() - p->offset,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN;
    }
    p->offset += static_cast<size_t>(n);
  }
  if (p->eof && !p->shut) {
    ::shutdown(p->to, SHUT_WR);
    p->shut = true;
  }
  return true;
}

// Waits for a non-blocking connect on `fd` to finish: 0 or -errno; -ETIMEDOUT after
// kConnectTimeoutMs, -ECONNABORTED when the host hangs up first (nobody wants the answer).
int FinishConnect(int fd, int host, std::string* error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      *error = "no answer within " + std::to_string(kConnectTimeoutMs / 1000) +
               " s (is the service's accept queue full?)";
      return -ETIMEDOUT;
    }
    pollfd fds[2] = {{fd, POLLOUT, 0}, {host, 0, 0}};  // host: only hang-up and errors
    const int rc = ::poll(fds, 2, static_cast<int>(left.count()) + 1);
    if (rc < 0 && errno != EINTR) {
      return -errno;
    }
    if (rc <= 0) {
      continue;
    }
    if ((fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
      *error = "the host hung up before the connection was made";
      return -ECONNABORTED;
    }
    if (fds[0].revents != 0) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return -errno;
      }
      return -err;
    }
  }
}

// A connected TCP socket (non-blocking), or -errno (with *error set when the address itself
// is bad or the connect was given up; see FinishConnect).
int Dial(const std::string& address, uint32_t port, int host, std::string* error) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v6);
  } else {
    *error = "not an IPv4 or IPv6 address";
    return -EINVAL;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return -errno;
  }
  int err = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    err = errno == EINPROGRESS || errno == EINTR ? -FinishConnect(fd, host, error) : errno;
  }
  if (err != 0) {
    ::close(fd);
    return -err;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void Splice(int host, int tcp) {
  Pipe up{host, tcp};    // host → guest service
  Pipe down{tcp, host};  // guest service → host
  bool host_hup = false;
  bool tcp_hup = false;
  while (!(up.shut && down.shut)) {
    pollfd fds[2] = {{host, 0, 0}, {tcp, 0, 0}};
    // Read a side only while its buffer is empty (backpressure); else wait to write it out.
    if (!up.eof && up.empty()) {
      fds[0].events |= POLLIN;
    } else if (!up.empty()) {
      fds[1].events |= POLLOUT;
    }
    if (!down.eof && down.empty()) {
      fds[1].events |= POLLIN;
    } else if (!down.empty()) {
      fds[0].events |= POLLOUT;
    }
    if (up.shut && down.eof) {
      fds[1].fd = -1;  // Nothing left to do with the service; do not wake on its POLLHUP.
    }
    // A side that hung up keeps reporting POLLHUP unasked: while we want nothing from it
    // (e.g. its last bytes wait for the other side to take them), leave it out, or the loop
    // spins at full CPU until then. Both cannot be left out: a hung-up host with up.eof ended
    // the loop below, and otherwise up's bytes wait on the service.
    if (host_hup && fds[0].events == 0) {
      fds[0].fd = -1;
    }
    if (tcp_hup && fds[1].events == 0) {
      fds[1].fd = -1;
    }
    int rc = ::poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    // A reset on either socket ends both directions.
    if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLNVAL)) {
      return;
    }
    // POLLHUP comes with any last bytes readable; reading then sees EOF.
    if ((fds[0].revents & (POLLIN | POLLHUP)) && !up.eof && up.empty() && !Fill(&up)) {
      return;
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) && !down.eof && down.empty() && !Fill(&down)) {
      return;
    }
    if (!Drain(&up) || !Drain(&down)) {
      return;
    }
    // POLLHUP is reported unasked, so a side that is fully closed must be retired here or the
    // loop would spin. Host fully gone: nothing more can be delivered to it. Service fully
    // gone: it takes no more bytes; what it sent is still flushed to the host.
    host_hup = host_hup || (fds[0].revents & POLLHUP) != 0;
    tcp_hup = tcp_hup || (fds[1].revents & POLLHUP) != 0;
    if (host_hup && up.eof) {
      return;
    }
    if (tcp_hup && down.eof && !up.shut) {
      up.eof = true;
      up.shut = true;
      up.buf.clear();
      up.offset = 0;
    }
  }
}

}  // namespace

void HandleConnect(const Connection& conn, const v1::ConnectRequest& request) {
  const std::string address = request.address().empty() ? "127.0.0.1" : request.address();
  const std::string what = "connect " + address + ":" + std::to_string(request.port());
  if (request.port() == 0 || request.port() > 65535) {
    SendError(conn, kInvalidArgument, what + ": port must be 1..65535");
    FinishConnection(conn);
    return;
  }
  std::string error;
  const int tcp = Dial(address, request.port(), conn.fd, &error);
  if (tcp < 0) {
    SendError(conn, ErrnoToCode(-tcp),
              error.empty() ? ErrnoMessage(what, -tcp) : what + ": " + error);
    FinishConnection(conn);
    return;
  }
  v1::Response response;
  response.mutable_connected();
  if (SendResponse(conn, response)) {
    Splice(conn.fd, tcp);
  }
  ::close(tcp);  // conn.fd is closed by the server.
}

}  // namespace supermachine::agent::rpc
