// File: vsock_packet_test.cc
// virtio-vsock header wire format: field offsets and byte order as in struct virtio_vsock_hdr.
#include "worker/devices/virtio/vsock/packet.h"

#include "gtest/gtest.h"

namespace supermachine::devices::virtio::vsock {
namespace {

TEST(VsockPacketTest, EncodesFieldsLittleEndianAtTheirSpecOffsets) {
  const Header h{.src_cid = 2,
                 .dst_cid = 0x0102030405060708ull,
                 .src_port = 0x11223344,
                 .dst_port = 5000,
                 .len = 0x10000,
                 .type = kTypeStream,
                 .op = static_cast<uint16_t>(Op::kRw),
                 .flags = kShutdownBoth,
                 .buf_alloc = 0x40000,
                 .fwd_cnt = 0xdeadbeef};
  const std::array<uint8_t, kHeaderSize> b = EncodeHeader(h);
  EXPECT_EQ(b[0], 2);            // src_cid
  EXPECT_EQ(b[8], 0x08);         // dst_cid, low byte first
  EXPECT_EQ(b[15], 0x01);
  EXPECT_EQ(b[16], 0x44);        // src_port
  EXPECT_EQ(b[20], 5000 & 0xff); // dst_port
  EXPECT_EQ(b[21], 5000 >> 8);
  EXPECT_EQ(b[26], 0x01);        // len = 0x10000
  EXPECT_EQ(b[28], 1);           // type
  EXPECT_EQ(b[30], 5);           // op
  EXPECT_EQ(b[32], 3);           // flags
  EXPECT_EQ(b[38], 0x04);        // buf_alloc = 0x40000
  EXPECT_EQ(b[40], 0xef);        // fwd_cnt
  EXPECT_EQ(b[43], 0xde);
}

TEST(VsockPacketTest, DecodeInvertsEncode) {
  const Header h{.src_cid = 3,
                 .dst_cid = 2,
                 .src_port = 1025,
                 .dst_port = 6000,
                 .len = 44,
                 .type = kTypeStream,
                 .op = static_cast<uint16_t>(Op::kCreditUpdate),
                 .flags = 0,
                 .buf_alloc = 262144,
                 .fwd_cnt = 4096};
  const auto bytes = EncodeHeader(h);
  EXPECT_EQ(DecodeHeader(bytes), h);
}

TEST(VsockPacketTest, DecodesArbitraryGuestBytesWithoutJudging) {
  std::array<uint8_t, kHeaderSize> b;
  b.fill(0xff);
  const Header h = DecodeHeader(b);
  EXPECT_EQ(h.op, 0xffff);
  EXPECT_EQ(h.len, 0xffffffffu);
  EXPECT_STREQ(OpName(h.op), "unknown op");
  EXPECT_STREQ(OpName(static_cast<uint16_t>(Op::kRst)), "RST");
}

}  // namespace
}  // namespace supermachine::devices::virtio::vsock
