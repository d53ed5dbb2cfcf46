// File: guest-agent/protocol/frame.cc
// The frame codec of proto/agent.proto (see frame.h). Lengths come from the peer, so each is
// checked against kMaxFrameBytes before anything is buffered for it.
#include "guest-agent/protocol/frame.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/message_lite.h>

namespace supermachine::agent::protocol {
namespace {

constexpr size_t kHeaderBytes = 4;

uint32_t DecodeLength(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

// Reads exactly `size` bytes. Returns the bytes read before EOF (== size on success) or -errno.
ssize_t ReadFull(int fd, char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

std::string LengthError(uint32_t length) {
  if (length == 0) {
    return "frame with zero length";
  }
  return "frame of " + std::to_string(length) + " bytes exceeds the " +
         std::to_string(kMaxFrameBytes) + "-byte limit";
}

}  // namespace

bool AppendFrame(std::string_view payload, std::string* out) {
  if (payload.empty() || payload.size() > kMaxFrameBytes) {
    return false;
  }
  const auto n = static_cast<uint32_t>(payload.size());
  const char header[kHeaderBytes] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                     static_cast<char>(n >> 8), static_cast<char>(n)};
  out->append(header, kHeaderBytes);
  out->append(payload);
  return true;
}

void FrameDecoder::Feed(const char* data, size_t size) {
  if (!error_.empty()) {
    return;  // Out of sync for good; do not grow the buffer.
  }
  // Compact before growing so a long-lived decoder does not keep consumed bytes.
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ > (1u << 16) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(data, size);
}

FrameDecoder::Result FrameDecoder::Next(std::string* payload) {
  if (!error_.empty()) {
    return Result::kError;
  }
  const size_t available = buffer_.size() - offset_;
  if (available < kHeaderBytes) {
    return Result::kNeedMore;
  }
  const uint32_t length = DecodeLength(buffer_.data() + offset_);
  if (length == 0 || length > kMaxFrameBytes) {
    error_ = LengthError(length);
    buffer_.clear();
    offset_ = 0;
    return Result::kError;
  }
  if (available - kHeaderBytes < length) {
    return Result::kNeedMore;
  }
  payload->assign(buffer_, offset_ + kHeaderBytes, length);
  offset_ += kHeaderBytes + length;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return Result::kFrame;
}

ReadStatus ReadMessage(int fd, google::protobuf::MessageLite* message) {
  char header[kHeaderBytes];
  ssize_t n = ReadFull(fd, header, kHeaderBytes);
  if (n < 0) {
    return {ReadResult::kIoError, static_cast<int>(-n), "read frame header: errno " +
                                                            std::to_string(-n)};
  }
  if (n == 0) {
    return {ReadResult::kEof, 0, ""};
  }
  if (static_cast<size_t>(n) < kHeaderBytes) {
    return {ReadResult::kMalformed, 0, "connection closed inside a frame header"};
  }
  const uint32_t length = DecodeLength(header);
  if (length == 0 || length > kMaxFrameBytes) {
    return {ReadResult::kMalformed, 0, LengthError(length)};
  }
  std::string payload(length, '\0');
  n = ReadFull(fd, payload.data(), length);
  if (n < 0) {
    return {ReadResult::kIoError, static_cast<int>(-n),
            "read frame payload: errno " + std::to_string(-n)};
  }
  if (static_cast<size_t>(n) < length) {
    return {ReadResult::kMalformed, 0,
            "connection closed after " + std::to_string(n) + " of " + std::to_string(length) +
                " frame bytes"};
  }
  if (!message->ParseFromString(payload)) {
    return {ReadResult::kMalformed, 0,
            "frame of " + std::to_string(length) + " bytes is not a valid " +
                message->GetTypeName()};
  }
  return {};
}

int WriteMessage(int fd, const google::protobuf::MessageLite& message) {
  std::string payload;
  if (!message.SerializeToString(&payload)) {
    return -EINVAL;
  }
  std::string frame;
  if (payload.empty()) {
    // A message with every field at its default serializes to zero bytes, which the framing
    // cannot carry (N >= 1). Top-level messages always set their oneof, so this is a bug.
    return -EINVAL;
  }
  if (!AppendFrame(payload, &frame)) {
    return -EMSGSIZE;
  }
  size_t done = 0;
  bool use_send = true;
  while (done < frame.size()) {
    // send(MSG_NOSIGNAL): a peer that hung up is -EPIPE here, not a SIGPIPE that kills the
    // process; plain write() for pipes and files (tests, fuzzers).
    ssize_t n = use_send ? ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL)
                         : ::write(fd, frame.data() + done, frame.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == ENOTSOCK && use_send) {
        use_send = false;
        continue;
      }
      return -errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace supermachine::agent::protocol
