// File: port_forwarder_test.cc
// PortForwarder against a local TCP echo peer standing in for the guest: bytes go both ways,
// many connections at once, half-close, both directions at once under backpressure, resets
// and closes passed on, a bounded connect, a port in use is a clear error.
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

base::UniqueFd ConnectTcp(uint16_t port) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    return base::UniqueFd();
  }
  return fd;
}

// Echo threads, added from the forwarder's connection threads.
struct EchoThreads {
  std::mutex mu;
  std::vector<std::thread> threads;
  ~EchoThreads() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& t : threads) {
      t.join();
    }
  }
};

// The "guest" end: a socketpair whose far side echoes upper-cased bytes until EOF.
PortForwarder::Connector EchoConnector(EchoThreads* echo) {
  return [echo](absl::Time) -> absl::StatusOr<base::UniqueFd> {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return absl::InternalError("socketpair");
    }
    std::lock_guard<std::mutex> lock(echo->mu);
    echo->threads.emplace_back([fd = sv[1]] {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; ++i) {
          buf[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(buf[i])));
        }
        (void)!::write(fd, buf, static_cast<size_t>(n));
      }
      (void)!::write(fd, "BYE", 3);  // after the client's half-close
      ::close(fd);
    });
    return base::UniqueFd(sv[0]);
  };
}

// A forwarder whose first connection reaches `guest`, the far end of a socketpair the test
// plays the guest on.
struct ForwardToOneGuest {
  base::UniqueFd guest;
  std::unique_ptr<PortForwarder> forwarder;
};
absl::StatusOr<ForwardToOneGuest> StartForwardToOneGuest() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::InternalError("socketpair");
  }
  ForwardToOneGuest out{.guest = base::UniqueFd(sv[1])};
  auto forwarder_end = std::make_shared<base::UniqueFd>(sv[0]);
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = PortForwarder::Start(
      "127.0.0.1", 0, [forwarder_end](absl::Time) -> absl::StatusOr<base::UniqueFd> {
        return std::move(*forwarder_end);
      });
  if (!fwd.ok()) {
    return fwd.status();
  }
  out.forwarder = std::move(*fwd);
  return out;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(PortForwarderTest, SplicesConnectionsBothWaysWithHalfClose) {
  EchoThreads echo_threads;
  {
    absl::StatusOr<std::unique_ptr<PortForwarder>> fwd =
        PortForwarder::Start("127.0.0.1", 0, EchoConnector(&echo_threads));
    ASSERT_TRUE(fwd.ok()) << fwd.status();
    ASSERT_NE((*fwd)->port(), 0);
    std::vector<base::UniqueFd> clients;
    for (int i = 0; i < 5; ++i) {
      clients.push_back(ConnectTcp((*fwd)->port()));
      ASSERT_TRUE(clients.back());
    }
    for (size_t i = 0; i < clients.size(); ++i) {
      std::string msg = "hello " + std::to_string(i);
      ASSERT_EQ(::write(clients[i].get(), msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
      ::shutdown(clients[i].get(), SHUT_WR);
    }
    for (size_t i = 0; i < clients.size(); ++i) {
      EXPECT_EQ(ReadAll(clients[i].get()), "HELLO " + std::to_string(i) + "BYE");
    }
  }
}

TEST(PortForwarderTest, PortInUseIsFailedPreconditionNamingIt) {
  EchoThreads echo_threads;
  absl::StatusOr<std::unique_ptr<PortForwarder>> a =
      PortForwarder::Start("127.0.0.1", 0, EchoConnector(&echo_threads));
  ASSERT_TRUE(a.ok());
  absl::StatusOr<std::unique_ptr<PortForwarder>> b =
      PortForwarder::Start("127.0.0.1", (*a)->port(), EchoConnector(&echo_threads));
  EXPECT_TRUE(absl::IsFailedPrecondition(b.status())) << b.status();
  EXPECT_THAT(b.status().message(), HasSubstr(std::to_string((*a)->port())));
  EXPECT_THAT(b.status().message(), HasSubstr("already in use"));
}

TEST(PortForwarderTest, NoGuestListenerClosesTheClient) {
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = PortForwarder::Start(
      "", 0, [](absl::Time) -> absl::StatusOr<base::UniqueFd> {
        return absl::UnavailableError("nothing listens");
      });
  ASSERT_TRUE(fwd.ok());
  EXPECT_EQ((*fwd)->address(), "127.0.0.1");
  base::UniqueFd c = ConnectTcp((*fwd)->port());
  ASSERT_TRUE(c);
  EXPECT_EQ(ReadAll(c.get()), "");
}

// The "guest" sends a large answer before it reads the client's large request (a server
// streaming while the client uploads). A forward that blocks writing one direction stops
// reading the other and deadlocks against it; both directions must flow independently.
TEST(PortForwarderTest, LargeTransfersBothWaysAtOnceDoNotDeadlock) {
  constexpr size_t kBytes = size_t{8} << 20;
  absl::StatusOr<ForwardToOneGuest> fwd = StartForwardToOneGuest();
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  std::thread guest([fd = std::move(fwd->guest)] {
    const std::string answer(kBytes, 'g');
    size_t off = 0;
    while (off < answer.size()) {
      ssize_t n = ::send(fd.get(), answer.data() + off, answer.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
    const std::string count = std::to_string(ReadAll(fd.get()).size());
    (void)!::write(fd.get(), count.data(), count.size());
  });
  base::UniqueFd c = ConnectTcp(fwd->forwarder->port());
  ASSERT_TRUE(c);
  // A deadlock fails the read after a generous wait instead of hanging the test.
  timeval tv{.tv_sec = 120, .tv_usec = 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string upload(kBytes, 'c');
  std::thread writer([&] {
    size_t off = 0;
    while (off < upload.size()) {
      ssize_t n = ::send(c.get(), upload.data() + off, upload.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
    ::shutdown(c.get(), SHUT_WR);
  });
  const std::string got = ReadAll(c.get());
  ::shutdown(c.get(), SHUT_RDWR);  // wakes the writer if the read gave up
  writer.join();
  fwd->forwarder.reset();  // wakes the guest thread (its connection closes) if the transfer stalled
  guest.join();
  EXPECT_EQ(got.size(), kBytes + std::to_string(kBytes).size());
  EXPECT_EQ(got, std::string(kBytes, 'g') + std::to_string(kBytes));
}

// A client that resets its connection can take nothing more: the guest connection is closed
// (both directions) at once, not left half-open waiting for a guest that may never close.
TEST(PortForwarderTest, ClientResetClosesTheGuestConnection) {
  absl::StatusOr<ForwardToOneGuest> fwd = StartForwardToOneGuest();
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  base::UniqueFd& guest_end = fwd->guest;
  base::UniqueFd c = ConnectTcp(fwd->forwarder->port());
  ASSERT_TRUE(c);
  ASSERT_EQ(::write(c.get(), "x", 1), 1);
  char byte = 0;
  ASSERT_EQ(::read(guest_end.get(), &byte, 1), 1);  // the splice is up
  linger lg{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  c.Reset();  // RST
  pollfd p{.fd = guest_end.get(), .events = POLLIN, .revents = 0};
  ASSERT_EQ(::poll(&p, 1, 60'000), 1);
  EXPECT_NE(p.revents & POLLHUP, 0) << "guest connection still open (revents " << p.revents << ")";
}

// The guest answers and closes; the client sees the answer, then EOF; its connection is then
// closed both ways by the forwarder once the client closes too.
TEST(PortForwarderTest, GuestCloseAfterAnswerEndsTheClientConnection) {
  absl::StatusOr<ForwardToOneGuest> fwd = StartForwardToOneGuest();
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  base::UniqueFd& guest_end = fwd->guest;
  base::UniqueFd c = ConnectTcp(fwd->forwarder->port());
  ASSERT_TRUE(c);
  timeval tv{.tv_sec = 60, .tv_usec = 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(::write(c.get(), "GET", 3), 3);
  char buf[3];
  ASSERT_EQ(::read(guest_end.get(), buf, 3), 3);
  ASSERT_EQ(::write(guest_end.get(), "200", 3), 3);
  guest_end.Reset();
  EXPECT_EQ(ReadAll(c.get()), "200");
}

// The connector is given a deadline: a guest that cannot be reached ends the client's
// connection within a bounded time (PortForwarder::kConnectTimeout).
TEST(PortForwarderTest, ConnectorGetsTheBoundedConnectDeadline) {
  std::mutex mu;
  absl::Time deadline = absl::InfinitePast();
  absl::Time called = absl::InfinitePast();
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = PortForwarder::Start(
      "127.0.0.1", 0, [&](absl::Time d) -> absl::StatusOr<base::UniqueFd> {
        std::lock_guard<std::mutex> lock(mu);
        deadline = d;
        called = absl::Now();
        return absl::DeadlineExceededError("guest did not answer");
      });
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  base::UniqueFd c = ConnectTcp((*fwd)->port());
  ASSERT_TRUE(c);
  EXPECT_EQ(ReadAll(c.get()), "");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_GT(deadline, called);
  EXPECT_LE(deadline - called, PortForwarder::kConnectTimeout);
}

TEST(PortForwarderTest, BadAddressIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd =
      PortForwarder::Start("localhost:x", 0, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(fwd.status()));
}

}  // namespace
}  // namespace supermachine::vm
