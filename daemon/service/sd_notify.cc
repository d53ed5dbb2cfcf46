// File: sd_notify.cc
#include "daemon/service/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::service {

absl::Status SdNotify(std::string_view notify_socket, std::string_view state) {
  if (notify_socket.empty()) {
    return absl::OkStatus();
  }
  // Debian's absl::string_view is not std::string_view: messages take a std::string.
  const std::string name(notify_socket);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (notify_socket.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("NOTIFY_SOCKET '", name, "' is ",
                                                   notify_socket.size(), " bytes; at most ",
                                                   sizeof(addr.sun_path) - 1, " fit"));
  }
  if (notify_socket[0] != '/' && notify_socket[0] != '@') {
    return absl::InvalidArgumentError(absl::StrCat(
        "NOTIFY_SOCKET '", name, "': expected an absolute path or an @abstract name"));
  }
  std::memcpy(addr.sun_path, notify_socket.data(), notify_socket.size());
  // Path names carry their terminating NUL in the length; abstract names are exactly their
  // bytes (a trailing NUL would be part of the name).
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_socket.size());
  if (notify_socket[0] == '@') {
    addr.sun_path[0] = '\0';
  } else {
    len += 1;
  }
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return base::ErrnoToStatus(errno, "socket(AF_UNIX, SOCK_DGRAM)");
  }
  ssize_t n;
  do {
    n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("send to NOTIFY_SOCKET ", name));
  }
  if (static_cast<size_t>(n) != state.size()) {
    return absl::DataLossError(absl::StrCat("NOTIFY_SOCKET ", name, ": sent ", n, " of ",
                                            state.size(), " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace supermachine::service
