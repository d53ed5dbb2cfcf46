// File: tests/unit/guest-agent-init/overlay_options_test.cc
// Tests guest-agent/rootfs/overlay_options.cc.
#include "guest-agent/rootfs/overlay_options.h"

#include "gtest/gtest.h"

namespace supermachine::agent {
namespace {

TEST(OverlayMountData, ListsLowersTopFirst) {
  std::string data = OverlayMountData({.lowers_bottom_first = {"/s/layers/0", "/s/layers/1",
                                                               "/s/delta"},
                                       .upper = "/s/rw/upper",
                                       .work = "/s/rw/work"});
  EXPECT_EQ(data,
            "lowerdir=/s/delta:/s/layers/1:/s/layers/0,upperdir=/s/rw/upper,workdir=/s/rw/work");
}

TEST(OverlayMountData, EscapesSeparatorsInPaths) {
  std::string data = OverlayMountData(
      {.lowers_bottom_first = {"/a:b", "/c,d"}, .upper = "/u\\p", .work = "/w"});
  EXPECT_EQ(data, "lowerdir=/c\\,d:/a\\:b,upperdir=/u\\\\p,workdir=/w");
}

TEST(OverlayMountData, EmptyWithoutLowers) {
  EXPECT_EQ(OverlayMountData({.lowers_bottom_first = {}, .upper = "/u", .work = "/w"}), "");
}

TEST(OverlayMountData, EmptyWithoutWorkDir) {
  EXPECT_EQ(OverlayMountData({.lowers_bottom_first = {"/l"}, .upper = "/u", .work = ""}), "");
}

}  // namespace
}  // namespace supermachine::agent
