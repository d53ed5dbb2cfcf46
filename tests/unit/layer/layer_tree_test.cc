// File: layer_tree_test.cc
// NormalizeEntryPath and the LayerTree replace / whiteout / opaque rules.
#include "daemon/layer/layer_tree.h"

#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::layer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

EntryAttrs FileAttrs() { return EntryAttrs{.mode = S_IFREG | 0644}; }
EntryAttrs DirAttrs() { return EntryAttrs{.mode = S_IFDIR | 0755}; }

TEST(NormalizeEntryPath, StripsLeadingSlashAndDotComponents) {
  auto path = NormalizeEntryPath("/./usr//bin/./ls/");
  ASSERT_TRUE(path.ok());
  EXPECT_THAT(*path, ElementsAre("usr", "bin", "ls"));
}

TEST(NormalizeEntryPath, DotAloneIsTheRoot) {
  auto path = NormalizeEntryPath("./");
  ASSERT_TRUE(path.ok());
  EXPECT_THAT(*path, IsEmpty());
}

TEST(NormalizeEntryPath, RejectsDotDot) {
  auto path = NormalizeEntryPath("a/../../b");
  EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(path.status().message(), HasSubstr("escapes the layer root"));
}

TEST(NormalizeEntryPath, KeepsNamesThatOnlyStartWithDots) {
  auto path = NormalizeEntryPath("..a/...");
  ASSERT_TRUE(path.ok());
  EXPECT_THAT(*path, ElementsAre("..a", "..."));
}

TEST(LayerTree, MissingParentsAreImplicitDirectories) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddEntry({"a", "b", "c"}, FileAttrs()).ok());
  LayerInode* a = tree.root()->children.at("a");
  EXPECT_EQ(a->mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_TRUE(a->children.at("b")->IsDir());
}

TEST(LayerTree, WhiteoutIsCharDeviceZeroZero) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddWhiteout({"etc"}, "x", EntryAttrs{}).ok());
  LayerInode* x = tree.root()->children.at("etc")->children.at("x");
  EXPECT_TRUE(x->IsWhiteout());
  EXPECT_EQ(x->mode & S_IFMT, static_cast<uint32_t>(S_IFCHR));
}

TEST(LayerTree, EntryBelowAWhiteoutTurnsItIntoAnOpaqueDirectory) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddWhiteout({}, "d", EntryAttrs{}).ok());
  ASSERT_TRUE(tree.AddEntry({"d", "f"}, FileAttrs()).ok());
  LayerInode* d = tree.root()->children.at("d");
  EXPECT_TRUE(d->IsDir());
  EXPECT_TRUE(d->opaque);
}

TEST(LayerTree, MarkOpaqueCreatesMissingDirectory) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.MarkOpaque({"x", "y"}).ok());
  EXPECT_TRUE(tree.root()->children.at("x")->children.at("y")->opaque);
  EXPECT_FALSE(tree.root()->children.at("x")->opaque);
}

TEST(LayerTree, DirectoryMergeKeepsOpaqueFlag) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.MarkOpaque({"x"}).ok());
  ASSERT_TRUE(tree.AddEntry({"x"}, DirAttrs()).ok());
  EXPECT_TRUE(tree.root()->children.at("x")->opaque);
}

TEST(LayerTree, HardLinkSharesTheInode) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddEntry({"a"}, FileAttrs()).ok());
  ASSERT_TRUE(tree.AddHardLink({"b"}, {"a"}).ok());
  EXPECT_EQ(tree.root()->children.at("a"), tree.root()->children.at("b"));
}

TEST(LayerTree, HardLinkToWhiteoutIsRejected) {
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddWhiteout({}, "a", EntryAttrs{}).ok());
  EXPECT_EQ(tree.AddHardLink({"b"}, {"a"}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LayerTree, RootTakesOnlyDirectoryAttributes) {
  LayerTree tree(100);
  EXPECT_EQ(tree.AddEntry({}, FileAttrs()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LayerTree, RefusesMoreEntriesThanItsBound) {
  LayerTree tree(3);  // The root counts.
  ASSERT_TRUE(tree.AddEntry({"a"}, FileAttrs()).ok());
  ASSERT_TRUE(tree.AddEntry({"b"}, FileAttrs()).ok());
  EXPECT_EQ(tree.AddEntry({"c"}, FileAttrs()).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace supermachine::layer
