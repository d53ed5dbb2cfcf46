// File: port_forwarder_test.cc
// PortForwarder against a local TCP echo peer standing in for the guest: bytes go both ways,
// many connections at once, half-close, a port in use is a clear error.
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

TEST(PortForwarderTest, BadAddressIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd =
      PortForwarder::Start("localhost:x", 0, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(fwd.status()));
}

}  // namespace
}  // namespace supermachine::vm
