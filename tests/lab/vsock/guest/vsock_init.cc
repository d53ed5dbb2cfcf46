// File: vsock_init.cc
// A static PID 1 for the vsock lab test (tests/lab/vsock/vsock_lab_test.cc). It
//   - serves an echo on vsock port 5000 (one thread per connection: read, write back, until
//     EOF, then close), for the host's CONNECT 5000 checks;
//   - connects to the host (CID 2) port 6000, retrying until the host listens, sends
//     kGuestPayloadBytes of the shared pattern, half-closes, reads the host's echo to EOF and
//     prints "sm-vsock: guest-connect ok" (or "... FAILED: why") on the console.
// It never exits (PID 1 must not); the host stops the VM.
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/lab/vsock/pattern.h"

namespace {

constexpr size_t kChunk = size_t{64} << 10;

void Say(const std::string& line) {
  std::string out = "sm-vsock: " + line + "\n";
  (void)!write(1, out.data(), out.size());
}

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void Echo(int fd) {
  std::vector<uint8_t> buf(kChunk);
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || !WriteAll(fd, buf.data(), static_cast<size_t>(n))) {
      break;
    }
  }
  close(fd);
}

void EchoServer() {
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = supermachine::lab::kGuestEchoPort;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(s, 64) != 0) {
    Say(std::string("echo server FAILED: ") + strerror(errno));
    return;
  }
  Say("echo server listening");
  while (true) {
    int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      continue;
    }
    std::thread(Echo, c).detach();
  }
}

void ConnectToHost() {
  int fd = -1;
  // The host's listener may come up after we boot: retry for a while.
  for (int attempt = 0; attempt < 600; ++attempt) {
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_HOST;
    addr.svm_port = supermachine::lab::kHostPort;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      break;
    }
    close(fd);
    fd = -1;
    usleep(200 * 1000);
  }
  if (fd < 0) {
    Say(std::string("guest-connect FAILED: connect: ") + strerror(errno));
    return;
  }
  std::vector<uint8_t> payload(supermachine::lab::kGuestPayloadBytes);
  supermachine::lab::FillPattern(payload.data(), payload.size(), 0);
  std::thread writer([&] {
    (void)WriteAll(fd, payload.data(), payload.size());
    shutdown(fd, SHUT_WR);
  });
  std::vector<uint8_t> got;
  std::vector<uint8_t> buf(kChunk);
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  writer.join();
  close(fd);
  if (got == payload) {
    Say("guest-connect ok " + std::to_string(got.size()));
  } else {
    Say("guest-connect FAILED: echo mismatch (" + std::to_string(got.size()) + " bytes)");
  }
}

}  // namespace

int main() {
  Say("init marker");
  std::thread(EchoServer).detach();
  std::thread(ConnectToHost).detach();
  while (true) {
    pause();
  }
}
