// File: worker_control.cc
#include "daemon/vm/worker_control.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "daemon/agent/dialer.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {
namespace {

// Replies are one short line; anything longer is not a worker talking.
constexpr size_t kMaxReply = 4096;

}  // namespace

absl::StatusOr<std::string> WorkerControl(const std::string& socket, absl::string_view command,
                                          absl::Time deadline) {
  if (socket.empty()) {
    return absl::FailedPreconditionError("the VM has no worker control socket");
  }
  SM_ASSIGN_OR_RETURN(base::UniqueFd fd, agent::ConnectUnix(socket, deadline));
  const std::string line = absl::StrCat(command, "\n");
  size_t sent = 0;
  while (sent < line.size()) {
    SM_RETURN_IF_ERROR(agent::PollUntil(fd.get(), POLLOUT, deadline, "worker control write"));
    const ssize_t n = ::write(fd.get(), line.data() + sent, line.size() - sent);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n < 0) {
      return base::ErrnoToStatus(errno, absl::StrCat("write to worker control socket ", socket));
    }
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[512];
  while (true) {
    const size_t newline = reply.find('\n');
    if (newline != std::string::npos) {
      reply.resize(newline);
      return reply;
    }
    if (reply.size() > kMaxReply) {
      return absl::InternalError(absl::StrCat("worker control socket ", socket,
                                              " answered '", command, "' with over ", kMaxReply,
                                              " bytes and no newline"));
    }
    SM_RETURN_IF_ERROR(agent::PollUntil(fd.get(), POLLIN, deadline, "worker control reply"));
    // One command per connection: whatever follows the first line is never read.
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n <= 0) {
      return absl::UnavailableError(absl::StrCat("worker control socket ", socket,
                                                 " closed before answering '", command, "'"));
    }
    reply.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace supermachine::vm
