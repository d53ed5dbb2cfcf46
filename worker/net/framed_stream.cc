// File: framed_stream.cc
// Buffering and framing for FramedStream.
#include "worker/net/framed_stream.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace supermachine::net {

FramedStream::FramedStream(base::UniqueFd fd) : fd_(std::move(fd)), in_(2 * (kMaxFrame + 4)) {
  const int flags = fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    Close();
  }
}

std::optional<absl::Span<const uint8_t>> FramedStream::BufferedFrame() {
  const size_t have = in_end_ - in_start_;
  if (have < 4) {
    return std::nullopt;
  }
  const uint8_t* p = in_.data() + in_start_;
  const size_t len = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  if (len > kMaxFrame) {
    Close();  // The framing is lost; nothing after this can be trusted.
    return std::nullopt;
  }
  if (have < 4 + len) {
    return std::nullopt;
  }
  current_len_ = 4 + len;
  return absl::MakeConstSpan(p + 4, len);
}

std::optional<absl::Span<const uint8_t>> FramedStream::NextFrame() {
  if (closed_) {
    return std::nullopt;
  }
  if (auto f = BufferedFrame(); f.has_value() || closed_) {
    return f;
  }
  // Make room: move the partial frame to the front (the buffer holds two whole frames, so after
  // compaction one more always fits).
  if (in_start_ > 0) {
    std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
    in_end_ -= in_start_;
    in_start_ = 0;
  }
  const ssize_t n = recv(fd_.get(), in_.data() + in_end_, in_.size() - in_end_, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    Close();
    return std::nullopt;
  }
  if (n > 0) {
    in_end_ += static_cast<size_t>(n);
  }
  return BufferedFrame();
}

void FramedStream::PopFrame() {
  in_start_ += current_len_;
  current_len_ = 0;
  if (in_start_ == in_end_) {
    in_start_ = in_end_ = 0;
  }
}

bool FramedStream::Send(absl::Span<const uint8_t> frame) {
  if (closed_ || frame.size() > kMaxFrame) {
    return false;
  }
  if (out_start_ > 0 && out_start_ == out_.size()) {
    out_.clear();
    out_start_ = 0;
  }
  if (out_.size() - out_start_ + 4 + frame.size() > kMaxOutput) {
    return false;
  }
  const size_t len = frame.size();
  const uint8_t prefix[4] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                             static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  out_.insert(out_.end(), prefix, prefix + 4);
  out_.insert(out_.end(), frame.begin(), frame.end());
  return true;
}

void FramedStream::Flush() {
  while (!closed_ && has_output()) {
    const ssize_t n = send(fd_.get(), out_.data() + out_start_, out_.size() - out_start_,
                           MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        Close();
      }
      break;
    }
    out_start_ += static_cast<size_t>(n);
  }
  if (out_start_ == out_.size()) {
    out_.clear();
    out_start_ = 0;
  } else if (out_start_ > kMaxOutput / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<long>(out_start_));
    out_start_ = 0;
  }
}

}  // namespace supermachine::net
