// File: file_tree_test.cc
// FlattenLayers on hand-built trees: each overlayfs rule on its own.
#include "daemon/layer/file_tree.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::layer {
namespace {

FileEntry DirEntry() { return FileEntry{.type = FileType::kDirectory, .permissions = 0755}; }
FileEntry FileWith(std::string content) {
  return FileEntry{.type = FileType::kRegular, .permissions = 0644, .size = content.size(),
                   .content_read = true, .content = content};
}
FileEntry Whiteout() { return FileEntry{.type = FileType::kCharDevice}; }
FileEntry OpaqueDir() {
  FileEntry e = DirEntry();
  e.xattrs["trusted.overlay.opaque"] = "y";
  return e;
}

std::vector<std::string> Paths(const FileTree& tree) {
  std::vector<std::string> paths;
  for (const auto& [path, entry] : tree) {
    paths.push_back(path);
  }
  return paths;
}

TEST(FlattenLayers, UpperFileReplacesLowerFile) {
  FileTree lower{{"/", DirEntry()}, {"/f", FileWith("old")}};
  FileTree upper{{"/", DirEntry()}, {"/f", FileWith("new")}};
  FileTree flat = FlattenLayers({lower, upper});
  EXPECT_EQ(flat.at("/f").content, "new");
}

TEST(FlattenLayers, WhiteoutDeletesLowerSubtreeAndIsNotShown) {
  FileTree lower{{"/", DirEntry()}, {"/d", DirEntry()}, {"/d/x", FileWith("x")},
                 {"/keep", FileWith("k")}};
  FileTree upper{{"/", DirEntry()}, {"/d", Whiteout()}};
  EXPECT_THAT(Paths(FlattenLayers({lower, upper})), ::testing::ElementsAre("/", "/keep"));
}

TEST(FlattenLayers, DirectoriesMerge) {
  FileTree lower{{"/", DirEntry()}, {"/d", DirEntry()}, {"/d/a", FileWith("a")}};
  FileTree upper{{"/", DirEntry()}, {"/d", DirEntry()}, {"/d/b", FileWith("b")}};
  EXPECT_THAT(Paths(FlattenLayers({lower, upper})),
              ::testing::ElementsAre("/", "/d", "/d/a", "/d/b"));
}

TEST(FlattenLayers, OpaqueDirectoryHidesLowerContentsAndLosesTheXattr) {
  FileTree lower{{"/", DirEntry()}, {"/d", DirEntry()}, {"/d/a", FileWith("a")}};
  FileTree upper{{"/", DirEntry()}, {"/d", OpaqueDir()}, {"/d/b", FileWith("b")}};
  FileTree flat = FlattenLayers({lower, upper});
  EXPECT_THAT(Paths(flat), ::testing::ElementsAre("/", "/d", "/d/b"));
  EXPECT_TRUE(flat.at("/d").xattrs.empty());
}

TEST(FlattenLayers, FileOverDirectoryRemovesItsContents) {
  FileTree lower{{"/", DirEntry()}, {"/d", DirEntry()}, {"/d/a", FileWith("a")}};
  FileTree upper{{"/", DirEntry()}, {"/d", FileWith("file")}};
  EXPECT_THAT(Paths(FlattenLayers({lower, upper})), ::testing::ElementsAre("/", "/d"));
}

TEST(FlattenLayers, SiblingWithSharedPrefixSurvivesWhiteout) {
  FileTree lower{{"/", DirEntry()}, {"/a", DirEntry()}, {"/a-b", FileWith("x")},
                 {"/a/c", FileWith("c")}};
  FileTree upper{{"/", DirEntry()}, {"/a", Whiteout()}};
  EXPECT_THAT(Paths(FlattenLayers({lower, upper})), ::testing::ElementsAre("/", "/a-b"));
}

TEST(FlattenLayers, InodeIdsOfDifferentLayersDoNotCollide) {
  FileEntry f1 = FileWith("1");
  f1.inode_id = 5;
  FileEntry f2 = FileWith("2");
  f2.inode_id = 5;
  FileTree lower{{"/", DirEntry()}, {"/x", f1}};
  FileTree upper{{"/", DirEntry()}, {"/y", f2}};
  FileTree flat = FlattenLayers({lower, upper});
  EXPECT_NE(flat.at("/x").inode_id, flat.at("/y").inode_id);
}

}  // namespace
}  // namespace supermachine::layer
