// File: squashfs_writer_test.cc
// SquashfsWriter straight from a LayerTree: inode kinds a tar cannot carry (sockets), xattrs on
// every inode form, and many files across metadata blocks.
#include "daemon/layer/squashfs_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "daemon/layer/squashfs_reader.h"
#include "gtest/gtest.h"
#include "tests/unit/layer/tar_builder.h"
#include "worker/base/unique_fd.h"

namespace supermachine::layer {
namespace {

using ::supermachine::layer::testing::TempDir;

// Writes `tree` (file contents from `contents`, in tree order of AddEntry calls) to `path`.
absl::Status WriteImage(const std::string& path, LayerTree& tree,
                        const std::vector<std::pair<LayerInode*, std::string>>& files) {
  base::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto writer = SquashfsWriter::Create(fd.get(), {});
  if (!writer.ok()) {
    return writer.status();
  }
  for (const auto& [inode, content] : files) {
    absl::Status st = (*writer)->BeginFile(inode);
    if (st.ok()) {
      st = (*writer)->Append(content.data(), content.size());
    }
    if (st.ok()) {
      st = (*writer)->EndFile();
    }
    if (!st.ok()) {
      return st;
    }
  }
  return (*writer)->Finish(tree).status();
}

TEST(SquashfsWriter, WritesSocketsAndXattrsOnEveryInodeKind) {
  TempDir dir;
  LayerTree tree(100);
  ASSERT_TRUE(tree.AddEntry({"run", "sock"}, {.mode = S_IFSOCK | 0777, .uid = 9,
                                              .xattrs = {{"user.s", "1"}}})
                  .ok());
  ASSERT_TRUE(tree.AddEntry({"link"}, {.mode = S_IFLNK | 0777, .xattrs = {{"user.l", "2"}},
                                       .symlink_target = "run/sock"})
                  .ok());
  ASSERT_TRUE(tree.AddEntry({"tty"}, {.mode = S_IFCHR | 0620, .xattrs = {{"user.c", "3"}},
                                      .devno = (5 << 8) | 1})
                  .ok());
  ASSERT_TRUE(tree.AddEntry({"pipe"}, {.mode = S_IFIFO | 0600, .xattrs = {{"user.p", "4"}}}).ok());
  ASSERT_TRUE(tree.AddEntry({"run"}, {.mode = S_IFDIR | 0711, .xattrs = {{"user.d", "5"}}}).ok());
  ASSERT_TRUE(WriteImage(dir.Join("x.sqfs"), tree, {}).ok());

  auto read = ReadSquashfsTree(dir.Join("x.sqfs"), {});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->at("/run/sock").type, FileType::kSocket);
  EXPECT_EQ(read->at("/run/sock").uid, 9u);
  EXPECT_EQ(read->at("/run/sock").xattrs.at("user.s"), "1");
  EXPECT_EQ(read->at("/link").symlink_target, "run/sock");
  EXPECT_EQ(read->at("/link").xattrs.at("user.l"), "2");
  EXPECT_EQ(read->at("/tty").dev_major, 5u);
  EXPECT_EQ(read->at("/tty").dev_minor, 1u);
  EXPECT_EQ(read->at("/tty").xattrs.at("user.c"), "3");
  EXPECT_EQ(read->at("/pipe").xattrs.at("user.p"), "4");
  EXPECT_EQ(read->at("/run").permissions, 0711u);
  EXPECT_EQ(read->at("/run").xattrs.at("user.d"), "5");
}

TEST(SquashfsWriter, ManyEntriesAcrossMetadataBlocksReadBack) {
  TempDir dir;
  LayerTree tree(10000);
  std::vector<std::pair<LayerInode*, std::string>> files;
  for (int i = 0; i < 3000; ++i) {
    const std::string name = "file-with-a-fairly-long-name-" + std::to_string(i);
    auto inode = tree.AddEntry({"d" + std::to_string(i % 7), name},
                               {.mode = S_IFREG | 0644, .uid = static_cast<uint32_t>(i % 300)});
    ASSERT_TRUE(inode.ok());
    files.emplace_back(*inode, std::to_string(i));
  }
  ASSERT_TRUE(tree.AddHardLink({"hl"}, {"d0", "file-with-a-fairly-long-name-0"}).ok());
  ASSERT_TRUE(WriteImage(dir.Join("x.sqfs"), tree, files).ok());

  auto read = ReadSquashfsTree(dir.Join("x.sqfs"), {});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), 1u + 7u + 3000u + 1u);
  EXPECT_EQ(read->at("/d3/file-with-a-fairly-long-name-2999").content, "2999");
  EXPECT_EQ(read->at("/d3/file-with-a-fairly-long-name-2999").uid, 2999u % 300);
  EXPECT_EQ(read->at("/hl").inode_id, read->at("/d0/file-with-a-fairly-long-name-0").inode_id);
  EXPECT_EQ(read->at("/hl").nlink, 2u);
}

}  // namespace
}  // namespace supermachine::layer
