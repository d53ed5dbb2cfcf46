// File: guest-agent/rpc/connection.cc
// Helpers every handler shares (see connection.h).
#include "guest-agent/rpc/connection.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest-agent/protocol/frame.h"

namespace supermachine::agent::rpc {

int ErrnoToCode(int err) {
  switch (err) {
    case 0:
      return kOk;
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      return kNotFound;
    case EEXIST:
      return kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
      return kResourceExhausted;
    case EINVAL:
    case ENAMETOOLONG:
    case E2BIG:
      return kInvalidArgument;
    case EISDIR:
    case ENOTEMPTY:
    case ENOEXEC:
    case ETXTBSY:
      return kFailedPrecondition;
    case ETIMEDOUT:
      return kDeadlineExceeded;
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EPIPE:
      return kUnavailable;
    case ENOSYS:
    case ENOTTY:
    case EOPNOTSUPP:
      return kUnimplemented;
    default:
      return kInternal;
  }
}

std::string ErrnoMessage(const std::string& what, int err) {
  char buf[128];
  // GNU strerror_r returns the message pointer (maybe not buf).
  const char* text = strerror_r(err, buf, sizeof(buf));
  return what + ": " + text;
}

bool SendResponse(const Connection& conn, const v1::Response& response) {
  return protocol::WriteMessage(conn.fd, response) == 0;
}

bool SendError(const Connection& conn, int code, const std::string& message) {
  v1::Response response;
  response.mutable_error()->set_code(code);
  response.mutable_error()->set_message(message);
  return SendResponse(conn, response);
}

void FinishConnection(const Connection& conn) {
  if (::shutdown(conn.fd, SHUT_WR) != 0) {
    return;  // Not connected any more: nothing left to deliver.
  }
  // Drain until the peer closes, at most ~2 s and 16 MiB: enough for a well-behaved host to
  // read our last frame and hang up, bounded for one that does not.
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  char buf[16384];
  size_t drained = 0;
  while (drained < (16u << 20)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return;
    }
    pollfd p{conn.fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc <= 0) {
      return;
    }
    ssize_t n = ::recv(conn.fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    drained += static_cast<size_t>(n);
  }
}

std::string ReadSmallFile(const char* path) {
  std::string out;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return out;
  }
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool PeerGone(int fd, int timeout_ms) {
  pollfd p{fd, 0, 0};
  int rc = ::poll(&p, 1, timeout_ms);
  return rc > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace supermachine::agent::rpc
