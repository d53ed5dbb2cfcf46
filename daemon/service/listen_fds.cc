// File: listen_fds.cc
#include "daemon/service/listen_fds.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::service {
namespace {

bool ParseDecimal(const char* text, int64_t* out) {
  std::string s(text);
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos &&
         absl::SimpleAtoi(s, out);
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseListenFds(const char* listen_pid, const char* listen_fds,
                                                pid_t self) {
  if (listen_pid == nullptr && listen_fds == nullptr) {
    return std::vector<int>{};
  }
  if (listen_pid == nullptr || listen_fds == nullptr) {
    return absl::InvalidArgumentError(
        "socket activation: LISTEN_PID and LISTEN_FDS must be set together");
  }
  int64_t pid = 0;
  if (!ParseDecimal(listen_pid, &pid)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket activation: LISTEN_PID '", listen_pid, "' is not a pid"));
  }
  if (pid != self) {
    return std::vector<int>{};  // inherited from a parent that was activated, not us
  }
  int64_t n = 0;
  if (!ParseDecimal(listen_fds, &n) || n < 1 || n > kMaxListenFds) {
    return absl::InvalidArgumentError(absl::StrCat("socket activation: LISTEN_FDS '", listen_fds,
                                                   "': expected 1 to ", kMaxListenFds));
  }
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    fds.push_back(kListenFdsStart + i);
  }
  return fds;
}

absl::StatusOr<std::string> UnixListenerPath(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    if (errno == ENOTSOCK || errno == EBADF) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket activation: fd ", fd, " is not a socket"));
    }
    return base::ErrnoToStatus(errno, absl::StrCat("getsockname fd ", fd));
  }
  if (ss.ss_family != AF_UNIX) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket activation: fd ", fd, " is not a Unix socket (family ", ss.ss_family,
        "); only ListenStream=/path sockets can be passed, TCP needs TLS which --tcp sets up"));
  }
  int type = 0;
  int accepting = 0;
  socklen_t optlen = sizeof(int);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("getsockopt SO_TYPE fd ", fd));
  }
  optlen = sizeof(int);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &optlen) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("getsockopt SO_ACCEPTCONN fd ", fd));
  }
  if (type != SOCK_STREAM || accepting == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket activation: fd ", fd, " is not a listening stream socket (use ListenStream=)"));
  }
  const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
  const size_t path_len = len > offsetof(sockaddr_un, sun_path)
                              ? static_cast<size_t>(len) - offsetof(sockaddr_un, sun_path)
                              : 0;
  if (path_len == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket activation: fd ", fd, " is an unnamed Unix socket"));
  }
  if (un->sun_path[0] == '\0') {
    return absl::StrCat("@", std::string(un->sun_path + 1, path_len - 1));
  }
  return std::string(un->sun_path, strnlen(un->sun_path, path_len));
}

}  // namespace supermachine::service
