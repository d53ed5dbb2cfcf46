// File: packet.cc
// virtio-vsock header encoding: explicit little-endian field by field, so the layout does not
// depend on struct packing or host byte order.
#include "worker/devices/virtio/vsock/packet.h"

namespace supermachine::devices::virtio::vsock {
namespace {

template <typename T>
void Put(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

template <typename T>
T Get(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v = static_cast<T>(v | (static_cast<T>(p[i]) << (8 * i)));
  }
  return v;
}

// Field offsets of struct virtio_vsock_hdr.
constexpr size_t kSrcCid = 0, kDstCid = 8, kSrcPort = 16, kDstPort = 20, kLen = 24, kType = 28,
                 kOp = 30, kFlags = 32, kBufAlloc = 36, kFwdCnt = 40;

}  // namespace

std::array<uint8_t, kHeaderSize> EncodeHeader(const Header& h) {
  std::array<uint8_t, kHeaderSize> b{};
  Put<uint64_t>(&b[kSrcCid], h.src_cid);
  Put<uint64_t>(&b[kDstCid], h.dst_cid);
  Put<uint32_t>(&b[kSrcPort], h.src_port);
  Put<uint32_t>(&b[kDstPort], h.dst_port);
  Put<uint32_t>(&b[kLen], h.len);
  Put<uint16_t>(&b[kType], h.type);
  Put<uint16_t>(&b[kOp], h.op);
  Put<uint32_t>(&b[kFlags], h.flags);
  Put<uint32_t>(&b[kBufAlloc], h.buf_alloc);
  Put<uint32_t>(&b[kFwdCnt], h.fwd_cnt);
  return b;
}

Header DecodeHeader(absl::Span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  return Header{.src_cid = Get<uint64_t>(p + kSrcCid),
                .dst_cid = Get<uint64_t>(p + kDstCid),
                .src_port = Get<uint32_t>(p + kSrcPort),
                .dst_port = Get<uint32_t>(p + kDstPort),
                .len = Get<uint32_t>(p + kLen),
                .type = Get<uint16_t>(p + kType),
                .op = Get<uint16_t>(p + kOp),
                .flags = Get<uint32_t>(p + kFlags),
                .buf_alloc = Get<uint32_t>(p + kBufAlloc),
                .fwd_cnt = Get<uint32_t>(p + kFwdCnt)};
}

const char* OpName(uint16_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kInvalid: return "INVALID";
    case Op::kRequest: return "REQUEST";
    case Op::kResponse: return "RESPONSE";
    case Op::kRst: return "RST";
    case Op::kShutdown: return "SHUTDOWN";
    case Op::kRw: return "RW";
    case Op::kCreditUpdate: return "CREDIT_UPDATE";
    case Op::kCreditRequest: return "CREDIT_REQUEST";
  }
  return "unknown op";
}

}  // namespace supermachine::devices::virtio::vsock
