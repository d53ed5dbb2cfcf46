// File: sd_notify_test.cc
// SdNotify against a real datagram socket, as systemd would hold it: by path and by abstract
// name ('@'), and the refusals.
#include "daemon/service/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "worker/base/unique_fd.h"

namespace supermachine::service {
namespace {

using base::UniqueFd;
using ::testing::HasSubstr;

// Binds a datagram socket at `name` ("@x" abstract, else a path) with a receive timeout.
UniqueFd BindReceiver(const std::string& name) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') {
    addr.sun_path[0] = '\0';
  } else {
    len += 1;
  }
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string Receive(int fd) {
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  return n < 0 ? std::string("recv failed: ") + std::strerror(errno)
               : std::string(buf, static_cast<size_t>(n));
}

TEST(SdNotify, SendsTheStateToAPathSocket) {
  test_support::TempDir dir;
  const std::string path = dir.Join("notify");
  UniqueFd rx = BindReceiver(path);
  ASSERT_TRUE(SdNotify(path, "READY=1\nSTATUS=serving").ok());
  EXPECT_EQ(Receive(rx.get()), "READY=1\nSTATUS=serving");
}

TEST(SdNotify, SendsToAnAbstractSocketNamedWithAt) {
  const std::string name = "@sm-sd-notify-test-" + std::to_string(::getpid());
  UniqueFd rx = BindReceiver(name);
  ASSERT_TRUE(SdNotify(name, "STOPPING=1").ok());
  EXPECT_EQ(Receive(rx.get()), "STOPPING=1");
}

TEST(SdNotify, EmptySocketMeansNoServiceManagerAndIsOk) {
  EXPECT_TRUE(SdNotify("", "READY=1").ok());
}

TEST(SdNotify, RelativeNameIsRefused) {
  absl::Status st = SdNotify("run/notify", "READY=1");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("absolute path or an @abstract name"));
}

TEST(SdNotify, OverlongNameIsRefused) {
  absl::Status st = SdNotify("/" + std::string(200, 'x'), "READY=1");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

TEST(SdNotify, NobodyListeningIsAnError) {
  test_support::TempDir dir;
  absl::Status st = SdNotify(dir.Join("nobody"), "READY=1");
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("NOTIFY_SOCKET"));
}

}  // namespace
}  // namespace supermachine::service
