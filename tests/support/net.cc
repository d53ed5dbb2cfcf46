// File: net.cc
// Loopback TCP listeners and connects for tests.
#include "tests/support/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace supermachine::test_support {
namespace {

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "loopback TCP: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

LoopbackListener ListenOnLoopback(int backlog) {
  LoopbackListener l;
  l.fd = base::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l.fd.valid()) {
    Die("socket");
  }
  sockaddr_in addr = Loopback(0);
  if (::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("bind 127.0.0.1:0");
  }
  if (::listen(l.fd.get(), backlog) != 0) {
    Die("listen");
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("getsockname");
  }
  l.port = ntohs(addr.sin_port);
  return l;
}

base::UniqueFd ConnectToLoopback(uint16_t port) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in addr = Loopback(port);
  if (!fd.valid() ||
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::UniqueFd();
  }
  return fd;
}

uint16_t UnusedLoopbackPort() { return ListenOnLoopback().port; }

}  // namespace supermachine::test_support
