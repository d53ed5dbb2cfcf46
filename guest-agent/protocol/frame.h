// File: guest-agent/protocol/frame.h
// Framing of proto/agent.proto on a byte stream: 4-byte big-endian length, then that many bytes
// of one serialized message. Shared by the guest agent and the host client, so it depends on
// nothing but libc and protobuf-lite. Every length comes from the other side of a trust
// boundary: 0 or > kMaxFrameBytes is an error, never an allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// Included rather than forward-declared: gtest forward-declares a MessageLite of its own, and
// clang-tidy (bugprone-forward-declaration-namespace) flags every test that sees both.
#include <google/protobuf/message_lite.h>

namespace supermachine::agent::protocol {

inline constexpr uint32_t kAgentPort = 1024;          // vsock port the agent listens on.
inline constexpr uint32_t kMaxFrameBytes = 4u << 20;  // Largest frame payload accepted.
inline constexpr size_t kMaxChunkBytes = 1u << 20;    // Largest stdin/stdout/file chunk sent.

// Appends one frame (header + payload) to `out`. False if the payload is empty or too large.
bool AppendFrame(std::string_view payload, std::string* out);

// Incremental decoder for a non-blocking reader: Feed() what arrived, then Next() until it
// says kNeedMore. After kError the decoder stays in error (the stream is out of sync).
class FrameDecoder {
 public:
  enum class Result { kFrame, kNeedMore, kError };
  void Feed(const char* data, size_t size);
  Result Next(std::string* payload);
  const std::string& error() const { return error_; }
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  std::string error_;
};

// Blocking helpers for one-operation-per-connection code paths (both sides use them).
enum class ReadResult { kOk, kEof, kMalformed, kIoError };
struct ReadStatus {
  ReadResult result = ReadResult::kOk;
  int error = 0;        // errno for kIoError.
  std::string message;  // What was wrong, for kMalformed / kIoError.
};
// Reads exactly one frame and parses it into `message`. kEof only when the peer closed
// cleanly before the first header byte; a close mid-frame is kMalformed.
ReadStatus ReadMessage(int fd, google::protobuf::MessageLite* message);
// Serializes and writes one frame, retrying on EINTR / short writes. 0 or -errno
// (-EMSGSIZE when the message is too large to frame).
int WriteMessage(int fd, const google::protobuf::MessageLite& message);

}  // namespace supermachine::agent::protocol
