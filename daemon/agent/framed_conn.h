// File: framed_conn.h
// One agent connection as frames with deadlines: every read and write polls a non-blocking
// socket against the caller's deadline, so no agent (slow, stuck or hostile) can hang the
// daemon. Frames follow guest-agent/protocol/frame.h; errors are absl::Status with the
// connection named ("vsock /run/x.sock port 1024: exec: ...").
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "guest-agent/protocol/frame.h"
#include "worker/base/unique_fd.h"

namespace google::protobuf {
class MessageLite;
}

namespace supermachine::agent::v1 {
class Error;
}

namespace supermachine::agent {

class FramedConn {
 public:
  // Takes the connected stream and makes it non-blocking. `name` prefixes error messages.
  FramedConn(base::UniqueFd fd, std::string name);

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

  // Writes one frame. Unavailable when the agent has closed the connection.
  absl::Status Write(const google::protobuf::MessageLite& message, absl::Time deadline);
  // Reads one frame (buffered: may read ahead into the next frames).
  // Unavailable on a clean close before a frame; DataLoss on a malformed frame or a close
  // mid-frame; DeadlineExceeded.
  absl::Status Read(google::protobuf::MessageLite* message, absl::Time deadline);
  // Like Read but never reads past the frame: for the reply after which raw bytes follow
  // (connect). Only valid while nothing is buffered.
  absl::Status ReadExact(google::protobuf::MessageLite* message, absl::Time deadline);
  // Half-close: the agent sees EOF on its side of the stream.
  absl::Status ShutdownWrite();
  // Shuts both directions down: a thread blocked in Write or Read wakes up with an error.
  // Safe to call from any thread.
  void Abort();
  // Gives the socket back (blocking mode restored). Only valid while nothing is buffered.
  base::UniqueFd Release();

 private:
  absl::Status ReadFully(char* data, size_t size, bool eof_ok, absl::Time deadline);
  absl::Status Parse(const std::string& payload, google::protobuf::MessageLite* message);

  base::UniqueFd fd_;
  std::string name_;
  protocol::FrameDecoder decoder_;
  std::string read_buf_;  // Reused by Read: one allocation per connection.
};

// The agent's Error message as a Status: its code is an absl::StatusCode, kept as is (an
// unknown or OK code becomes Unknown); `context` prefixes the message.
absl::Status AgentErrorToStatus(const v1::Error& error, const std::string& context);

}  // namespace supermachine::agent
