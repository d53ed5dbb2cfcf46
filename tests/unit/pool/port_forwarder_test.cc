// File: port_forwarder_test.cc
// PortForwarder against a local TCP echo peer standing in for the guest: bytes go both ways,
// many connections at once (without a thread each), half-close, both directions at once
// under backpressure, resets and closes passed on, a bounded connect, destruction resets
// what is open and drops queued connects, a port in use is a clear error.
#include "daemon/vm/port_forwarder.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/net.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

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

// Threads of this process now.
int ThreadCount() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) {
    return -1;
  }
  while (const dirent* e = ::readdir(dir)) {
    n += e->d_name[0] != '.';
  }
  ::closedir(dir);
  return n;
}

// A "guest" serving every connection from one thread (so the test itself adds no thread per
// connection): echoes upper-cased bytes, says BYE after the client's half-close.
class EchoHub {
 public:
  EchoHub() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      wake_r_.Reset(p[0]);
      wake_w_.Reset(p[1]);
    }
    thread_ = std::thread([this] { Loop(); });
  }
  ~EchoHub() {
    wake_w_.Reset();  // EOF on the wake pipe ends the loop
    thread_.join();
  }

  PortForwarder::Connector Connector() {
    return [this](absl::Time) -> absl::StatusOr<base::UniqueFd> {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return absl::InternalError("socketpair");
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        pending_.emplace_back(sv[1]);
      }
      (void)!::write(wake_w_.get(), "x", 1);
      return base::UniqueFd(sv[0]);
    };
  }

 private:
  void Loop() {
    std::vector<base::UniqueFd> conns;
    while (true) {
      std::vector<pollfd> fds{{wake_r_.get(), POLLIN, 0}};
      for (const base::UniqueFd& c : conns) {
        fds.push_back({c.get(), POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        continue;
      }
      if (fds[0].revents != 0) {
        char b[64];
        if (::read(wake_r_.get(), b, sizeof(b)) <= 0) {
          return;
        }
        std::lock_guard<std::mutex> lock(mu_);
        for (base::UniqueFd& fd : pending_) {
          conns.push_back(std::move(fd));
        }
        pending_.clear();
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) {
          continue;
        }
        char buf[4096];
        const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          std::transform(buf, buf + n, buf, [](char ch) {
            return static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
          });
          (void)!::send(fds[i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
          continue;
        }
        (void)!::send(fds[i].fd, "BYE", 3, MSG_NOSIGNAL);
        auto it = std::find_if(conns.begin(), conns.end(),
                               [fd = fds[i].fd](const base::UniqueFd& c) { return c.get() == fd; });
        conns.erase(it);
      }
    }
  }

  base::UniqueFd wake_r_;
  base::UniqueFd wake_w_;
  std::mutex mu_;
  std::vector<base::UniqueFd> pending_;
  std::thread thread_;
};

// Reads exactly `n` bytes (or fewer at EOF/error).
std::string ReadN(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r <= 0) {
      break;
    }
    got += static_cast<size_t>(r);
  }
  out.resize(got);
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
      clients.push_back(test_support::ConnectToLoopback((*fwd)->port()));
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
  base::UniqueFd c = test_support::ConnectToLoopback((*fwd)->port());
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
  base::UniqueFd c = test_support::ConnectToLoopback(fwd->forwarder->port());
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
  base::UniqueFd c = test_support::ConnectToLoopback(fwd->forwarder->port());
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
  base::UniqueFd c = test_support::ConnectToLoopback(fwd->forwarder->port());
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
  base::UniqueFd c = test_support::ConnectToLoopback((*fwd)->port());
  ASSERT_TRUE(c);
  EXPECT_EQ(ReadAll(c.get()), "");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_GT(deadline, called);
  EXPECT_LE(deadline - called, PortForwarder::kConnectTimeout);
}

// Issue #9: many concurrent connections through one forwarder, each echoed back, all spliced
// at the same time, without a thread per connection (the old design had one each).
TEST(PortForwarderTest, ManyConcurrentConnectionsDoNotAddAThreadEach) {
  constexpr int kClients = 200;
  EchoHub hub;
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd =
      PortForwarder::Start("127.0.0.1", 0, hub.Connector());
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  const int threads_before = ThreadCount();
  std::vector<base::UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(test_support::ConnectToLoopback((*fwd)->port()));
    ASSERT_TRUE(clients.back()) << "client " << i << ": " << std::strerror(errno);
    // A lost splice fails the read after a generous wait instead of hanging the test.
    timeval tv{.tv_sec = 120, .tv_usec = 0};
    ::setsockopt(clients.back().get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  for (int i = 0; i < kClients; ++i) {
    const std::string msg = "client " + std::to_string(i);
    ASSERT_EQ(::write(clients[i].get(), msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  }
  for (int i = 0; i < kClients; ++i) {
    const std::string want = "CLIENT " + std::to_string(i);
    ASSERT_EQ(ReadN(clients[i].get(), want.size()), want) << "client " << i;
  }
  // Every connection is spliced now. Only the connect pool may have grown.
  const int threads_during = ThreadCount();
  EXPECT_LE(threads_during - threads_before, static_cast<int>(PortForwarder::kMaxConnectThreads))
      << threads_before << " threads before, " << threads_during << " with " << kClients
      << " connections";
  for (int i = 0; i < kClients; ++i) {
    ::shutdown(clients[i].get(), SHUT_WR);
  }
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(ReadAll(clients[i].get()), "BYE") << "client " << i;
  }
}

// Destroying the forwarder ends what is open at once: the client gets a reset (its answer
// was cut) and the guest connection is closed.
TEST(PortForwarderTest, DestructionResetsOpenConnections) {
  absl::StatusOr<ForwardToOneGuest> fwd = StartForwardToOneGuest();
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  base::UniqueFd c = test_support::ConnectToLoopback(fwd->forwarder->port());
  ASSERT_TRUE(c);
  timeval tv{.tv_sec = 60, .tv_usec = 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(::write(c.get(), "x", 1), 1);
  char byte = 0;
  ASSERT_EQ(::read(fwd->guest.get(), &byte, 1), 1);  // the splice is up
  fwd->forwarder.reset();
  errno = 0;
  EXPECT_EQ(::read(c.get(), &byte, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  pollfd p{.fd = fwd->guest.get(), .events = POLLIN, .revents = 0};
  ASSERT_EQ(::poll(&p, 1, 60'000), 1);
  EXPECT_NE(p.revents & POLLHUP, 0) << "guest connection still open (revents " << p.revents << ")";
}

// Connector calls are bounded (kMaxConnectThreads at once); destruction waits for the ones
// running (a connector cannot be interrupted) and never starts the ones still queued.
TEST(PortForwarderTest, DestructionWaitsForRunningConnectsAndDropsQueuedOnes) {
  constexpr int kMax = static_cast<int>(PortForwarder::kMaxConnectThreads);
  constexpr int kClients = kMax + 4;
  absl::Notification release;
  std::mutex mu;
  int running = 0;
  int most_running = 0;
  int calls = 0;
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = PortForwarder::Start(
      "127.0.0.1", 0, [&](absl::Time deadline) -> absl::StatusOr<base::UniqueFd> {
        {
          std::lock_guard<std::mutex> lock(mu);
          ++calls;
          most_running = std::max(most_running, ++running);
        }
        release.WaitForNotificationWithDeadline(deadline);
        std::lock_guard<std::mutex> lock(mu);
        --running;
        return absl::UnavailableError("guest never answered");
      });
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  std::vector<base::UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(test_support::ConnectToLoopback((*fwd)->port()));
    ASSERT_TRUE(clients.back());
  }
  // Wait (bounded) until the pool is full.
  for (int i = 0; i < 60'000; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (running == kMax) {
        break;
      }
    }
    ::usleep(1000);
  }
  timeval tv{.tv_sec = 60, .tv_usec = 0};
  ::setsockopt(clients[0].get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::thread destroy([&] { fwd->reset(); });
  // A client's reset shows destruction is under way (the forwarder stops its pool first);
  // only then may the running connects return, so a queued one would start if it could.
  char byte;
  errno = 0;
  EXPECT_EQ(::read(clients[0].get(), &byte, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  release.Notify();
  destroy.join();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(most_running, kMax);
  EXPECT_EQ(running, 0);
  EXPECT_LE(calls, kMax) << "a connect queued behind a full pool ran after destruction began";
  for (int i = 1; i < kClients; ++i) {
    EXPECT_LE(::read(clients[i].get(), &byte, 1), 0) << "client " << i << " left open";
  }
}

TEST(PortForwarderTest, BadAddressIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<PortForwarder>> fwd =
      PortForwarder::Start("localhost:x", 0, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(fwd.status()));
}

}  // namespace
}  // namespace supermachine::vm
