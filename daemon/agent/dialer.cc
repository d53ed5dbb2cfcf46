// File: dialer.cc
// Unix socket connect with a deadline, and the hybrid vsock CONNECT handshake on top of it.
#include "daemon/agent/dialer.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/base/status_macros.h"

namespace supermachine::agent {
namespace {

// The worker answers "OK <u32>\n"; anything longer is not a hybrid vsock endpoint.
constexpr size_t kMaxHandshakeReply = 64;

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    return -1;
  }
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return 0;
  }
  // Round up so a sub-millisecond remainder still waits instead of spinning.
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

std::string Printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (absl::ascii_isprint(static_cast<unsigned char>(c))) {
      out += c;
    } else {
      out += absl::StrCat("\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

absl::Status PollUntil(int fd, short events, absl::Time deadline, const std::string& what) {
  while (true) {
    pollfd p = {.fd = fd, .events = events, .revents = 0};
    int timeout_ms = PollTimeoutMs(deadline);
    int n = poll(&p, 1, timeout_ms);
    if (n > 0) {
      return absl::OkStatus();  // Readable, writable, or an error/hangup the next call reports.
    }
    if (n < 0 && errno != EINTR) {
      return base::ErrnoToStatus(errno, absl::StrCat("poll (", what, ")"));
    }
    if (n == 0 && timeout_ms == 0) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": deadline exceeded"));
    }
  }
}

absl::StatusOr<base::UniqueFd> ConnectUnix(const std::string& path, absl::Time deadline) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path '", path, "': must be 1..", sizeof(addr.sun_path) - 1, " bytes long"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  while (true) {
    base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      return base::ErrnoToStatus(errno, "socket(AF_UNIX)");
    }
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return fd;
    }
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::UnavailableError(absl::StrCat("connect ", path, ": ", strerror(err)));
    }
    if (err != EAGAIN && err != EINTR) {
      return base::ErrnoToStatus(err, absl::StrCat("connect ", path));
    }
    // EAGAIN on a Unix socket: the listener's backlog is full. Back off briefly and retry.
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("connect ", path, ": listener backlog full until the deadline"));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

absl::StatusOr<base::UniqueFd> UnixDialer::Dial(absl::Time deadline) const {
  return ConnectUnix(socket_path_, deadline);
}

std::string HybridVsockDialer::Describe() const {
  return absl::StrCat("vsock ", socket_path_, " port ", port_);
}

absl::StatusOr<base::UniqueFd> HybridVsockDialer::Dial(absl::Time deadline) const {
  absl::StatusOr<base::UniqueFd> connected = ConnectUnix(socket_path_, deadline);
  if (absl::IsUnavailable(connected.status())) {
    // Said here, not in ConnectUnix: its other callers dial sockets other than --vsock's.
    return absl::UnavailableError(absl::StrCat(connected.status().message(),
                                               " (is the worker running with --vsock?)"));
  }
  SM_ASSIGN_OR_RETURN(base::UniqueFd fd, std::move(connected));
  const std::string request = absl::StrCat("CONNECT ", port_, "\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      SM_RETURN_IF_ERROR(PollUntil(fd.get(), POLLOUT, deadline, Describe() + ": CONNECT"));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat(Describe(), ": sending CONNECT: ", strerror(errno)));
  }
  // One byte at a time: whatever follows the '\n' already belongs to the guest's stream.
  std::string reply;
  while (reply.empty() || reply.back() != '\n') {
    char c = 0;
    ssize_t n = read(fd.get(), &c, 1);
    if (n == 1) {
      reply.push_back(c);
      if (reply.size() > kMaxHandshakeReply) {
        return absl::InternalError(absl::StrCat(
            Describe(), ": reply to CONNECT is longer than ", kMaxHandshakeReply, " bytes ('",
            Printable(reply), "...'): is ", socket_path_, " a supermachine-worker --vsock socket?"));
      }
      continue;
    }
    if (n == 0) {
      // Firecracker's convention (and our worker's): the connection is closed when no guest
      // socket accepts on that port, e.g. while the agent is still starting.
      return absl::UnavailableError(absl::StrCat(
          Describe(), ": connection closed after CONNECT",
          reply.empty() ? "" : absl::StrCat(" (partial reply '", Printable(reply), "')"),
          ": nothing accepts on guest port ", port_, " (agent not started yet?)"));
    }
    if (errno == EAGAIN) {
      SM_RETURN_IF_ERROR(
          PollUntil(fd.get(), POLLIN, deadline, Describe() + ": waiting for the CONNECT reply"));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == ECONNRESET || errno == EPIPE) {
      return absl::UnavailableError(
          absl::StrCat(Describe(), ": connection reset after CONNECT: nothing accepts on guest port ",
                       port_));
    }
    return base::ErrnoToStatus(errno, Describe() + ": reading the CONNECT reply");
  }
  absl::string_view line = absl::StripSuffix(reply, "\n");
  uint32_t host_port = 0;
  if (!absl::ConsumePrefix(&line, "OK ") || !absl::SimpleAtoi(line, &host_port)) {
    return absl::InternalError(absl::StrCat(
        Describe(), ": unexpected reply to CONNECT: '", Printable(reply),
        "' (expected 'OK <port>'): is ", socket_path_, " a supermachine-worker --vsock socket?"));
  }
  return fd;
}

}  // namespace supermachine::agent
