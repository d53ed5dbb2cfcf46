// File: tests/fuzz/agent/frame_fuzz.cc
// Fuzz target for what the guest agent reads from the host before trusting anything: the frame
// decoder (fed in input-chosen chunk sizes, as a socket would split it) and the parsing of each
// frame as a Request and as the in-stream messages (ExecInput, FileChunk). The decoder must
// never buffer past one frame's limit or crash; parsing must reject, not crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "guest-agent/protocol/frame.h"
#include "proto/agent.pb.h"

namespace {

namespace protocol = supermachine::agent::protocol;
namespace v1 = supermachine::agent::v1;

void ParseAll(const std::string& payload) {
  v1::Request request;
  if (request.ParseFromString(payload)) {
    // Touch what the server switches on.
    (void)request.op_case();
    if (request.has_exec()) {
      (void)request.exec().argv_size();
    }
  }
  v1::ExecInput input;
  (void)input.ParseFromString(payload);
  v1::FileChunk chunk;
  (void)chunk.ParseFromString(payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  // First byte: chunk size for feeding (1..256), so splits at every offset get exercised.
  const size_t chunk = static_cast<size_t>(data[0]) + 1;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  protocol::FrameDecoder decoder;
  std::string payload;
  while (true) {
    const size_t n = left < chunk ? left : chunk;
    decoder.Feed(bytes, n);
    bytes += n;
    left -= n;
    protocol::FrameDecoder::Result result;
    while ((result = decoder.Next(&payload)) == protocol::FrameDecoder::Result::kFrame) {
      if (payload.empty() || payload.size() > protocol::kMaxFrameBytes) {
        __builtin_trap();  // The decoder promised 1..kMaxFrameBytes.
      }
      ParseAll(payload);
    }
    if (result == protocol::FrameDecoder::Result::kError && decoder.buffered() != 0) {
      __builtin_trap();  // An errored decoder must drop its buffer.
    }
    if (left == 0) {
      break;
    }
  }
  return 0;
}
