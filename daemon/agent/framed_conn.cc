// File: framed_conn.cc
// Deadline-bound frame reads and writes over a non-blocking socket.
#include "daemon/agent/framed_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/agent/dialer.h"
#include "proto/agent.pb.h"
#include "worker/base/status_macros.h"

namespace supermachine::agent {
namespace {

constexpr size_t kReadChunk = size_t{256} << 10;

absl::Status SetNonBlocking(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    return base::ErrnoToStatus(errno, "fcntl(F_GETFL)");
  }
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (fcntl(fd, F_SETFL, flags) < 0) {
    return base::ErrnoToStatus(errno, "fcntl(F_SETFL)");
  }
  return absl::OkStatus();
}

}  // namespace

FramedConn::FramedConn(base::UniqueFd fd, std::string name)
    : fd_(std::move(fd)), name_(std::move(name)) {
  // A failure here (EBADF) would mean a broken fd; every later call then reports it.
  (void)SetNonBlocking(fd_.get(), true);
}

absl::Status FramedConn::Write(const google::protobuf::MessageLite& message, absl::Time deadline) {
  std::string payload;
  if (!message.SerializeToString(&payload)) {
    return absl::InternalError(absl::StrCat(name_, ": cannot serialize ", message.GetTypeName()));
  }
  std::string frame;
  if (payload.empty()) {
    // The codec forbids empty frames; an all-default message (e.g. ShutdownRequest inside a
    // Request always has its oneof tag, so this only hits bare empty messages) is a bug here.
    return absl::InternalError(absl::StrCat(name_, ": empty ", message.GetTypeName()));
  }
  if (!protocol::AppendFrame(payload, &frame)) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", message.GetTypeName(), " of ",
                                                   payload.size(), " bytes exceeds the ",
                                                   protocol::kMaxFrameBytes, "-byte frame limit"));
  }
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t n = send(fd_.get(), frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      SM_RETURN_IF_ERROR(PollUntil(fd_.get(), POLLOUT, deadline, name_ + ": write"));
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return absl::UnavailableError(absl::StrCat(name_, ": agent closed the connection"));
    }
    return base::ErrnoToStatus(errno, name_ + ": write");
  }
  return absl::OkStatus();
}

absl::Status FramedConn::Parse(const std::string& payload,
                               google::protobuf::MessageLite* message) {
  if (!message->ParseFromString(payload)) {
    return absl::DataLossError(absl::StrCat(name_, ": agent sent a frame that is not a valid ",
                                            message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status FramedConn::Read(google::protobuf::MessageLite* message, absl::Time deadline) {
  std::string payload;
  if (read_buf_.empty()) {
    read_buf_.resize(kReadChunk);
  }
  while (true) {
    switch (decoder_.Next(&payload)) {
      case protocol::FrameDecoder::Result::kFrame:
        return Parse(payload, message);
      case protocol::FrameDecoder::Result::kError:
        return absl::DataLossError(absl::StrCat(name_, ": malformed frame: ", decoder_.error()));
      case protocol::FrameDecoder::Result::kNeedMore:
        break;
    }
    ssize_t n = read(fd_.get(), read_buf_.data(), read_buf_.size());
    if (n > 0) {
      decoder_.Feed(read_buf_.data(), static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      if (decoder_.buffered() == 0) {
        return absl::UnavailableError(absl::StrCat(name_, ": agent closed the connection"));
      }
      return absl::DataLossError(absl::StrCat(name_, ": agent closed the connection mid-frame (",
                                              decoder_.buffered(), " bytes of a frame)"));
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      SM_RETURN_IF_ERROR(PollUntil(fd_.get(), POLLIN, deadline, name_ + ": read"));
      continue;
    }
    if (errno == ECONNRESET) {
      return absl::UnavailableError(absl::StrCat(name_, ": connection reset by the agent"));
    }
    return base::ErrnoToStatus(errno, name_ + ": read");
  }
}

absl::Status FramedConn::ReadFully(char* data, size_t size, bool eof_ok, absl::Time deadline) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd_.get(), data + done, size - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      if (done == 0 && eof_ok) {
        return absl::UnavailableError(absl::StrCat(name_, ": agent closed the connection"));
      }
      return absl::DataLossError(absl::StrCat(name_, ": agent closed the connection mid-frame"));
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      SM_RETURN_IF_ERROR(PollUntil(fd_.get(), POLLIN, deadline, name_ + ": read"));
      continue;
    }
    if (errno == ECONNRESET) {
      return absl::UnavailableError(absl::StrCat(name_, ": connection reset by the agent"));
    }
    return base::ErrnoToStatus(errno, name_ + ": read");
  }
  return absl::OkStatus();
}

absl::Status FramedConn::ReadExact(google::protobuf::MessageLite* message, absl::Time deadline) {
  unsigned char header[4];
  SM_RETURN_IF_ERROR(ReadFully(reinterpret_cast<char*>(header), sizeof(header), true, deadline));
  uint32_t size = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                  (uint32_t{header[2]} << 8) | uint32_t{header[3]};
  if (size == 0 || size > protocol::kMaxFrameBytes) {
    return absl::DataLossError(absl::StrCat(name_, ": malformed frame: length ", size,
                                            " outside 1..", protocol::kMaxFrameBytes));
  }
  std::string payload(size, '\0');
  SM_RETURN_IF_ERROR(ReadFully(payload.data(), size, false, deadline));
  return Parse(payload, message);
}

absl::Status FramedConn::ShutdownWrite() {
  if (shutdown(fd_.get(), SHUT_WR) < 0 && errno != ENOTCONN) {
    return base::ErrnoToStatus(errno, name_ + ": shutdown(SHUT_WR)");
  }
  return absl::OkStatus();
}

void FramedConn::Abort() { (void)shutdown(fd_.get(), SHUT_RDWR); }

base::UniqueFd FramedConn::Release() {
  (void)SetNonBlocking(fd_.get(), false);
  return std::move(fd_);
}

absl::Status AgentErrorToStatus(const v1::Error& error, const std::string& context) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  if (error.code() > 0 && error.code() <= static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    code = static_cast<absl::StatusCode>(error.code());
  }
  std::string message = error.message().empty()
                            ? absl::StrCat("agent error code ", error.code(), " without a message")
                            : error.message();
  return absl::Status(code, absl::StrCat(context, ": ", message));
}

}  // namespace supermachine::agent
