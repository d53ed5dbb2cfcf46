// File: framed_stream.h
// Ethernet frames over a connected SOCK_STREAM socket in the framing QEMU's `-netdev stream`
// and passt use: a 4-byte big-endian length, then the frame. Non-blocking both ways: received
// bytes are buffered until a whole frame is there (the caller takes frames one at a time and
// reads more only when it has room for them), sent frames go to a bounded output buffer that
// Flush() drains as the socket accepts it, so a slow backend pushes back instead of blocking
// the VM's event loop.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "worker/base/unique_fd.h"

namespace supermachine::net {

class FramedStream {
 public:
  // Largest frame either side may carry (passt's own limit is 65535 + headers).
  static constexpr size_t kMaxFrame = 65536 + 14;
  static constexpr size_t kMaxOutput = size_t{512} * 1024;

  // Takes a connected stream socket; makes it non-blocking.
  explicit FramedStream(base::UniqueFd fd);

  int fd() const { return fd_.get(); }
  // The peer hung up or broke the framing; nothing more will be read or written.
  bool closed() const { return closed_; }

  // The next whole received frame, reading from the socket when none is buffered yet (at most
  // one read). nullopt: none available now. The span stays valid until PopFrame/NextFrame.
  std::optional<absl::Span<const uint8_t>> NextFrame();
  void PopFrame();

  // Queues `frame`; false (nothing queued) when the output buffer cannot take it now.
  bool Send(absl::Span<const uint8_t> frame);
  // Writes buffered output until the socket would block.
  void Flush();
  bool has_output() const { return out_.size() > out_start_; }
  // Send() would take a frame of any size now.
  bool can_send() const { return out_.size() - out_start_ + 4 + kMaxFrame <= kMaxOutput; }

 private:
  std::optional<absl::Span<const uint8_t>> BufferedFrame();
  void Close() { closed_ = true; }

  base::UniqueFd fd_;
  bool closed_ = false;
  std::vector<uint8_t> in_;  // Received bytes: [in_start_, in_end_) are unconsumed.
  size_t in_start_ = 0;
  size_t in_end_ = 0;
  size_t current_len_ = 0;   // Bytes (with prefix) of the frame NextFrame returned, or 0.
  std::vector<uint8_t> out_;
  size_t out_start_ = 0;
};

}  // namespace supermachine::net
