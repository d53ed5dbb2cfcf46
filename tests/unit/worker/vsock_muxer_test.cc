// File: vsock_muxer_test.cc
// The hybrid-vsock muxer against real Unix sockets in a temp dir: the CONNECT handshake,
// refusals, guest-initiated connects to "<path>_P", RST for unknown connections, timeouts.
#include "worker/devices/virtio/vsock/muxer.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::devices::virtio::vsock {
namespace {

constexpr uint64_t kCid = 3;

base::UniqueFd UnixConnect(const std::string& path) {
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::UniqueFd();
  }
  return fd;
}

base::UniqueFd UnixListen(const std::string& path) {
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd.get(), 4), 0);
  return fd;
}

// Reads what is there within `ms`: "" on timeout, "<EOF>" at end of stream, "<RESET>" when
// the muxer closed the socket with our bytes unread (AF_UNIX reports ECONNRESET then).
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
  if (n < 0 && errno == ECONNRESET) {
    return "<RESET>";
  }
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

class MuxerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Join("v.sock");
    auto m = Muxer::Create({.uds_path = path_,
                            .guest_cid = kCid,
                            .connect_timeout = std::chrono::milliseconds(300),
                            .close_timeout = std::chrono::milliseconds(300)});
    ASSERT_TRUE(m.ok()) << m.status();
    mux_ = *std::move(m);
    mux_->set_guest_ready(true);
  }

  // Lets the muxer see host events (readiness is immediate for local sockets).
  void Pump() {
    pollfd p{.fd = mux_->epoll_fd(), .events = POLLIN, .revents = 0};
    poll(&p, 1, 100);
    mux_->ProcessHostEvents();
  }

  std::optional<Header> Produce() {
    iovec iov{.iov_base = rx_, .iov_len = sizeof(rx_)};
    return mux_->ProduceRx(absl::MakeConstSpan(&iov, 1));
  }

  // Pumps host events (up to 100 ms each) until the muxer has a packet for the guest, for up to
  // 20 rounds: what a timer-driven packet (the close-timeout sweep's RST) takes to appear.
  std::optional<Header> PumpUntilAPacket() {
    std::optional<Header> h;
    for (int i = 0; i < 20 && !h.has_value(); ++i) {
      Pump();
      h = Produce();
    }
    return h;
  }

  Header FromGuest(Op op, uint32_t src_port, uint32_t dst_port) {
    return Header{.src_cid = kCid,
                  .dst_cid = kHostCid,
                  .src_port = src_port,
                  .dst_port = dst_port,
                  .type = kTypeStream,
                  .op = static_cast<uint16_t>(op),
                  .buf_alloc = 65536};
  }

  // Host client: CONNECT to `port`; returns the REQUEST the guest would see.
  std::optional<Header> HostConnect(base::UniqueFd& client, uint32_t port,
                                    const std::string& extra = "") {
    client = UnixConnect(path_);
    EXPECT_TRUE(client.valid());
    const std::string line = "CONNECT " + std::to_string(port) + "\n" + extra;
    EXPECT_EQ(write(client.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
    Pump();
    return Produce();
  }

  test_support::TempDir dir_;
  std::string path_;
  std::unique_ptr<Muxer> mux_;
  uint8_t rx_[4096];
};

TEST(ParseConnectLineTest, AcceptsOnlyConnectAndADecimalPort) {
  EXPECT_EQ(ParseConnectLine("CONNECT 5000"), 5000u);
  EXPECT_EQ(ParseConnectLine("CONNECT 0"), 0u);
  EXPECT_EQ(ParseConnectLine("CONNECT 4294967295"), 4294967295u);
  EXPECT_EQ(ParseConnectLine("CONNECT 5000\r"), 5000u);
  EXPECT_FALSE(ParseConnectLine("CONNECT 4294967296").has_value());
  EXPECT_FALSE(ParseConnectLine("CONNECT -1").has_value());
  EXPECT_FALSE(ParseConnectLine("CONNECT +5").has_value());
  EXPECT_FALSE(ParseConnectLine("CONNECT ").has_value());
  EXPECT_FALSE(ParseConnectLine("connect 5000").has_value());
  EXPECT_FALSE(ParseConnectLine("CONNECT 50 00").has_value());
  EXPECT_FALSE(ParseConnectLine("HELLO").has_value());
}

TEST_F(MuxerTest, ConnectHandshakeRequestsTheGuestPortAndRepliesOk) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000, "early data");
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->op_code(), Op::kRequest);
  EXPECT_EQ(req->dst_cid, kCid);
  EXPECT_EQ(req->dst_port, 5000u);
  EXPECT_GE(req->src_port, 1u << 30);
  EXPECT_EQ(ReadSome(client.get(), 50), "");  // No reply before the guest accepts.
  mux_->HandleGuestPacket(FromGuest(Op::kResponse, 5000, req->src_port), {});
  EXPECT_EQ(ReadSome(client.get()), "OK " + std::to_string(req->src_port) + "\n");
  // Bytes the client wrote right after its CONNECT line are stream data, not lost.
  std::optional<Header> data = Produce();
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->op_code(), Op::kRw);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(rx_), data->len), "early data");
  // Guest → host.
  mux_->HandleGuestPacket(
      [&] {
        Header h = FromGuest(Op::kRw, 5000, req->src_port);
        h.len = 2;
        return h;
      }(),
      {reinterpret_cast<const uint8_t*>("hi"), 2});
  EXPECT_EQ(ReadSome(client.get()), "hi");
  EXPECT_EQ(mux_->num_connections(), 1u);
}

TEST_F(MuxerTest, EachHostConnectionGetsItsOwnPort) {
  base::UniqueFd a, b;
  std::optional<Header> ra = HostConnect(a, 5000);
  std::optional<Header> rb = HostConnect(b, 5000);
  ASSERT_TRUE(ra.has_value() && rb.has_value());
  EXPECT_NE(ra->src_port, rb->src_port);
  EXPECT_EQ(mux_->num_connections(), 2u);
}

TEST_F(MuxerTest, HostPortsStartAtTheGivenFirstPort) {
  // What a restored worker does (VsockDeviceState.next_host_port): its ports continue after the
  // snapshotted worker's, never reusing a port pair a stale guest socket may still hold.
  const uint32_t first = kFirstHostPort + 1000;
  auto m = Muxer::Create({.uds_path = dir_.Join("w.sock"), .guest_cid = kCid,
                          .first_host_port = first});
  ASSERT_TRUE(m.ok()) << m.status();
  mux_ = *std::move(m);
  path_ = dir_.Join("w.sock");
  mux_->set_guest_ready(true);
  EXPECT_EQ(mux_->next_host_port(), first);
  base::UniqueFd a, b;
  std::optional<Header> ra = HostConnect(a, 5000);
  std::optional<Header> rb = HostConnect(b, 5000);
  ASSERT_TRUE(ra.has_value() && rb.has_value());
  EXPECT_EQ(ra->src_port, first);
  EXPECT_EQ(rb->src_port, first + 1);
  EXPECT_EQ(mux_->next_host_port(), first + 2);
}

TEST_F(MuxerTest, AFirstHostPortInTheGuestRangeIsRefused) {
  auto m = Muxer::Create({.uds_path = dir_.Join("w.sock"), .guest_cid = kCid,
                          .first_host_port = kFirstHostPort - 1});
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("first host port"), absl::string_view::npos)
      << m.status();
}

TEST_F(MuxerTest, GuestRefusalClosesTheClientWithoutReply) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5999);
  ASSERT_TRUE(req.has_value());
  mux_->HandleGuestPacket(FromGuest(Op::kRst, 5999, req->src_port), {});
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
  EXPECT_EQ(mux_->num_connections(), 0u);
  EXPECT_FALSE(mux_->HasRx());  // A RST is never answered.
}

TEST_F(MuxerTest, MalformedConnectLineIsClosed) {
  base::UniqueFd client = UnixConnect(path_);
  ASSERT_EQ(write(client.get(), "HELLO 1\n", 8), 8);
  Pump();
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
  EXPECT_FALSE(mux_->HasRx());
  EXPECT_EQ(mux_->num_pending_handshakes(), 0u);
}

TEST_F(MuxerTest, OverlongLineWithoutNewlineIsClosed) {
  base::UniqueFd client = UnixConnect(path_);
  const std::string junk(Muxer::kMaxConnectLine + 5, 'A');
  ASSERT_EQ(write(client.get(), junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  Pump();
  EXPECT_EQ(ReadSome(client.get()), "<RESET>");
  EXPECT_EQ(mux_->num_pending_handshakes(), 0u);
}

TEST_F(MuxerTest, LineSplitAcrossWritesIsAssembled) {
  base::UniqueFd client = UnixConnect(path_);
  ASSERT_EQ(write(client.get(), "CONN", 4), 4);
  Pump();
  EXPECT_FALSE(mux_->HasRx());
  ASSERT_EQ(write(client.get(), "ECT 77\n", 7), 7);
  Pump();
  std::optional<Header> req = Produce();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->dst_port, 77u);
}

TEST_F(MuxerTest, ConnectWhileGuestDriverIsDownIsClosed) {
  mux_->set_guest_ready(false);
  base::UniqueFd client;
  EXPECT_FALSE(HostConnect(client, 5000).has_value());
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
}

TEST_F(MuxerTest, UnansweredConnectTimesOutWithEofAndRst) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000);
  ASSERT_TRUE(req.has_value());
  // No RESPONSE: after connect_timeout (300 ms) the timer sweep gives up.
  std::string got;
  for (int i = 0; i < 20 && got.empty(); ++i) {
    Pump();
    got = ReadSome(client.get(), 50);
  }
  EXPECT_EQ(got, "<EOF>");
  std::optional<Header> rst = Produce();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
  EXPECT_EQ(rst->dst_port, 5000u);
  EXPECT_EQ(mux_->num_connections(), 0u);
}

TEST_F(MuxerTest, GuestThatNeverClosesAfterHostCloseIsReset) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000);
  ASSERT_TRUE(req.has_value());
  mux_->HandleGuestPacket(FromGuest(Op::kResponse, 5000, req->src_port), {});
  EXPECT_EQ(ReadSome(client.get()).substr(0, 3), "OK ");
  client.Reset();
  Pump();
  std::optional<Header> sd = Produce();
  ASSERT_TRUE(sd.has_value());
  EXPECT_EQ(sd->op_code(), Op::kShutdown);
  EXPECT_EQ(sd->flags, kShutdownBoth);
  EXPECT_EQ(mux_->num_connections(), 1u);
  // The guest ignores it; after close_timeout (300 ms) the sweep resets the connection.
  std::optional<Header> rst = PumpUntilAPacket();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
  EXPECT_EQ(mux_->num_connections(), 0u);
}

// A guest that gives no credit (its reader is stuck) cannot even be sent the EOF: the host
// client's full close must still bound the connection, or it and the guest socket stay open
// forever with nobody on the host side (issue #9).
TEST_F(MuxerTest, HostCloseWhileTheGuestGivesNoCreditIsResetAfterTheCloseTimeout) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000);
  ASSERT_TRUE(req.has_value());
  Header resp = FromGuest(Op::kResponse, 5000, req->src_port);
  resp.buf_alloc = 0;
  mux_->HandleGuestPacket(resp, {});
  EXPECT_EQ(ReadSome(client.get()).substr(0, 3), "OK ");
  ASSERT_EQ(write(client.get(), "unsent", 6), 6);
  client.Reset();
  std::optional<Header> rst = PumpUntilAPacket();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
  EXPECT_EQ(mux_->num_connections(), 0u);
}

// The close timeout bounds a guest that stops taking data, not a slow one: every packet the
// guest takes after the host closed restarts it.
TEST_F(MuxerTest, DataDeliveredAfterHostCloseRestartsTheCloseTimeout) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000);
  ASSERT_TRUE(req.has_value());
  Header resp = FromGuest(Op::kResponse, 5000, req->src_port);
  resp.buf_alloc = 1 << 20;  // credit for all of it
  mux_->HandleGuestPacket(resp, {});
  EXPECT_EQ(ReadSome(client.get()).substr(0, 3), "OK ");
  const std::string tail(size_t{64} * 1024, 'x');  // 16 rx buffers of 4 KiB
  ASSERT_EQ(write(client.get(), tail.data(), tail.size()), static_cast<ssize_t>(tail.size()));
  client.Reset();
  Pump();
  // One buffer every 50 ms or more: 0.8 s at least, far past close_timeout (300 ms).
  size_t delivered = 0;
  for (int i = 0; i < 16; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Pump();
    std::optional<Header> h = Produce();
    ASSERT_TRUE(h.has_value()) << "after " << delivered << " bytes";
    ASSERT_EQ(h->op_code(), Op::kRw) << "after " << delivered << " bytes";
    delivered += h->len;
  }
  EXPECT_EQ(delivered, tail.size());
  std::optional<Header> sd = Produce();
  ASSERT_TRUE(sd.has_value());
  EXPECT_EQ(sd->op_code(), Op::kShutdown);
}

TEST_F(MuxerTest, GuestConnectReachesPathUnderscorePort) {
  base::UniqueFd listener = UnixListen(path_ + "_6000");
  mux_->HandleGuestPacket(FromGuest(Op::kRequest, 1025, 6000), {});
  std::optional<Header> resp = Produce();
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->op_code(), Op::kResponse);
  EXPECT_EQ(resp->src_port, 6000u);
  EXPECT_EQ(resp->dst_port, 1025u);
  base::UniqueFd server(accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(server.valid());
  ASSERT_EQ(write(server.get(), "pong", 4), 4);
  Pump();
  std::optional<Header> data = Produce();
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->op_code(), Op::kRw);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(rx_), data->len), "pong");
}

TEST_F(MuxerTest, GuestConnectWithNobodyListeningIsReset) {
  mux_->HandleGuestPacket(FromGuest(Op::kRequest, 1025, 6001), {});
  std::optional<Header> rst = Produce();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
  EXPECT_EQ(rst->dst_port, 1025u);
  EXPECT_EQ(mux_->num_connections(), 0u);
}

TEST_F(MuxerTest, PacketsForUnknownConnectionsAreReset) {
  mux_->HandleGuestPacket(FromGuest(Op::kRw, 1, 2), {});
  std::optional<Header> rst = Produce();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
  mux_->HandleGuestPacket(FromGuest(Op::kRst, 1, 2), {});
  EXPECT_FALSE(mux_->HasRx());
}

TEST_F(MuxerTest, SpoofedSourceCidIsIgnoredAndOtherDestinationsAreReset) {
  Header spoofed = FromGuest(Op::kRequest, 1, 2);
  spoofed.src_cid = 99;
  mux_->HandleGuestPacket(spoofed, {});
  EXPECT_FALSE(mux_->HasRx());
  Header elsewhere = FromGuest(Op::kRequest, 1, 2);
  elsewhere.dst_cid = 7;
  mux_->HandleGuestPacket(elsewhere, {});
  std::optional<Header> rst = Produce();
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->op_code(), Op::kRst);
}

TEST_F(MuxerTest, RstFloodIsBounded) {
  for (size_t i = 0; i < Muxer::kMaxPendingRst; ++i) {
    ASSERT_TRUE(mux_->CanTakeGuestPacket());
    mux_->HandleGuestPacket(FromGuest(Op::kRw, static_cast<uint32_t>(i), 2), {});
  }
  EXPECT_FALSE(mux_->CanTakeGuestPacket());  // The device stops taking tx packets.
  (void)Produce();
  EXPECT_TRUE(mux_->CanTakeGuestPacket());
}

TEST_F(MuxerTest, DropAllConnectionsClosesHostSockets) {
  base::UniqueFd client;
  std::optional<Header> req = HostConnect(client, 5000);
  ASSERT_TRUE(req.has_value());
  mux_->HandleGuestPacket(FromGuest(Op::kResponse, 5000, req->src_port), {});
  EXPECT_EQ(ReadSome(client.get()).substr(0, 3), "OK ");
  mux_->DropAllConnections();
  EXPECT_EQ(ReadSome(client.get()), "<EOF>");
  EXPECT_EQ(mux_->num_connections(), 0u);
  EXPECT_FALSE(mux_->HasRx());
}

TEST_F(MuxerTest, RoundRobinAcrossConnections) {
  base::UniqueFd a, b;
  std::optional<Header> ra = HostConnect(a, 1);
  std::optional<Header> rb = HostConnect(b, 2);
  ASSERT_TRUE(ra && rb);
  mux_->HandleGuestPacket(FromGuest(Op::kResponse, 1, ra->src_port), {});
  mux_->HandleGuestPacket(FromGuest(Op::kResponse, 2, rb->src_port), {});
  (void)ReadSome(a.get());
  (void)ReadSome(b.get());
  const std::string lots(3 * sizeof(rx_), 'x');
  ASSERT_EQ(write(a.get(), lots.data(), lots.size()), static_cast<ssize_t>(lots.size()));
  ASSERT_EQ(write(b.get(), lots.data(), lots.size()), static_cast<ssize_t>(lots.size()));
  Pump();
  std::vector<uint32_t> order;
  for (int i = 0; i < 4; ++i) {
    std::optional<Header> h = Produce();
    ASSERT_TRUE(h.has_value());
    order.push_back(h->dst_port);
  }
  EXPECT_EQ(order, (std::vector<uint32_t>{1, 2, 1, 2}));
}

TEST_F(MuxerTest, ReplacesAStaleSocketButNotAFile) {
  mux_.reset();  // Unlinks its socket.
  base::UniqueFd stale = UnixListen(path_);
  stale.Reset();  // A socket file nobody listens on any more.
  EXPECT_TRUE(Muxer::Create({.uds_path = path_, .guest_cid = kCid}).ok());
  const std::string file = dir_.Join("plain");
  test_support::WriteFileOrDie(file, "x");
  absl::StatusOr<std::unique_ptr<Muxer>> m = Muxer::Create({.uds_path = file, .guest_cid = kCid});
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not a socket"), std::string::npos) << m.status();
}

}  // namespace
}  // namespace supermachine::devices::virtio::vsock
