// File: net_device_test.cc
// virtio-net through the mmio transport with a fake driver laid out as Linux 6.1 without
// mergeable buffers does it (rx: one 12+1518-byte writable buffer; tx: header and frame in one
// readable buffer), and a socketpair standing in for passt.
#include "worker/devices/virtio/net/net.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/unit/net/test_frames.h"
#include "tests/unit/worker/fake_irq.h"
#include "tests/unit/worker/virtq_builder.h"
#include "worker/devices/virtio/mmio.h"

namespace supermachine::devices::virtio::net {
namespace {

using ::supermachine::testing::CountingIrq;
using ::supermachine::testing::VirtqBuilder;
namespace n = ::supermachine::net;
namespace nt = ::supermachine::net::testing;

constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kRxBase = 0x00000, kTxBase = 0x10000;
constexpr uint64_t kRxData = 0x40000, kTxData = 0x80000;
constexpr uint32_t kRxBufLen = kNetHeaderSize + 1518;

class NetDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    peer_ = base::UniqueFd(fds[1]);
    n::PasstBackend backend;
    backend.stream = std::make_unique<n::FramedStream>(base::UniqueFd(fds[0]));
    NetConfig config{.mac = {0x02, 0x5a, 1, 2, 3, 4},
                     .filter = {.policy = {}, .resolver = nt::Ip("10.0.2.3")}};
    auto dev = VirtioNet::Create(config, std::move(backend));
    ASSERT_TRUE(dev.ok()) << dev.status();
    dev_ = dev->get();
    t_ = std::make_unique<MmioTransport>(*std::move(dev), &*mem_, &irq_);
    rx_.emplace(*mem_, kQueueSize, kRxBase);
    tx_.emplace(*mem_, kQueueSize, kTxBase);
  }

  uint32_t R(uint64_t off) {
    uint32_t v = 0;
    t_->Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void W(uint64_t off, uint32_t v) {
    t_->Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }

  void BringUp() {
    W(reg::kStatus, status::kAcknowledge | status::kDriver);
    W(reg::kDeviceFeaturesSel, 0);
    const uint32_t low = R(reg::kDeviceFeatures);
    W(reg::kDriverFeaturesSel, 0);
    W(reg::kDriverFeatures, low);
    W(reg::kDriverFeaturesSel, 1);
    W(reg::kDriverFeatures, 1);
    W(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    VirtqBuilder* qs[] = {&*rx_, &*tx_};
    for (uint32_t i = 0; i < 2; ++i) {
      W(reg::kQueueSel, i);
      W(reg::kQueueNum, kQueueSize);
      W(reg::kQueueDescLow, static_cast<uint32_t>(qs[i]->desc_table()));
      W(reg::kQueueDriverLow, static_cast<uint32_t>(qs[i]->avail()));
      W(reg::kQueueDeviceLow, static_cast<uint32_t>(qs[i]->used()));
      W(reg::kQueueReady, 1);
    }
    W(reg::kStatus,
      status::kAcknowledge | status::kDriver | status::kFeaturesOk | status::kDriverOk);
    ASSERT_TRUE(R(reg::kStatus) & status::kDriverOk);
  }

  void PostRx(int count) {
    for (int i = 0; i < count; ++i) {
      const uint64_t addr = kRxData + 0x800ull * (posted_rx_++ % kQueueSize);
      rx_->AddChain({{addr, kRxBufLen, true}});
    }
    t_->Notify(VirtioNet::kRxQueue);
  }

  void SendTx(const std::vector<uint8_t>& frame) {
    const uint64_t addr = kTxData + 0x800ull * (sent_tx_++ % kQueueSize);
    std::vector<uint8_t> bytes(kNetHeaderSize, 0);
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    ASSERT_TRUE(mem_->Write(addr, bytes).ok());
    tx_->AddChain({{addr, static_cast<uint32_t>(bytes.size()), false}});
    t_->Notify(VirtioNet::kTxQueue);
  }

  // The frame in used rx entry `i` (after the 12-byte header, which is checked).
  std::vector<uint8_t> RxFrame(uint16_t i) {
    const uint32_t id = rx_->UsedId(i);
    const uint32_t len = rx_->UsedLen(i);
    const uint64_t addr = kRxData + 0x800ull * id;  // One descriptor per chain: id == index.
    std::vector<uint8_t> bytes(len);
    EXPECT_TRUE(mem_->Read(addr, absl::MakeSpan(bytes)).ok());
    EXPECT_GE(len, kNetHeaderSize);
    EXPECT_EQ(bytes[10], 1);  // num_buffers
    EXPECT_EQ(bytes[0], 0);   // flags: no checksum offload
    return std::vector<uint8_t>(bytes.begin() + kNetHeaderSize, bytes.end());
  }

  std::string ReadPeer(int ms = 1000) {
    pollfd p{.fd = peer_.get(), .events = POLLIN, .revents = 0};
    if (poll(&p, 1, ms) <= 0) {
      return "";
    }
    char buf[4096];
    const ssize_t got = recv(peer_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    return got > 0 ? std::string(buf, static_cast<size_t>(got)) : "";
  }

  void WritePeerFrame(const std::vector<uint8_t>& frame) {
    const size_t len = frame.size();
    std::string s = {static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                     static_cast<char>(len >> 8), static_cast<char>(len)};
    s.append(reinterpret_cast<const char*>(frame.data()), frame.size());
    ASSERT_EQ(write(peer_.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }

  bool HostEventReadable() {
    pollfd p{.fd = t_->host_event_fd(), .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) > 0;
  }

  std::optional<memory::GuestMemory> mem_;
  CountingIrq irq_;
  base::UniqueFd peer_;
  VirtioNet* dev_ = nullptr;
  std::unique_ptr<MmioTransport> t_;
  std::optional<VirtqBuilder> rx_, tx_;
  int posted_rx_ = 0;
  int sent_tx_ = 0;
};

TEST_F(NetDeviceTest, IdentityFeaturesAndConfigSpace) {
  EXPECT_EQ(R(reg::kDeviceId), kDeviceTypeNet);
  W(reg::kDeviceFeaturesSel, 0);
  const uint32_t low = R(reg::kDeviceFeatures);
  EXPECT_TRUE(low & kFeatureMac);
  EXPECT_TRUE(low & kFeatureStatus);
  EXPECT_EQ(low & ~static_cast<uint32_t>(kFeatureMac | kFeatureStatus), 0u)
      << "no offloads or mergeable buffers offered";
  uint8_t cfg[8] = {};
  t_->Read(reg::kConfig, absl::MakeSpan(cfg));
  EXPECT_EQ(std::vector<uint8_t>(cfg, cfg + 6), (std::vector<uint8_t>{2, 0x5a, 1, 2, 3, 4}));
  EXPECT_EQ(cfg[6], kStatusLinkUp);
  dev_->set_link_up(false);
  t_->Read(reg::kConfig + 6, absl::MakeSpan(cfg, 2));
  EXPECT_EQ(cfg[0], 0);
}

TEST_F(NetDeviceTest, AllowedGuestFrameReachesTheBackend) {
  BringUp();
  PostRx(4);
  const auto frame = nt::IpFrame(nt::Ip("10.0.2.15"), nt::Ip("1.1.1.1"), n::kProtoTcp,
                                 nt::Tcp(40000, 443, nt::kSyn, 1, 0));
  SendTx(frame);
  EXPECT_EQ(tx_->UsedIdx(), 1);
  EXPECT_EQ(tx_->UsedLen(0), 0u);
  const std::string got = ReadPeer();
  ASSERT_EQ(got.size(), 4 + frame.size());
  EXPECT_EQ(static_cast<uint8_t>(got[3]), frame.size());
  EXPECT_EQ(got.substr(4), std::string(frame.begin(), frame.end()));
  EXPECT_EQ(dev_->stats().tx_packets.load(), 1u);
  EXPECT_EQ(dev_->stats().tx_bytes.load(), frame.size());
  EXPECT_EQ(dev_->stats().dropped_policy.load(), 0u);
}

TEST_F(NetDeviceTest, RefusedSynIsCountedAndAnsweredWithRst) {
  BringUp();
  PostRx(4);
  const int irqs = irq_.count;
  SendTx(nt::IpFrame(nt::Ip("10.0.2.15"), nt::Ip("169.254.169.254"), n::kProtoTcp,
                     nt::Tcp(40000, 80, nt::kSyn, 7, 0)));
  EXPECT_EQ(dev_->stats().dropped_policy.load(), 1u);
  EXPECT_EQ(ReadPeer(50), "");  // Nothing reached the backend.
  ASSERT_EQ(rx_->UsedIdx(), 1);
  EXPECT_GT(irq_.count, irqs);
  auto info = n::ParseFrame(RxFrame(0));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->src, nt::Ip("169.254.169.254"));
  EXPECT_EQ(info->tcp_flags, 0x14);  // RST|ACK
  EXPECT_EQ(info->tcp_ack, 8u);
  EXPECT_EQ(dev_->stats().rx_packets.load(), 1u);
}

TEST_F(NetDeviceTest, ReplyWaitsForAnRxBuffer) {
  BringUp();
  SendTx(nt::IpFrame(nt::Ip("10.0.2.15"), nt::Ip("10.1.1.1"), n::kProtoUdp, nt::Udp(1, 9)));
  EXPECT_EQ(rx_->UsedIdx(), 0);
  PostRx(1);
  ASSERT_EQ(rx_->UsedIdx(), 1);
  EXPECT_EQ(n::ParseFrame(RxFrame(0))->proto, n::kProtoIcmp);
}

TEST_F(NetDeviceTest, MalformedGuestFramesAreDroppedAndCounted) {
  BringUp();
  SendTx({1, 2, 3});  // Shorter than an Ethernet header.
  auto bogus = nt::IpFrame(nt::Ip("10.0.2.15"), nt::Ip("1.1.1.1"), n::kProtoUdp, nt::Udp(1, 9));
  bogus[14 + 2] = 0xff;  // IPv4 total length beyond the frame.
  SendTx(bogus);
  EXPECT_EQ(tx_->UsedIdx(), 2);
  EXPECT_EQ(dev_->stats().dropped_malformed.load(), 2u);
  EXPECT_EQ(dev_->stats().tx_packets.load(), 0u);
  EXPECT_EQ(ReadPeer(50), "");
}

TEST_F(NetDeviceTest, BackendFramesFillRxBuffersWithBackpressure) {
  BringUp();
  const auto frame = nt::IpFrame(nt::Ip("1.1.1.1"), nt::Ip("10.0.2.15"), n::kProtoUdp,
                                 nt::Udp(53, 5353, 100));
  WritePeerFrame(frame);
  WritePeerFrame(frame);
  ASSERT_TRUE(HostEventReadable());
  t_->ProcessHostEvents();
  // No rx buffers yet: the device stops watching the socket instead of spinning.
  EXPECT_EQ(rx_->UsedIdx(), 0);
  EXPECT_FALSE(HostEventReadable());
  PostRx(1);  // One buffer: one frame delivered, the other waits.
  ASSERT_EQ(rx_->UsedIdx(), 1);
  EXPECT_EQ(RxFrame(0), frame);
  EXPECT_FALSE(HostEventReadable());
  PostRx(1);
  ASSERT_EQ(rx_->UsedIdx(), 2);
  EXPECT_EQ(RxFrame(1), frame);
  EXPECT_EQ(dev_->stats().rx_packets.load(), 2u);
  EXPECT_EQ(dev_->stats().rx_bytes.load(), 2 * frame.size());
}

TEST_F(NetDeviceTest, OversizedBackendFrameIsDroppedBufferKept) {
  BringUp();
  PostRx(1);
  WritePeerFrame(std::vector<uint8_t>(3000, 0));  // Bigger than the 1518-byte buffer.
  const auto small = nt::IpFrame(nt::Ip("1.1.1.1"), nt::Ip("10.0.2.15"), n::kProtoUdp,
                                 nt::Udp(53, 5353));
  WritePeerFrame(small);
  for (int i = 0; i < 3 && rx_->UsedIdx() == 0; ++i) {
    t_->ProcessHostEvents();
  }
  ASSERT_EQ(rx_->UsedIdx(), 1);
  EXPECT_EQ(RxFrame(0), small);
  EXPECT_EQ(dev_->stats().dropped_rx.load(), 1u);
}

TEST_F(NetDeviceTest, SegmentsOfConnectionsOlderThanTheDeviceAreReset) {
  BringUp();
  PostRx(4);
  const auto src = nt::Ip("10.0.2.15"), dst = nt::Ip("1.1.1.1");
  // A connection opened through this device passes, SYN and data alike.
  SendTx(nt::IpFrame(src, dst, n::kProtoTcp, nt::Tcp(40000, 443, nt::kSyn, 1, 0)));
  SendTx(nt::IpFrame(src, dst, n::kProtoTcp, nt::Tcp(40000, 443, nt::kAck, 2, 9, 10)));
  EXPECT_EQ(dev_->stats().tx_packets.load(), 2u);
  // Data of a connection this device never saw open (one from before a restore): RST.
  SendTx(nt::IpFrame(src, dst, n::kProtoTcp, nt::Tcp(40001, 443, nt::kAck, 5, 77, 10)));
  EXPECT_EQ(dev_->stats().tx_packets.load(), 2u);
  EXPECT_EQ(dev_->stats().reset_stale.load(), 1u);
  ASSERT_EQ(rx_->UsedIdx(), 1);
  auto info = n::ParseFrame(RxFrame(0));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->tcp_flags, 0x04);
  EXPECT_EQ(info->tcp_seq, 77u);
  EXPECT_EQ(info->dst_port, 40001);
}

TEST_F(NetDeviceTest, BackendGoneTakesLinkDownWithoutSpinning) {
  BringUp();
  peer_.Reset();
  ASSERT_TRUE(HostEventReadable());
  t_->ProcessHostEvents();
  EXPECT_FALSE(HostEventReadable());
  uint8_t st[2] = {};
  t_->Read(reg::kConfig + 6, absl::MakeSpan(st));
  EXPECT_EQ(st[0], 0);
}

}  // namespace
}  // namespace supermachine::devices::virtio::net
