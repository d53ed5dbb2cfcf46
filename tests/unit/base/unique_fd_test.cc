#include "worker/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace supermachine::base {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesOnDestruction) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  { UniqueFd fd(raw); }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFd, MoveTransfersOwnership) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  UniqueFd a(raw);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move): the claim under test.
  EXPECT_EQ(b.get(), raw);
  EXPECT_TRUE(IsOpen(raw));
}

TEST(UniqueFd, ReleaseDoesNotClose) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  { UniqueFd fd(raw); EXPECT_EQ(fd.Release(), raw); }
  EXPECT_TRUE(IsOpen(raw));
  ::close(raw);
}

}  // namespace
}  // namespace supermachine::base
