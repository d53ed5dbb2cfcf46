// File: flatten_stack_test.cc
// Three layers converted to squashfs, read back and stacked with overlayfs rules give exactly
// the image a container runtime would extract: cross-layer deletes, an opaque directory, and
// hard links all hold.
#include <string>
#include <vector>

#include "daemon/layer/converter.h"
#include "daemon/layer/file_tree.h"
#include "daemon/layer/squashfs_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/layer/tar_builder.h"

namespace supermachine::layer {
namespace {

using ::supermachine::layer::testing::Dir;
using ::supermachine::layer::testing::File;
using ::supermachine::layer::testing::HardLink;
using ::supermachine::layer::testing::Symlink;
using ::supermachine::layer::testing::TarCompression;
using ::supermachine::layer::testing::TarEntry;
using ::supermachine::layer::testing::TempDir;
using ::testing::ElementsAre;

absl::StatusOr<FileTree> StackOf(const TempDir& dir,
                                 const std::vector<std::vector<TarEntry>>& layers) {
  std::vector<FileTree> trees;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string tar = dir.Join("l" + std::to_string(i) + ".tar.gz");
    const std::string sqfs = dir.Join("l" + std::to_string(i) + ".sqfs");
    absl::Status written = testing::WriteTar(tar, layers[i], TarCompression::kGzip);
    if (!written.ok()) {
      return written;
    }
    auto stats = ConvertLayer(tar, sqfs, {});
    if (!stats.ok()) {
      return stats.status();
    }
    auto tree = ReadSquashfsTree(sqfs, {});
    if (!tree.ok()) {
      return tree.status();
    }
    trees.push_back(std::move(*tree));
  }
  return FlattenLayers(trees);
}

std::vector<std::vector<TarEntry>> ThreeLayers() {
  return {
      // Base: a small distro.
      {Dir("etc"), File("etc/os-release", "base"), File("etc/motd", "welcome"),
       Dir("opt/app"), File("opt/app/v1.bin", "v1"), File("opt/app/config", "c1"),
       Dir("bin"), File("bin/busybox", "BB", {.perm = 0755}), HardLink("bin/sh", "bin/busybox"),
       Symlink("bin/ash", "busybox"), Dir("var/cache"), File("var/cache/big", "cached")},
      // Update: delete motd and the cache dir, replace the app dir wholesale.
      {File("etc/.wh.motd", ""), File("var/.wh.cache", ""), Dir("opt/app"),
       File("opt/app/.wh..wh..opq", ""), File("opt/app/v2.bin", "v2"),
       File("etc/os-release", "updated")},
      // App layer: hard-linked pair, a file deleted again, a new file in a merged dir.
      {File("usr/lib/libx.so.1", "X", {.perm = 0755}),
       HardLink("usr/lib/libx.so", "usr/lib/libx.so.1"), File("opt/app/.wh.v2.bin", ""),
       File("opt/app/v3.bin", "v3"), File("etc/hostname", "box")},
  };
}

TEST(LayerStack, FlattenedPathsMatchTheExtractedImage) {
  TempDir dir;
  auto flat = StackOf(dir, ThreeLayers());
  ASSERT_TRUE(flat.ok()) << flat.status();
  std::vector<std::string> paths;
  for (const auto& [path, entry] : *flat) {
    paths.push_back(path);
  }
  EXPECT_THAT(paths, ElementsAre("/", "/bin", "/bin/ash", "/bin/busybox", "/bin/sh", "/etc",
                                 "/etc/hostname", "/etc/os-release", "/opt", "/opt/app",
                                 "/opt/app/v3.bin", "/usr", "/usr/lib", "/usr/lib/libx.so",
                                 "/usr/lib/libx.so.1", "/var"))
      << DescribeTree(*flat);
}

TEST(LayerStack, LaterLayerContentWins) {
  TempDir dir;
  auto flat = StackOf(dir, ThreeLayers());
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_EQ(flat->at("/etc/os-release").content, "updated");
  EXPECT_EQ(flat->at("/opt/app/v3.bin").content, "v3");
}

TEST(LayerStack, HardLinksFromBaseAndAppLayersStayLinked) {
  TempDir dir;
  auto flat = StackOf(dir, ThreeLayers());
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_EQ(flat->at("/bin/sh").inode_id, flat->at("/bin/busybox").inode_id);
  EXPECT_EQ(flat->at("/bin/sh").nlink, 2u);
  EXPECT_EQ(flat->at("/usr/lib/libx.so").inode_id, flat->at("/usr/lib/libx.so.1").inode_id);
  EXPECT_EQ(flat->at("/usr/lib/libx.so").nlink, 2u);
  EXPECT_NE(flat->at("/bin/sh").inode_id, flat->at("/usr/lib/libx.so").inode_id);
}

TEST(LayerStack, NoWhiteoutOrOverlayXattrIsVisible) {
  TempDir dir;
  auto flat = StackOf(dir, ThreeLayers());
  ASSERT_TRUE(flat.ok()) << flat.status();
  for (const auto& [path, entry] : *flat) {
    EXPECT_FALSE(entry.IsWhiteout()) << path;
    EXPECT_EQ(entry.xattrs.count("trusted.overlay.opaque"), 0u) << path;
  }
}

}  // namespace
}  // namespace supermachine::layer
