// File: dialer_test.cc
// HybridVsockDialer against a fake worker endpoint: the CONNECT handshake, refusal, silence,
// garbage, and not consuming the guest's first bytes; UnixDialer and ConnectUnix on a missing
// or overlong socket path.
#include "daemon/agent/dialer.h"

#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::testing::HasSubstr;
using testing::FakeAgent;

FakeAgent::Options Hybrid(std::string reply) {
  return {.hybrid = true, .handshake_reply = std::move(reply), .raw = true};
}

void NoHandler(int, const v1::Request&) {}

TEST(HybridVsockDialer, SendsConnectWithThePortAndKeepsBytesAfterTheReply) {
  TempDir dir;
  FakeAgent fake(dir.Join("v.sock"), NoHandler, Hybrid("OK 1073741824\nguest-bytes"));
  HybridVsockDialer dialer(dir.Join("v.sock"), 1024);

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(10));

  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(fake.last_connect_port(), 1024);
  std::string got(64, '\0');
  ssize_t n = 0;
  while (n <= 0) {  // The fd is non-blocking; the bytes may still be in flight.
    n = read(fd->get(), got.data(), got.size());
  }
  got.resize(static_cast<size_t>(n));
  EXPECT_EQ(got, "guest-bytes");
}

TEST(HybridVsockDialer, ClosedAfterConnectIsUnavailableNamingThePort) {
  TempDir dir;
  FakeAgent fake(dir.Join("v.sock"), NoHandler, Hybrid(""));
  HybridVsockDialer dialer(dir.Join("v.sock"), 1024);

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(10));

  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
  EXPECT_THAT(fd.status().message(), HasSubstr("guest port 1024"));
}

TEST(HybridVsockDialer, GarbageReplyIsInternalAndQuotesIt) {
  TempDir dir;
  FakeAgent fake(dir.Join("v.sock"), NoHandler, Hybrid("HTTP/1.1 400 Bad\n"));
  HybridVsockDialer dialer(dir.Join("v.sock"), 1024);

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(10));

  EXPECT_TRUE(absl::IsInternal(fd.status())) << fd.status();
  EXPECT_THAT(fd.status().message(), HasSubstr("'HTTP/1.1 400 Bad\\n'"));
}

TEST(HybridVsockDialer, EndlessReplyWithoutNewlineIsInternal) {
  TempDir dir;
  FakeAgent fake(dir.Join("v.sock"), NoHandler, Hybrid(std::string(200, 'A')));
  HybridVsockDialer dialer(dir.Join("v.sock"), 1024);

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(10));

  EXPECT_TRUE(absl::IsInternal(fd.status())) << fd.status();
}

TEST(HybridVsockDialer, SilentEndpointHitsTheDeadline) {
  TempDir dir;
  FakeAgent::Options options = Hybrid("");
  options.handshake_silent = true;
  FakeAgent fake(dir.Join("v.sock"), NoHandler, options);
  HybridVsockDialer dialer(dir.Join("v.sock"), 1024);
  const absl::Time start = absl::Now();

  auto fd = dialer.Dial(start + absl::Milliseconds(200));

  EXPECT_TRUE(absl::IsDeadlineExceeded(fd.status())) << fd.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(HybridVsockDialer, MissingSocketIsUnavailableAskingForVsock) {
  TempDir dir;
  HybridVsockDialer dialer(dir.Join("absent.sock"), 1024);

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(1));

  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
  EXPECT_THAT(fd.status().message(), HasSubstr("absent.sock"));
  EXPECT_THAT(fd.status().message(), HasSubstr("--vsock"));
}

// ConnectUnix dials other sockets too (the worker's control socket): no --vsock hint there.
TEST(ConnectUnix, MissingSocketIsUnavailableNamingOnlyThePath) {
  TempDir dir;

  auto fd = ConnectUnix(dir.Join("control"), absl::Now() + absl::Seconds(1));

  EXPECT_TRUE(absl::IsUnavailable(fd.status())) << fd.status();
  EXPECT_THAT(fd.status().message(), HasSubstr(dir.Join("control")));
  EXPECT_THAT(fd.status().message(), ::testing::Not(HasSubstr("--vsock")));
}

TEST(UnixDialer, OverlongPathIsInvalidArgument) {
  UnixDialer dialer("/tmp/" + std::string(200, 'x'));

  auto fd = dialer.Dial(absl::Now() + absl::Seconds(1));

  EXPECT_TRUE(absl::IsInvalidArgument(fd.status())) << fd.status();
}

}  // namespace
}  // namespace supermachine::agent
