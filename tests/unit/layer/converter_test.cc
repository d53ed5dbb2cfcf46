// File: converter_test.cc
// ConvertLayer: every entry type and attribute survives tar → squashfs, whiteouts become
// overlayfs whiteouts, and bad layers are refused with a specific error and no output.
#include "daemon/layer/converter.h"

#include <string>
#include <vector>

#include "daemon/layer/squashfs_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/layer/tar_builder.h"

namespace supermachine::layer {
namespace {

using ::supermachine::layer::testing::Attrs;
using ::supermachine::layer::testing::BlockDev;
using ::supermachine::layer::testing::CharDev;
using ::supermachine::layer::testing::Dir;
using ::supermachine::layer::testing::Fifo;
using ::supermachine::layer::testing::File;
using ::supermachine::layer::testing::HardLink;
using ::supermachine::layer::testing::Symlink;
using ::supermachine::layer::testing::TarCompression;
using ::supermachine::layer::testing::TarEntry;
using ::supermachine::layer::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kCapability("\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00",
                              20);

std::vector<TarEntry> EveryKind() {
  return {
      Dir("etc", {.perm = 0750, .uid = 1000, .gid = 1001, .mtime = 1600000000}),
      File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", {.perm = 0644, .mtime = 1600000001}),
      File("usr/bin/sudo", "#!fake\n", {.perm = 04755}),
      File("usr/bin/ping", "ping",
           {.perm = 0755, .xattrs = {{"security.capability", kCapability}}}),
      Dir("tmp", {.perm = 01777}),
      File("etc/app.conf", "x=1", {.xattrs = {{"user.origin", "test"}, {"trusted.t", "v"}}}),
      Symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
      CharDev("dev/null", 1, 3, {.perm = 0666}),
      BlockDev("dev/sda1", 8, 1, {.perm = 0660, .gid = 6}),
      CharDev("dev/big", 300, 70000),
      Fifo("run/fifo", {.perm = 0600}),
      File("empty", ""),
  };
}

absl::StatusOr<FileTree> ConvertAndRead(const TempDir& dir, const std::vector<TarEntry>& entries,
                                        TarCompression compression = TarCompression::kNone,
                                        ConvertOptions options = {}) {
  const std::string tar = dir.Join("layer.tar");
  const std::string out = dir.Join("layer.sqfs");
  absl::Status written = testing::WriteTar(tar, entries, compression);
  if (!written.ok()) {
    return written;
  }
  auto stats = ConvertLayer(tar, out, options);
  if (!stats.ok()) {
    return stats.status();
  }
  return ReadSquashfsTree(out, ReadOptions{});
}

TEST(ConvertLayer, KeepsRegularFileContentModeOwnerAndMtime) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  const FileEntry& passwd = tree->at("/etc/passwd");
  EXPECT_EQ(passwd.type, FileType::kRegular);
  EXPECT_EQ(passwd.content, "root:x:0:0:root:/root:/bin/sh\n");
  EXPECT_EQ(passwd.permissions, 0644u);
  EXPECT_EQ(passwd.mtime, 1600000001);
  EXPECT_EQ(tree->at("/empty").size, 0u);
}

TEST(ConvertLayer, KeepsDirectoryOwnerAndMode) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  const FileEntry& etc = tree->at("/etc");
  EXPECT_EQ(etc.type, FileType::kDirectory);
  EXPECT_EQ(etc.permissions, 0750u);
  EXPECT_EQ(etc.uid, 1000u);
  EXPECT_EQ(etc.gid, 1001u);
  EXPECT_EQ(etc.mtime, 1600000000);
}

TEST(ConvertLayer, KeepsSetuidAndStickyBits) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/usr/bin/sudo").permissions, 04755u);
  EXPECT_EQ(tree->at("/tmp").permissions, 01777u);
}

TEST(ConvertLayer, KeepsXattrsIncludingFileCapabilities) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/usr/bin/ping").xattrs.at("security.capability"), kCapability);
  EXPECT_EQ(tree->at("/etc/app.conf").xattrs,
            (std::map<std::string, std::string>{{"trusted.t", "v"}, {"user.origin", "test"}}));
}

TEST(ConvertLayer, KeepsSymlinkTarget) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/etc/localtime").type, FileType::kSymlink);
  EXPECT_EQ(tree->at("/etc/localtime").symlink_target, "/usr/share/zoneinfo/UTC");
}

TEST(ConvertLayer, KeepsDeviceNumbersAndFifos) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, EveryKind());
  ASSERT_TRUE(tree.ok()) << tree.status();
  const FileEntry& null_dev = tree->at("/dev/null");
  EXPECT_EQ(null_dev.type, FileType::kCharDevice);
  EXPECT_EQ(null_dev.dev_major, 1u);
  EXPECT_EQ(null_dev.dev_minor, 3u);
  EXPECT_EQ(null_dev.permissions, 0666u);
  const FileEntry& sda = tree->at("/dev/sda1");
  EXPECT_EQ(sda.type, FileType::kBlockDevice);
  EXPECT_EQ(sda.dev_major, 8u);
  EXPECT_EQ(sda.dev_minor, 1u);
  EXPECT_EQ(sda.gid, 6u);
  EXPECT_EQ(tree->at("/dev/big").dev_major, 300u);
  EXPECT_EQ(tree->at("/dev/big").dev_minor, 70000u);
  EXPECT_EQ(tree->at("/run/fifo").type, FileType::kFifo);
  EXPECT_EQ(tree->at("/run/fifo").permissions, 0600u);
}

TEST(ConvertLayer, CreatesMissingParentsAsRootOwned0755) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("a/b/c.txt", "c", {.uid = 5})});
  ASSERT_TRUE(tree.ok()) << tree.status();
  const FileEntry& a = tree->at("/a");
  EXPECT_EQ(a.type, FileType::kDirectory);
  EXPECT_EQ(a.permissions, 0755u);
  EXPECT_EQ(a.uid, 0u);
  EXPECT_EQ(tree->at("/a/b").type, FileType::kDirectory);
  EXPECT_EQ(tree->at("/a/b/c.txt").uid, 5u);
}

TEST(ConvertLayer, GzipLayerGivesTheSameTreeAsPlainTar) {
  TempDir plain_dir;
  TempDir gzip_dir;
  auto plain = ConvertAndRead(plain_dir, EveryKind(), TarCompression::kNone);
  auto gzip = ConvertAndRead(gzip_dir, EveryKind(), TarCompression::kGzip,
                             {.media_type = "application/vnd.oci.image.layer.v1.tar+gzip"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(gzip.ok()) << gzip.status();
  EXPECT_EQ(DescribeTree(*gzip), DescribeTree(*plain));
}

TEST(ConvertLayer, ZstdLayerGivesTheSameTreeAsPlainTar) {
  TempDir plain_dir;
  TempDir zstd_dir;
  auto plain = ConvertAndRead(plain_dir, EveryKind(), TarCompression::kNone);
  auto zstd = ConvertAndRead(zstd_dir, EveryKind(), TarCompression::kZstd,
                             {.media_type = "application/vnd.oci.image.layer.v1.tar+zstd"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(zstd.ok()) << zstd.status();
  EXPECT_EQ(DescribeTree(*zstd), DescribeTree(*plain));
}

TEST(ConvertLayer, ReportsStatistics) {
  TempDir dir;
  ASSERT_TRUE(testing::WriteTar(dir.Join("l.tar"),
                                {File("a", "12345"), HardLink("b", "a"), File(".wh.gone", ""),
                                 File("d/.wh..wh..opq", "")},
                                TarCompression::kGzip)
                  .ok());
  auto stats = ConvertLayer(dir.Join("l.tar"), dir.Join("l.sqfs"), {});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->entries, 4u);
  EXPECT_EQ(stats->hard_links, 1u);
  EXPECT_EQ(stats->whiteouts, 1u);
  EXPECT_EQ(stats->opaque_dirs, 1u);
  EXPECT_EQ(stats->compression, LayerCompression::kGzip);
  EXPECT_GT(stats->bytes_in, 0u);
  EXPECT_GT(stats->bytes_uncompressed, stats->bytes_in);
  EXPECT_EQ(stats->bytes_out % 4096, 0u);
  EXPECT_GT(stats->bytes_out, 0u);
}

TEST(ConvertLayer, StreamsMultiBlockFilesIntact) {
  TempDir dir;
  std::string big;
  for (int i = 0; big.size() < 700 * 1024; ++i) {
    big += std::to_string(i * 7919) + ",";
  }
  auto tree = ConvertAndRead(dir, {File("big", big), File("small", "tail")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/big").size, big.size());
  EXPECT_TRUE(tree->at("/big").content == big);
  EXPECT_EQ(tree->at("/small").content, "tail");
}

TEST(ConvertLayer, WhiteoutBecomesCharDeviceZeroZero) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("etc"), File("etc/.wh.motd", "")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->count("/etc/.wh.motd"), 0u);
  const FileEntry& motd = tree->at("/etc/motd");
  EXPECT_EQ(motd.type, FileType::kCharDevice);
  EXPECT_EQ(motd.dev_major, 0u);
  EXPECT_EQ(motd.dev_minor, 0u);
  EXPECT_TRUE(motd.IsWhiteout());
}

TEST(ConvertLayer, OpaqueMarkerSetsOverlayXattrAndIsNotEmitted) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("opt"), File("opt/.wh..wh..opq", ""), File("opt/new", "n")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->count("/opt/.wh..wh..opq"), 0u);
  EXPECT_EQ(tree->at("/opt").xattrs.at("trusted.overlay.opaque"), "y");
  EXPECT_EQ(tree->at("/opt/new").content, "n");
}

TEST(ConvertLayer, OpaqueMarkerBeforeItsDirectoryStillApplies) {
  TempDir dir;
  auto tree =
      ConvertAndRead(dir, {File("opt/.wh..wh..opq", ""), Dir("opt", {.perm = 0700, .uid = 3})});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_TRUE(tree->at("/opt").IsOpaque());
  EXPECT_EQ(tree->at("/opt").permissions, 0700u);
  EXPECT_EQ(tree->at("/opt").uid, 3u);
}

TEST(ConvertLayer, WhiteoutOfThisLayersDirectoryMakesItOpaque) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File(".wh.srv", ""), Dir("srv"), File("srv/mine", "m")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/srv").type, FileType::kDirectory);
  EXPECT_TRUE(tree->at("/srv").IsOpaque());
  EXPECT_EQ(tree->at("/srv/mine").content, "m");
}

TEST(ConvertLayer, WhiteoutDoesNotDeleteThisLayersOwnFile) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("keep", "mine"), File(".wh.keep", "")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/keep").type, FileType::kRegular);
  EXPECT_EQ(tree->at("/keep").content, "mine");
}

TEST(ConvertLayer, SkipsAufsMetadataEntries) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir(".wh..wh.plnk"), File(".wh..wh.aufs", ""), File("a", "")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->size(), 2u);  // "/" and "/a".
}

TEST(ConvertLayer, HardLinksShareOneInodeWithLinkCount) {
  TempDir dir;
  auto tree = ConvertAndRead(
      dir, {File("bin/busybox", "BB", {.perm = 0755}), HardLink("bin/sh", "bin/busybox"),
            HardLink("usr/bin/ls", "bin/busybox")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  const FileEntry& busybox = tree->at("/bin/busybox");
  EXPECT_EQ(busybox.nlink, 3u);
  EXPECT_EQ(tree->at("/bin/sh").inode_id, busybox.inode_id);
  EXPECT_EQ(tree->at("/usr/bin/ls").inode_id, busybox.inode_id);
  EXPECT_EQ(tree->at("/usr/bin/ls").content, "BB");
  EXPECT_EQ(tree->at("/usr/bin/ls").permissions, 0755u);
}

TEST(ConvertLayer, HardLinkKeepsOldContentWhenTargetNameIsReplacedLater) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("a", "old"), HardLink("b", "a"), File("a", "new")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/a").content, "new");
  EXPECT_EQ(tree->at("/b").content, "old");
  EXPECT_EQ(tree->at("/a").nlink, 1u);
  EXPECT_EQ(tree->at("/b").nlink, 1u);
}

TEST(ConvertLayer, LaterEntryReplacesEarlierOneWithTheSamePath) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("etc/hosts", "first"), Symlink("etc/hosts", "/run/hosts")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/etc/hosts").type, FileType::kSymlink);
  EXPECT_EQ(tree->at("/etc/hosts").symlink_target, "/run/hosts");
}

TEST(ConvertLayer, FileReplacingDirectoryDropsItsContents) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("x"), File("x/inner", "i"), File("x", "now a file")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/x").type, FileType::kRegular);
  EXPECT_EQ(tree->count("/x/inner"), 0u);
}

TEST(ConvertLayer, DirectoryOverDirectoryMergesAndTakesNewAttributes) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("x"), File("x/inner", "i"), Dir("x", {.perm = 0700})});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/x").permissions, 0700u);
  EXPECT_EQ(tree->at("/x/inner").content, "i");
}

TEST(ConvertLayer, AbsoluteAndDotPathsStayInsideTheRoot) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("/etc/abs", "a"), File("./etc//./dot", "d")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/etc/abs").content, "a");
  EXPECT_EQ(tree->at("/etc/dot").content, "d");
}

TEST(ConvertLayer, KeepsNonAsciiNamesAsBytes) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {File("caf\xc3\xa9/na\xc3\xafve.txt", "u")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/caf\xc3\xa9/na\xc3\xafve.txt").content, "u");
}

TEST(ConvertLayer, RootEntrySetsRootAttributes) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("./", {.perm = 0700, .uid = 7}), File("f", "")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/").permissions, 0700u);
  EXPECT_EQ(tree->at("/").uid, 7u);
}

TEST(ConvertLayer, DirectoryLinkCountCountsSubdirectories) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {Dir("d"), Dir("d/a"), Dir("d/b"), File("d/f", "")});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/d").nlink, 4u);
}

TEST(ConvertLayer, DropsOverlayXattrsFromTheTar) {
  TempDir dir;
  auto tree = ConvertAndRead(
      dir, {Dir("d", {.xattrs = {{"trusted.overlay.redirect", "/etc"}, {"user.k", "v"}}})});
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->at("/d").xattrs, (std::map<std::string, std::string>{{"user.k", "v"}}));
}

TEST(ConvertLayer, EmptyLayerGivesEmptyRoot) {
  TempDir dir;
  auto tree = ConvertAndRead(dir, {}, TarCompression::kGzip);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->size(), 1u);
  EXPECT_EQ(tree->at("/").type, FileType::kDirectory);
}

// --- Rejections: a specific error, the layer named, and nothing left in the output dir. ---

class ConvertLayerRejects : public ::testing::Test {
 protected:
  absl::Status Convert(const std::vector<TarEntry>& entries,
                       TarCompression compression = TarCompression::kNone,
                       std::string media_type = "") {
    EXPECT_TRUE(testing::WriteTar(in_.Join("layer.tar"), entries, compression).ok());
    return ConvertRaw(std::move(media_type));
  }
  absl::Status ConvertRaw(std::string media_type = "") {
    return ConvertLayer(in_.Join("layer.tar"), out_.Join("layer.sqfs"),
                        {.layer_name = "sha256:abc", .media_type = std::move(media_type)})
        .status();
  }
  TempDir in_;
  TempDir out_;
};

TEST_F(ConvertLayerRejects, DotDotEntry) {
  absl::Status st = Convert({File("../etc/passwd", "x")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("layer sha256:abc: entry '../etc/passwd': path escapes"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, AbsolutePathEscapingTheRoot) {
  absl::Status st = Convert({File("/../../etc/shadow", "x")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("path escapes the layer root"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, DotDotInTheMiddleOfAPath) {
  absl::Status st = Convert({File("usr/../../x", "x")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, HardLinkToUnknownTarget) {
  absl::Status st = Convert({File("a", "x"), HardLink("b", "nowhere")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("entry 'b': hard link target 'nowhere' is not an earlier"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, HardLinkToALaterEntry) {
  absl::Status st = Convert({HardLink("b", "a"), File("a", "x")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, HardLinkEscapingTheRoot) {
  absl::Status st = Convert({HardLink("b", "../../etc/passwd")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("hard link target '../../etc/passwd'"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, HardLinkToADirectory) {
  absl::Status st = Convert({Dir("d"), HardLink("e", "d")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("is a directory"));
}

TEST_F(ConvertLayerRejects, EntryBelowANonDirectory) {
  absl::Status st = Convert({Symlink("lib", "/usr/lib"), File("lib/libc.so", "x")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("parent 'lib' is not a directory"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, CorruptGzip) {
  std::string text;
  for (int i = 0; i < 20000; ++i) {
    text += "line " + std::to_string(i) + "\n";
  }
  ASSERT_TRUE(testing::WriteTar(in_.Join("layer.tar"), {File("a", text)}, TarCompression::kGzip)
                  .ok());
  std::string bytes = testing::ReadFileOrDie(in_.Join("layer.tar"));
  for (size_t i = 20; i < 60; ++i) {
    bytes[i] = static_cast<char>(0xff);
  }
  testing::WriteFileOrDie(in_.Join("layer.tar"), bytes);
  absl::Status st = ConvertRaw();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(st.message(), HasSubstr("layer sha256:abc"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, TruncatedTar) {
  ASSERT_TRUE(testing::WriteTar(in_.Join("layer.tar"),
                                {File("a", std::string(5000, 'a')), File("b", "b")})
                  .ok());
  std::string bytes = testing::ReadFileOrDie(in_.Join("layer.tar"));
  testing::WriteFileOrDie(in_.Join("layer.tar"), bytes.substr(0, 3000));
  absl::Status st = ConvertRaw();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(st.message(), HasSubstr("runcated"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, TruncatedZstd) {
  ASSERT_TRUE(testing::WriteTar(in_.Join("layer.tar"), EveryKind(), TarCompression::kZstd).ok());
  std::string bytes = testing::ReadFileOrDie(in_.Join("layer.tar"));
  testing::WriteFileOrDie(in_.Join("layer.tar"), bytes.substr(0, bytes.size() / 2));
  absl::Status st = ConvertRaw();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, NonTarInput) {
  testing::WriteFileOrDie(in_.Join("layer.tar"), "this is not a tar archive at all\n");
  absl::Status st = ConvertRaw();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, CompressionNotMatchingMediaType) {
  absl::Status st = Convert({File("a", "x")}, TarCompression::kNone,
                            "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("declares gzip compression but the blob is none"));
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, UnknownMediaType) {
  absl::Status st = Convert({File("a", "x")}, TarCompression::kNone, "application/x-rar");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("unsupported layer media type 'application/x-rar'"));
}

TEST_F(ConvertLayerRejects, EmptyWhiteoutName) {
  absl::Status st = Convert({File("etc/.wh.", "")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("whiteout names no file"));
}

TEST_F(ConvertLayerRejects, OverlongNameComponent) {
  absl::Status st = Convert({File(std::string(300, 'n'), "")});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("longer than 255"));
}

TEST_F(ConvertLayerRejects, MissingInputWithoutCreatingOutput) {
  absl::Status st = ConvertLayer(in_.Join("missing.tar"), out_.Join("layer.sqfs"), {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST_F(ConvertLayerRejects, MoreFileDataThanTheBound) {
  ASSERT_TRUE(testing::WriteTar(in_.Join("layer.tar"), {File("a", std::string(5000, 'a'))}).ok());
  absl::Status st = ConvertLayer(in_.Join("layer.tar"), out_.Join("layer.sqfs"),
                                 {.max_file_bytes = 4096})
                        .status();
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(out_.List(), ElementsAre());
}

TEST(ConvertLayer, FailedConversionLeavesExistingOutputUntouched) {
  TempDir dir;
  testing::WriteFileOrDie(dir.Join("out.sqfs"), "previous");
  ASSERT_TRUE(testing::WriteTar(dir.Join("bad.tar"), {File("../x", "")}).ok());
  EXPECT_FALSE(ConvertLayer(dir.Join("bad.tar"), dir.Join("out.sqfs"), {}).ok());
  EXPECT_EQ(testing::ReadFileOrDie(dir.Join("out.sqfs")), "previous");
  EXPECT_THAT(dir.List(), ElementsAre("bad.tar", "out.sqfs"));
}

}  // namespace
}  // namespace supermachine::layer
