// File: passt_test.cc
// The real passt (Debian package) through StartPasst: it answers the guest's ARP for the
// gateway with its own MAC, and exits when our end of the socketpair closes.
#include "worker/net/passt.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/unit/net/test_frames.h"

namespace supermachine::net {
namespace {

bool HavePasst() { return access("/usr/bin/passt", X_OK) == 0; }

TEST(PasstTest, ArgvHasTheGuestAddressing) {
  const std::vector<std::string> argv = PasstArgv({}, 7);
  const std::string joined = [&] {
    std::string s;
    for (const auto& a : argv) {
      s += a + " ";
    }
    return s;
  }();
  EXPECT_NE(joined.find("--fd 7 "), std::string::npos);
  EXPECT_NE(joined.find("--foreground"), std::string::npos);
  EXPECT_NE(joined.find("--address 10.0.2.15 "), std::string::npos);
  EXPECT_NE(joined.find("--gateway 10.0.2.2 "), std::string::npos);
  EXPECT_NE(joined.find("--dns-forward 10.0.2.3 "), std::string::npos);
}

TEST(PasstTest, AnswersArpAndExitsWithUs) {
  if (!HavePasst()) {
    FAIL() << "passt is not installed: apt-get install passt (deploy/packages.txt lists it)";
  }
  absl::StatusOr<PasstBackend> b = StartPasst({});
  ASSERT_TRUE(b.ok()) << b.status();
  // ARP who-has 10.0.2.2 tell 10.0.2.15.
  std::vector<uint8_t> arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  arp.insert(arp.end(), testing::kGuestMac, testing::kGuestMac + 6);
  arp.insert(arp.end(), {0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1});
  arp.insert(arp.end(), testing::kGuestMac, testing::kGuestMac + 6);
  arp.insert(arp.end(), {10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2});
  ASSERT_TRUE(b->stream->Send(arp));
  b->stream->Flush();
  std::optional<absl::Span<const uint8_t>> reply;
  for (int i = 0; i < 50 && !reply.has_value() && !b->stream->closed(); ++i) {
    pollfd p{.fd = b->stream->fd(), .events = POLLIN, .revents = 0};
    poll(&p, 1, 100);
    reply = b->stream->NextFrame();
  }
  if (!reply.has_value() && b->process->TryWait().has_value()) {
    FAIL() << "passt exited without answering: this host has no routable interface for it "
              "(passt needs one; add e.g. a dummy interface with a default route)";
  }
  ASSERT_TRUE(reply.has_value());
  ASSERT_GE(reply->size(), 42u);
  EXPECT_EQ((*reply)[21], 2);  // ARP reply
  const Mac passt_mac = *ParseMac(kPasstMac);
  EXPECT_TRUE(std::equal(passt_mac.begin(), passt_mac.end(), reply->begin() + 22));
  EXPECT_TRUE(std::equal(reply->begin() + 28, reply->begin() + 32,
                         std::vector<uint8_t>{10, 0, 2, 2}.begin()));
  b->stream.reset();  // Our end closes: passt (--fd implies --one-off) exits.
  absl::StatusOr<base::ExitStatus> st = b->process->WaitFor(absl::Seconds(5));
  ASSERT_TRUE(st.ok()) << st.status();
}

}  // namespace
}  // namespace supermachine::net
