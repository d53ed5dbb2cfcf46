// File: packet.h
// The virtio-vsock wire format (virtio 1.2 §5.10.6): the 44-byte little-endian packet header
// every packet starts with, its op codes and flags, and encode/decode to bytes. Pure data: no
// I/O, so the rules are unit-tested on plain buffers.
#pragma once

#include <array>
#include <cstdint>

#include "absl/types/span.h"

namespace supermachine::devices::virtio::vsock {

// CIDs: 0 and 1 are reserved, 2 is always the host, guests get >= 3 (§5.10.4).
inline constexpr uint64_t kHostCid = 2;
inline constexpr uint64_t kMinGuestCid = 3;

inline constexpr size_t kHeaderSize = 44;  // sizeof(struct virtio_vsock_hdr), packed.
// The largest payload one packet may carry. Linux never sends more
// (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); a bigger `len` is a broken or hostile driver.
inline constexpr uint32_t kMaxPayload = 64 * 1024;

inline constexpr uint16_t kTypeStream = 1;  // VIRTIO_VSOCK_TYPE_STREAM; the only type we offer.

enum class Op : uint16_t {
  kInvalid = 0,
  kRequest = 1,        // Connect.
  kResponse = 2,       // Connection accepted.
  kRst = 3,            // Connection refused or aborted; never answered.
  kShutdown = 4,       // Half or full close; `flags` says which direction(s).
  kRw = 5,             // Stream data.
  kCreditUpdate = 6,   // Unsolicited buf_alloc/fwd_cnt.
  kCreditRequest = 7,  // Please send a CREDIT_UPDATE.
};

// SHUTDOWN flags: the sender will receive (RCV) / send (SEND) no more.
inline constexpr uint32_t kShutdownRcv = 1;
inline constexpr uint32_t kShutdownSend = 2;
inline constexpr uint32_t kShutdownBoth = kShutdownRcv | kShutdownSend;

// Event queue: struct virtio_vsock_event { le32 id; }.
inline constexpr uint32_t kEventTransportReset = 0;
inline constexpr size_t kEventSize = 4;

struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;  // Payload bytes after the header.
  uint16_t type = kTypeStream;
  uint16_t op = 0;  // An Op; kept raw because the guest may send anything.
  uint32_t flags = 0;
  // Credit (§5.10.6.3): the sender's receive buffer size and the bytes it has consumed so far.
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;

  Op op_code() const { return static_cast<Op>(op); }
  bool operator==(const Header&) const = default;
};

std::array<uint8_t, kHeaderSize> EncodeHeader(const Header& h);
// `bytes` must hold at least kHeaderSize bytes (only the first kHeaderSize are read).
Header DecodeHeader(absl::Span<const uint8_t> bytes);

// Printable op name for logs ("RW", "op 99").
const char* OpName(uint16_t op);

}  // namespace supermachine::devices::virtio::vsock
