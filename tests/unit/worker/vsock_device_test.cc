// File: vsock_device_test.cc
// virtio-vsock through the mmio transport with a fake driver: rx/tx/event rings in real
// (memfd) guest memory laid out as Linux 6.1 does (rx: a 44-byte header buffer chained to a
// 4 KiB payload buffer), host clients on real Unix sockets.
#include "worker/devices/virtio/vsock/vsock.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/worker/fake_irq.h"
#include "tests/unit/worker/virtq_builder.h"
#include "worker/devices/virtio/mmio.h"

namespace supermachine::devices::virtio::vsock {
namespace {

using testing::CountingIrq;
using testing::DescSpec;
using testing::VirtqBuilder;

constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kRxBase = 0x00000, kTxBase = 0x10000, kEventBase = 0x20000;
constexpr uint64_t kRxData = 0x40000, kTxData = 0x80000, kEventData = 0xc0000;
constexpr uint32_t kRxPayload = 4096;

std::string ReadSome(int fd, int ms = 1000) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, ms) <= 0) {
    return "";
  }
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n == 0) {
    return "<EOF>";
  }
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

class VsockDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    path_ = dir_.Join("v.sock");
    auto dev = Vsock::Create({.uds_path = path_, .guest_cid = 3});
    ASSERT_TRUE(dev.ok()) << dev.status();
    dev_ = dev->get();
    t_ = std::make_unique<MmioTransport>(*std::move(dev), &*mem_, &irq_);
    rx_.emplace(*mem_, kQueueSize, kRxBase);
    tx_.emplace(*mem_, kQueueSize, kTxBase);
    ev_.emplace(*mem_, kQueueSize, kEventBase);
  }

  uint32_t R(uint64_t off) {
    uint32_t v = 0;
    t_->Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void W(uint64_t off, uint32_t v) {
    t_->Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }

  // The Linux driver's bring-up: negotiate VERSION_1, program three queues, DRIVER_OK.
  void BringUp() {
    W(reg::kStatus, status::kAcknowledge);
    W(reg::kStatus, status::kAcknowledge | status::kDriver);
    W(reg::kDriverFeaturesSel, 1);
    W(reg::kDriverFeatures, 1);
    W(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    VirtqBuilder* qs[] = {&*rx_, &*tx_, &*ev_};
    for (uint32_t i = 0; i < 3; ++i) {
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

  // Posts `n` rx buffers (header descriptor + payload descriptor each) and notifies.
  void PostRx(int n) {
    for (int i = 0; i < n; ++i) {
      // Distinct addresses for more buffers than can be outstanding at once.
      const uint64_t addr = kRxData + 0x2000ull * (posted_rx_++ % kQueueSize);
      const uint16_t head = rx_->AddChain(
          {{addr, kHeaderSize, true}, {addr + 0x100, kRxPayload, true}});
      rx_addr_[head] = addr;
    }
    t_->Notify(Vsock::kRxQueue);
  }

  // The driver sends one packet (header and payload in separate descriptors).
  void SendTx(Header h, const std::string& payload = "") {
    h.len = static_cast<uint32_t>(payload.size());
    const uint64_t addr = kTxData + 0x2000ull * (sent_tx_++ % kQueueSize);
    const auto bytes = EncodeHeader(h);
    ASSERT_TRUE(mem_->Write(addr, bytes).ok());
    std::vector<DescSpec> descs = {{addr, kHeaderSize, false}};
    if (!payload.empty()) {
      ASSERT_TRUE(mem_->Write(addr + 0x100, absl::Span<const uint8_t>(
                                                reinterpret_cast<const uint8_t*>(payload.data()),
                                                payload.size()))
                      .ok());
      descs.push_back({addr + 0x100, static_cast<uint32_t>(payload.size()), false});
    }
    tx_->AddChain(descs);
    t_->Notify(Vsock::kTxQueue);
  }

  Header FromGuest(Op op, uint32_t src_port, uint32_t dst_port) {
    return Header{.src_cid = 3,
                  .dst_cid = kHostCid,
                  .src_port = src_port,
                  .dst_port = dst_port,
                  .type = kTypeStream,
                  .op = static_cast<uint16_t>(op),
                  .buf_alloc = 262144};
  }

  // The next packet the device put in the rx used ring, with its payload.
  std::optional<std::pair<Header, std::string>> NextRx() {
    if (rx_->UsedIdx() == seen_rx_) {
      return std::nullopt;
    }
    const uint16_t i = seen_rx_++;
    const uint64_t addr = rx_addr_[static_cast<uint16_t>(rx_->UsedId(i))];
    const uint32_t len = rx_->UsedLen(i);
    uint8_t hb[kHeaderSize];
    EXPECT_TRUE(mem_->Read(addr, absl::MakeSpan(hb)).ok());
    Header h = DecodeHeader(hb);
    EXPECT_EQ(len, kHeaderSize + h.len);
    std::string payload(h.len, '\0');
    EXPECT_TRUE(mem_->Read(addr + 0x100, absl::Span<uint8_t>(
                                             reinterpret_cast<uint8_t*>(payload.data()), h.len))
                    .ok());
    return std::make_pair(h, payload);
  }

  // What the VM's event loop does when the device's fd is readable.
  void HostEvents() {
    pollfd p{.fd = t_->host_event_fd(), .events = POLLIN, .revents = 0};
    poll(&p, 1, 100);
    t_->ProcessHostEvents();
  }

  base::UniqueFd HostConnect(uint32_t port) {
    base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string line = "CONNECT " + std::to_string(port) + "\n";
    EXPECT_EQ(write(fd.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
    return fd;
  }

  // Host client connected to guest port 5000 and accepted; returns the host port.
  uint32_t Establish(base::UniqueFd& client) {
    client = HostConnect(5000);
    HostEvents();
    auto req = NextRx();
    EXPECT_TRUE(req.has_value());
    if (!req) {
      return 0;
    }
    EXPECT_EQ(req->first.op_code(), Op::kRequest);
    SendTx(FromGuest(Op::kResponse, 5000, req->first.src_port));
    EXPECT_EQ(ReadSome(client.get()), "OK " + std::to_string(req->first.src_port) + "\n");
    return req->first.src_port;
  }

  test_support::TempDir dir_;
  std::string path_;
  std::optional<memory::GuestMemory> mem_;
  CountingIrq irq_;
  Vsock* dev_ = nullptr;
  std::unique_ptr<MmioTransport> t_;
  std::optional<VirtqBuilder> rx_, tx_, ev_;
  std::map<uint16_t, uint64_t> rx_addr_;
  int posted_rx_ = 0;
  int sent_tx_ = 0;
  uint16_t seen_rx_ = 0;
};

TEST_F(VsockDeviceTest, IdentifiesAsVsockWithItsGuestCid) {
  EXPECT_EQ(R(reg::kDeviceId), kDeviceTypeVsock);
  uint8_t cfg[8];
  t_->Read(reg::kConfig, absl::MakeSpan(cfg));
  EXPECT_EQ(cfg[0], 3);
  EXPECT_EQ(cfg[7], 0);
  EXPECT_GE(t_->host_event_fd(), 0);
  EXPECT_EQ(t_->num_queues(), 3u);
}

TEST_F(VsockDeviceTest, HostConnectionRunsThroughTheQueues) {
  BringUp();
  PostRx(8);
  base::UniqueFd client;
  const uint32_t host_port = Establish(client);
  ASSERT_NE(host_port, 0u);
  EXPECT_GT(irq_.count, 0);
  EXPECT_EQ(tx_->UsedIdx(), 1);  // The RESPONSE's buffer came back.
  EXPECT_EQ(tx_->UsedLen(0), 0u);

  ASSERT_EQ(write(client.get(), "ping", 4), 4);
  HostEvents();
  auto data = NextRx();
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->first.op_code(), Op::kRw);
  EXPECT_EQ(data->first.src_port, host_port);
  EXPECT_EQ(data->first.dst_port, 5000u);
  EXPECT_EQ(data->second, "ping");
  // The buffer popped for the read that found nothing more went back to the ring: the device
  // holds no guest buffer between calls (what a snapshot of the queue state relies on).
  EXPECT_EQ(t_->SaveState().queues[Vsock::kRxQueue].next_avail, rx_->UsedIdx());

  SendTx(FromGuest(Op::kRw, 5000, host_port), "pong");
  EXPECT_EQ(ReadSome(client.get()), "pong");
  EXPECT_EQ(t_->last_error(), "");
}

TEST_F(VsockDeviceTest, HostDataWaitsForRxBuffers) {
  BringUp();
  base::UniqueFd client = HostConnect(5000);
  HostEvents();
  EXPECT_FALSE(NextRx().has_value());  // No buffers yet: nothing lost, nothing sent.
  PostRx(1);
  auto req = NextRx();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->first.op_code(), Op::kRequest);
}

TEST_F(VsockDeviceTest, LargeHostWriteArrivesInOrderAcrossManyBuffers) {
  BringUp();
  PostRx(kQueueSize / 2);  // Two descriptors per buffer: the ring holds eight.
  base::UniqueFd client;
  const uint32_t host_port = Establish(client);
  std::string sent;
  for (int i = 0; i < 40000; ++i) {
    sent.push_back(static_cast<char>('a' + i % 26));
  }
  ASSERT_EQ(write(client.get(), sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));
  std::string got;
  for (int round = 0; round < 50 && got.size() < sent.size(); ++round) {
    HostEvents();
    while (auto p = NextRx()) {
      ASSERT_EQ(p->first.op_code(), Op::kRw);
      ASSERT_EQ(p->first.src_port, host_port);
      EXPECT_LE(p->first.len, kRxPayload);
      got += p->second;
      PostRx(1);  // The driver recycles each buffer.
    }
  }
  EXPECT_EQ(got, sent);
}

TEST_F(VsockDeviceTest, HeaderOnlyRxBufferDoesNotBlockData) {
  BringUp();
  PostRx(1);
  base::UniqueFd client;
  ASSERT_NE(Establish(client), 0u);
  // A buffer with room for a header and nothing else, while data waits.
  rx_->AddChain({{kRxData + 0x1f000, kHeaderSize, true}});
  ASSERT_EQ(write(client.get(), "data", 4), 4);
  HostEvents();
  ASSERT_EQ(rx_->UsedIdx(), seen_rx_ + 1);
  EXPECT_EQ(rx_->UsedLen(seen_rx_), 0u);  // Returned empty, not held.
  ++seen_rx_;
  PostRx(1);
  auto data = NextRx();
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->second, "data");
}

TEST_F(VsockDeviceTest, OversizedTxPacketIsCompletedAndResetsItsConnection) {
  BringUp();
  PostRx(4);
  base::UniqueFd client;
  const uint32_t host_port = Establish(client);
  Header h = FromGuest(Op::kRw, 5000, host_port);
  h.len = kMaxPayload + 1;  // Claims more than any packet may carry.
  const uint64_t addr = kTxData + 0x8000;
  ASSERT_TRUE(mem_->Write(addr, EncodeHeader(h)).ok());
  tx_->AddChain({{addr, kHeaderSize, false}});
  t_->Notify(Vsock::kTxQueue);
  EXPECT_EQ(tx_->UsedIdx(), 2);
  auto rst = NextRx();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->first.op_code(), Op::kRst);
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
}

TEST_F(VsockDeviceTest, MalformedChainsAreReturnedUnused) {
  BringUp();
  // A tx chain too short for a header, and an rx buffer too small for one.
  tx_->AddChain({{kTxData, 10, false}});
  t_->Notify(Vsock::kTxQueue);
  EXPECT_EQ(tx_->UsedIdx(), 1);
  EXPECT_EQ(tx_->UsedLen(0), 0u);
  SendTx(FromGuest(Op::kRw, 1, 2), "x");  // Unknown connection: a RST is due.
  rx_->AddChain({{kRxData, 8, true}});
  t_->Notify(Vsock::kRxQueue);
  EXPECT_EQ(rx_->UsedIdx(), 1);
  EXPECT_EQ(rx_->UsedLen(0), 0u);
  PostRx(1);
  seen_rx_ = 1;
  auto rst = NextRx();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->first.op_code(), Op::kRst);
}

TEST_F(VsockDeviceTest, HostEventsBeforeDriverOkAreDrainedWithoutTouchingQueues) {
  base::UniqueFd client = HostConnect(5000);
  HostEvents();
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");  // Refused: no driver yet.
  EXPECT_EQ(irq_.count, 0);
  EXPECT_EQ(t_->last_error(), "");
}

TEST_F(VsockDeviceTest, TransportResetPostsEventAndClosesHostSockets) {
  BringUp();
  PostRx(4);
  ev_->AddChain({{kEventData, 4, true}});
  t_->Notify(Vsock::kEventQueue);
  EXPECT_EQ(ev_->UsedIdx(), 0);  // Event buffers wait for an event.
  ASSERT_TRUE(mem_->WriteObj<uint32_t>(kEventData, 0xffffffff).ok());
  base::UniqueFd client;
  ASSERT_NE(Establish(client), 0u);
  const int irqs = irq_.count;
  ASSERT_TRUE(t_->WithDevice([](VirtioDevice& d, absl::Span<Queue> queues,
                                const memory::GuestMemory& mem) {
                  return static_cast<Vsock&>(d).ResetTransport(queues, mem);
                }).ok());
  EXPECT_EQ(ev_->UsedIdx(), 1);
  EXPECT_EQ(ev_->UsedLen(0), 4u);
  EXPECT_EQ(*mem_->ReadObj<uint32_t>(kEventData), kEventTransportReset);
  EXPECT_GT(irq_.count, irqs);
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
  EXPECT_EQ(dev_->muxer().num_connections(), 0u);
}

TEST_F(VsockDeviceTest, DriverResetDropsConnections) {
  BringUp();
  PostRx(4);
  base::UniqueFd client;
  ASSERT_NE(Establish(client), 0u);
  W(reg::kStatus, 0);
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
  EXPECT_EQ(dev_->muxer().num_connections(), 0u);
}

}  // namespace
}  // namespace supermachine::devices::virtio::vsock
