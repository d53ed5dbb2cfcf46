// File: tests/unit/guest-agent-init/disks_test.cc
// Tests guest-agent/rootfs/disks.cc against a fake /sys/block.
#include "guest-agent/rootfs/disks.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::agent {
namespace {

using ::supermachine::test_support::TempDir;
using ::supermachine::test_support::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::Pair;

TEST(DisksBySerial, MapsSerialToDevNodeAndSkipsDisksWithoutOne) {
  TempDir sys;
  WriteFileOrDie(sys.Join("vda/serial"), "delta\n");
  WriteFileOrDie(sys.Join("vdb/serial"), std::string("layer0\0\0\0", 9));
  WriteFileOrDie(sys.Join("vdc/serial"), "");
  WriteFileOrDie(sys.Join("loop0/ro"), "0\n");
  EXPECT_THAT(DisksBySerial(sys.path()),
              ElementsAre(Pair("delta", "/dev/vda"), Pair("layer0", "/dev/vdb")));
}

TEST(DisksBySerial, MissingDirectoryGivesNoDisks) {
  EXPECT_TRUE(DisksBySerial("/nonexistent/sys/block").empty());
}

}  // namespace
}  // namespace supermachine::agent
