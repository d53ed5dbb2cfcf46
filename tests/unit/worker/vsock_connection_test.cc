// File: vsock_connection_test.cc
// The vsock connection state machine and credit accounting, against a real socketpair as the
// host socket (no guest memory needed: rx space is a plain buffer).
#include "worker/devices/virtio/vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace supermachine::devices::virtio::vsock {
namespace {

constexpr uint64_t kCid = 3;
constexpr uint32_t kLocal = 1u << 30;
constexpr uint32_t kPeer = 5000;

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    conn_end_ = sv[0];
    host_ = base::UniqueFd(sv[1]);
    rx_.resize(4096);
  }

  // A packet from the guest for our connection.
  Header Guest(Op op, uint32_t len = 0, uint32_t buf_alloc = 256 * 1024, uint32_t fwd = 0) {
    return Header{.src_cid = kCid,
                  .dst_cid = kHostCid,
                  .src_port = kPeer,
                  .dst_port = kLocal,
                  .len = len,
                  .type = kTypeStream,
                  .op = static_cast<uint16_t>(op),
                  .buf_alloc = buf_alloc,
                  .fwd_cnt = fwd};
  }

  std::unique_ptr<Connection> HostInitiated() {
    return Connection::HostInitiated(base::UniqueFd(conn_end_),
                                     ConnKey{.local_port = kLocal, .peer_port = kPeer}, kCid);
  }
  // An established guest-initiated connection whose RESPONSE was already produced.
  std::unique_ptr<Connection> Established(uint32_t guest_buf_alloc = 256 * 1024) {
    auto c = Connection::GuestInitiated(base::UniqueFd(conn_end_),
                                        Guest(Op::kRequest, 0, guest_buf_alloc), kCid);
    std::optional<Header> h = Produce(*c);
    EXPECT_TRUE(h.has_value() && h->op_code() == Op::kResponse);
    return c;
  }

  std::optional<Header> Produce(Connection& c) {
    iovec iov{.iov_base = rx_.data(), .iov_len = rx_.size()};
    return c.ProduceRx(absl::MakeConstSpan(&iov, 1));
  }

  std::string HostRead() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void HostWrite(const std::string& s) {
    ASSERT_EQ(send(host_.get(), s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }

  int conn_end_ = -1;  // Owned by the connection once created.
  base::UniqueFd host_;
  std::vector<uint8_t> rx_;
};

TEST_F(ConnectionTest, HostInitiatedSendsRequestThenWritesOkOnResponse) {
  auto c = HostInitiated();
  EXPECT_EQ(c->state(), Connection::State::kConnecting);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRequest);
  EXPECT_EQ(h->src_cid, kHostCid);
  EXPECT_EQ(h->dst_cid, kCid);
  EXPECT_EQ(h->src_port, kLocal);
  EXPECT_EQ(h->dst_port, kPeer);
  EXPECT_EQ(h->buf_alloc, Connection::kBufAlloc);
  EXPECT_EQ(HostRead(), "");  // Nothing for the client until the guest accepts.
  c->OnGuestPacket(Guest(Op::kResponse), {});
  EXPECT_EQ(c->state(), Connection::State::kEstablished);
  EXPECT_EQ(HostRead(), "OK 1073741824\n");
  EXPECT_EQ(c->fwd_cnt(), 0u);  // Our own line earns the guest no credit.
}

TEST_F(ConnectionTest, GuestRstWhileConnectingClosesWithoutReply) {
  auto c = HostInitiated();
  (void)Produce(*c);
  c->OnGuestPacket(Guest(Op::kRst), {});
  EXPECT_TRUE(c->closed());
  EXPECT_FALSE(c->WantsRx());
  EXPECT_FALSE(Produce(*c).has_value());
}

TEST_F(ConnectionTest, AnythingButResponseWhileConnectingIsReset) {
  auto c = HostInitiated();
  (void)Produce(*c);
  c->OnGuestPacket(Guest(Op::kRw, 3), {reinterpret_cast<const uint8_t*>("abc"), 3});
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRst);
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(HostRead(), "");  // No "OK", no data: the client just sees the socket end.
}

TEST_F(ConnectionTest, GuestDataReachesHostSocketAndCountsAsForwarded) {
  auto c = Established();
  const std::string msg = "hello host";
  c->OnGuestPacket(Guest(Op::kRw, msg.size()),
                   {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()});
  EXPECT_EQ(HostRead(), msg);
  EXPECT_EQ(c->fwd_cnt(), msg.size());
  EXPECT_EQ(c->buffered(), 0u);
  // Too little to bother the guest with a credit update; the host socket has nothing either.
  EXPECT_FALSE(Produce(*c).has_value());
  EXPECT_FALSE(c->WantsRx());
}

TEST_F(ConnectionTest, CreditUpdateOnceEnoughIsForwarded) {
  auto c = Established();
  std::vector<uint8_t> big(Connection::kCreditUpdateThreshold, 'x');
  c->OnGuestPacket(Guest(Op::kRw, big.size()), big);
  EXPECT_EQ(HostRead().size(), big.size());
  ASSERT_TRUE(c->WantsRx());
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kCreditUpdate);
  EXPECT_EQ(h->fwd_cnt, Connection::kCreditUpdateThreshold);
  EXPECT_EQ(h->buf_alloc, Connection::kBufAlloc);
  EXPECT_FALSE(c->WantsRx());
}

TEST_F(ConnectionTest, SlowHostBuffersWithinCreditAndFlushesOnWritable) {
  auto c = Established();
  std::vector<uint8_t> chunk(kMaxPayload, 'y');
  uint64_t sent = 0;
  // A well-behaved guest sends while we advertise room; the host reads nothing meanwhile.
  while (c->OurFreeSpace() >= chunk.size()) {
    c->OnGuestPacket(Guest(Op::kRw, chunk.size()), chunk);
    sent += chunk.size();
    ASSERT_FALSE(c->closed());
  }
  EXPECT_GT(c->buffered(), 0u);
  EXPECT_LE(c->buffered(), Connection::kBufAlloc);
  EXPECT_EQ(c->fwd_cnt() + c->buffered(), sent);
  // The host drains its socket, then we hear it is writable.
  uint64_t read_total = 0;
  while (read_total < sent) {
    read_total += HostRead().size();
    c->OnHostEvents(EPOLLOUT);
  }
  EXPECT_EQ(read_total, sent);
  EXPECT_EQ(c->buffered(), 0u);
  EXPECT_EQ(c->fwd_cnt(), sent);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kCreditUpdate);
  EXPECT_EQ(h->fwd_cnt, static_cast<uint32_t>(sent));
}

TEST_F(ConnectionTest, GuestSendingBeyondCreditIsReset) {
  auto c = Established();
  std::vector<uint8_t> chunk(kMaxPayload, 'z');
  bool reset = false;
  // A guest that ignores our credit while the host reads nothing.
  for (int i = 0; i < 64 && !reset; ++i) {
    c->OnGuestPacket(Guest(Op::kRw, chunk.size()), chunk);
    EXPECT_LE(c->buffered(), Connection::kBufAlloc);
    while (std::optional<Header> h = Produce(*c)) {
      reset = reset || h->op_code() == Op::kRst;
    }
  }
  EXPECT_TRUE(reset);
  EXPECT_TRUE(c->closed());
}

TEST_F(ConnectionTest, HostDataIsSentOnlyWithinGuestCredit) {
  auto c = Established(/*guest_buf_alloc=*/100);
  HostWrite(std::string(1000, 'd'));
  c->OnHostEvents(EPOLLIN);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRw);
  EXPECT_EQ(h->len, 100u);
  EXPECT_EQ(rx_[0], 'd');
  EXPECT_EQ(c->PeerCredit(), 0u);
  EXPECT_FALSE(c->WantsRx());  // Out of credit: nothing more until the guest says so.
  // The guest consumed 60 bytes.
  c->OnGuestPacket(Guest(Op::kCreditUpdate, 0, 100, 60), {});
  ASSERT_TRUE(c->WantsRx());
  h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->len, 60u);
}

TEST_F(ConnectionTest, RxDataIsLimitedByTheBufferGiven) {
  auto c = Established();
  HostWrite(std::string(10000, 'e'));
  c->OnHostEvents(EPOLLIN);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->len, rx_.size());
  h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->len, rx_.size());
  h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->len, 10000 - 2 * rx_.size());
  // Socket now empty: the next attempt reads EAGAIN and the connection goes quiet.
  EXPECT_FALSE(Produce(*c).has_value());
  EXPECT_FALSE(c->WantsRx());
}

TEST_F(ConnectionTest, HostHalfCloseSendsShutdownSendAfterTheData) {
  auto c = Established();
  HostWrite("last words");
  shutdown(host_.get(), SHUT_WR);
  c->OnHostEvents(EPOLLIN | EPOLLRDHUP);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRw);
  EXPECT_EQ(std::string(rx_.begin(), rx_.begin() + h->len), "last words");
  h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kShutdown);
  EXPECT_EQ(h->flags, kShutdownSend);
  // The guest may still write to the host.
  c->OnGuestPacket(Guest(Op::kRw, 2), {reinterpret_cast<const uint8_t*>("ok"), 2});
  EXPECT_EQ(HostRead(), "ok");
}

TEST_F(ConnectionTest, HostCloseSendsFullShutdown) {
  auto c = Established();
  host_.Reset();
  c->OnHostEvents(EPOLLIN | EPOLLRDHUP | EPOLLHUP);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kShutdown);
  EXPECT_EQ(h->flags, kShutdownBoth);
  // Linux answers a full shutdown with RST; that ends it.
  c->OnGuestPacket(Guest(Op::kRst), {});
  EXPECT_TRUE(c->closed());
}

TEST_F(ConnectionTest, GuestFullShutdownIsAnsweredWithRstAfterDelivery) {
  auto c = Established();
  c->OnGuestPacket(Guest(Op::kRw, 3), {reinterpret_cast<const uint8_t*>("abc"), 3});
  Header sd = Guest(Op::kShutdown);
  sd.flags = kShutdownBoth;
  c->OnGuestPacket(sd, {});
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRst);
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(HostRead(), "abc");
}

TEST_F(ConnectionTest, GuestHalfCloseGivesHostEofButKeepsTheOtherDirection) {
  auto c = Established();
  Header sd = Guest(Op::kShutdown);
  sd.flags = kShutdownSend;
  c->OnGuestPacket(sd, {});
  char b;
  EXPECT_EQ(recv(host_.get(), &b, 1, MSG_DONTWAIT), 0);  // EOF.
  HostWrite("reply");
  c->OnHostEvents(EPOLLIN);
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRw);
  EXPECT_EQ(h->len, 5u);
  // Data after "I will send no more" is a protocol violation.
  c->OnGuestPacket(Guest(Op::kRw, 1), {reinterpret_cast<const uint8_t*>("x"), 1});
  h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRst);
}

TEST_F(ConnectionTest, CreditRequestIsAnswered) {
  auto c = Established();
  c->OnGuestPacket(Guest(Op::kCreditRequest), {});
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kCreditUpdate);
}

TEST_F(ConnectionTest, RequestOnEstablishedConnectionIsReset) {
  auto c = Established();
  c->OnGuestPacket(Guest(Op::kRequest), {});
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRst);
}

TEST_F(ConnectionTest, HostGoneWhileGuestWritesIsReset) {
  auto c = Established();
  host_.Reset();
  c->OnGuestPacket(Guest(Op::kRw, 3), {reinterpret_cast<const uint8_t*>("abc"), 3});
  std::optional<Header> h = Produce(*c);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->op_code(), Op::kRst);  // EPIPE, not SIGPIPE: we are still here.
}

}  // namespace
}  // namespace supermachine::devices::virtio::vsock
