// File: worker_control.cc
#include "daemon/vm/worker_control.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/agent/dialer.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {
namespace {

// Replies are one short line; anything longer is not a worker talking.
constexpr size_t kMaxReply = 4096;

// FailedPrecondition is this client's word for "the VM has no control socket" (callers stop
// asking), so no other failure may carry it, while ErrnoToStatus maps EPIPE, ENOTCONN and
// ENOTDIR to it: a connection that fails or breaks is Unavailable, as a new one may work.
absl::Status Broken(absl::string_view where, absl::string_view what, int err) {
  return absl::UnavailableError(absl::StrCat(where, ": ", what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::string> WorkerControl(const std::string& socket, absl::string_view command,
                                          absl::Time deadline) {
  if (socket.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", command, "': the VM has no worker control socket"));
  }
  if (absl::StrContains(command, '\n')) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker control command '", command, "' holds a newline: one line only"));
  }
  const std::string where = absl::StrCat("'", command, "' on worker control socket ", socket);
  absl::StatusOr<base::UniqueFd> fd = agent::ConnectUnix(socket, deadline);
  if (!fd.ok()) {
    // ConnectUnix names the path already.
    const std::string context = absl::StrCat("'", command, "' on the worker control socket");
    if (absl::IsFailedPrecondition(fd.status())) {
      return absl::UnavailableError(absl::StrCat(context, ": ", fd.status().message()));
    }
    return base::Annotate(fd.status(), context);
  }
  const std::string line = absl::StrCat(command, "\n");
  size_t sent = 0;
  while (sent < line.size()) {
    SM_RETURN_IF_ERROR(
        base::Annotate(agent::PollUntil(fd->get(), POLLOUT, deadline, "waiting to send"), where));
    // send, not write: MSG_NOSIGNAL, as a worker that exits meanwhile must not SIGPIPE callers
    // that keep SIGPIPE's default (sm-bake).
    const ssize_t n = ::send(fd->get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n < 0) {
      return Broken(where, "send", errno);
    }
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[512];
  while (true) {
    const size_t newline = reply.find('\n');
    if (newline != std::string::npos) {
      // One command per connection: whatever follows the first line is never read.
      reply.resize(newline);
      return reply;
    }
    if (reply.size() > kMaxReply) {
      return absl::InternalError(
          absl::StrCat(where, ": a reply of over ", kMaxReply, " bytes and no newline"));
    }
    SM_RETURN_IF_ERROR(base::Annotate(
        agent::PollUntil(fd->get(), POLLIN, deadline, "waiting for the reply"), where));
    const ssize_t n = ::recv(fd->get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      continue;
    }
    if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat(where, ": the worker closed the connection before answering"));
    }
    if (n < 0) {
      return Broken(where, "recv", errno);
    }
    reply.append(buf, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> WorkerControlOk(const std::string& socket, absl::string_view command,
                                            absl::Time deadline) {
  absl::StatusOr<std::string> reply = WorkerControl(socket, command, deadline);
  if (reply.ok() && !absl::StartsWith(*reply, "OK")) {
    return absl::InternalError(
        absl::StrCat("worker control socket ", socket, ": '", command, "' refused: ", *reply));
  }
  return reply;
}

}  // namespace supermachine::vm
