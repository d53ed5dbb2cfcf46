// File: layer_tools_test.cc
// Our squashfs images as other readers see them: `unsquashfs -lln` and `sqfs2tar` list what the
// tar had (names, modes, owners, link targets, sizes, device numbers, whiteouts), and the
// kernel, mounting three layers under overlayfs, shows exactly the flattened tree.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/layer/converter.h"
#include "daemon/layer/file_tree.h"
#include "daemon/layer/squashfs_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/layer/tar_builder.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine::layer {
namespace {

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

const std::string kCapability("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00",
                              20);

std::vector<TarEntry> RichLayer() {
  return {
      Dir("etc", {.perm = 0755}),
      File("etc/passwd", "root:x:0:0::/root:/bin/sh\n", {.mtime = 1500000000}),
      File("etc/shadow", "root:*:1::::::\n", {.perm = 0640, .gid = 42}),
      Dir("tmp", {.perm = 01777}),
      File("usr/bin/passwd", "suid", {.perm = 04755}),
      File("usr/bin/ping", "cap", {.perm = 0755, .xattrs = {{"security.capability", kCapability}}}),
      File("usr/bin/wall", "sgid", {.perm = 02755, .gid = 5}),
      HardLink("usr/bin/ping4", "usr/bin/ping"),
      Symlink("usr/bin/sh", "dash"),
      Symlink("lib", "usr/lib"),
      CharDev("dev/null", 1, 3, {.perm = 0666}),
      CharDev("dev/tty", 5, 0, {.perm = 0666, .gid = 5}),
      BlockDev("dev/loop0", 7, 0, {.perm = 0660, .gid = 6}),
      Fifo("run/initctl", {.perm = 0600}),
      File("home/user/notes", std::string(300000, 'n'), {.uid = 1000, .gid = 1000}),
      File("var/.wh.removed", ""),
      Dir("srv"),
      File("srv/.wh..wh..opq", ""),
  };
}

// Runs a tool, returning its stdout; fails with the tool's exit status otherwise.
absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv, const TempDir& dir) {
  const std::string out_path = dir.Join("tool.out");
  int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError("open tool output");
  }
  base::UniqueFd out(fd);
  auto child = base::ChildProcess::Spawn({.argv = argv, .stdout_fd = out.get()});
  if (!child.ok()) {
    return child.status();
  }
  auto exit = child->Wait();
  if (!exit.ok()) {
    return exit.status();
  }
  if (!exit->success()) {
    return absl::InternalError(absl::StrCat(argv[0], " ", exit->ToString()));
  }
  return testing::ReadFileOrDie(out_path);
}

struct Listed {
  std::string perms;
  std::string owner;
  std::string size_or_dev;
  std::string target;
};

// Parses `unsquashfs -lln` lines: "crw-rw-rw- 0/0   1,  3 2020-01-01 00:00 squashfs-root/dev/null".
std::map<std::string, Listed> ParseUnsquashfsListing(const std::string& text) {
  static const std::regex kLine(
      R"(^(\S{10}) (\d+/\d+)\s+(\d+|\d+,\s*\d+) \d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(.*)$)");
  std::map<std::string, Listed> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::smatch m;
    std::string s(line);
    if (!std::regex_match(s, m, kLine)) {
      continue;
    }
    Listed l{m[1], m[2], std::regex_replace(std::string(m[3]), std::regex(R"(\s+)"), ""), ""};
    std::string path = m[4];
    if (size_t arrow = path.find(" -> "); arrow != std::string::npos) {
      l.target = path.substr(arrow + 4);
      path = path.substr(0, arrow);
    }
    out[path.empty() ? "/" : path] = l;
  }
  return out;
}

class LayerTools : public ::testing::Test {
 protected:
  void SetUp() override {
    tar_ = dir_.Join("rich.tar");
    sqfs_ = dir_.Join("rich.sqfs");
    ASSERT_TRUE(testing::WriteTar(tar_, RichLayer(), TarCompression::kZstd).ok());
    auto stats =
        ConvertLayer(tar_, sqfs_, {.media_type = "application/vnd.oci.image.layer.v1.tar+zstd"});
    ASSERT_TRUE(stats.ok()) << stats.status();
  }
  TempDir dir_;
  std::string tar_;
  std::string sqfs_;
};

TEST_F(LayerTools, UnsquashfsListsModesOwnersSizesAndLinks) {
  auto text = RunTool({"unsquashfs", "-lln", sqfs_}, dir_);
  ASSERT_TRUE(text.ok()) << text.status();
  auto listed = ParseUnsquashfsListing(*text);
  ASSERT_EQ(listed.count("/etc/passwd"), 1u) << *text;
  EXPECT_EQ(listed["/etc/passwd"].perms, "-rw-r--r--");
  EXPECT_EQ(listed["/etc/passwd"].size_or_dev, "26");
  EXPECT_EQ(listed["/etc/shadow"].perms, "-rw-r-----");
  EXPECT_EQ(listed["/etc/shadow"].owner, "0/42");
  EXPECT_EQ(listed["/tmp"].perms, "drwxrwxrwt");
  EXPECT_EQ(listed["/usr/bin/passwd"].perms, "-rwsr-xr-x");
  EXPECT_EQ(listed["/usr/bin/wall"].perms, "-rwxr-sr-x");
  EXPECT_EQ(listed["/usr/bin/wall"].owner, "0/5");
  EXPECT_EQ(listed["/usr/bin/ping4"].size_or_dev, "3");
  EXPECT_EQ(listed["/usr/bin/sh"].target, "dash");
  EXPECT_EQ(listed["/lib"].target, "usr/lib");
  EXPECT_EQ(listed["/dev/null"].perms, "crw-rw-rw-");
  EXPECT_EQ(listed["/dev/null"].size_or_dev, "1,3");
  EXPECT_EQ(listed["/dev/tty"].size_or_dev, "5,0");
  EXPECT_EQ(listed["/dev/loop0"].perms, "brw-rw----");
  EXPECT_EQ(listed["/dev/loop0"].size_or_dev, "7,0");
  EXPECT_EQ(listed["/run/initctl"].perms, "prw-------");
  EXPECT_EQ(listed["/home/user/notes"].owner, "1000/1000");
  EXPECT_EQ(listed["/home/user/notes"].size_or_dev, "300000");
  // The whiteout: a character device 0,0 under the real name; no .wh. entries remain.
  EXPECT_EQ(listed["/var/removed"].perms.substr(0, 1), "c");
  EXPECT_EQ(listed["/var/removed"].size_or_dev, "0,0");
  EXPECT_EQ(listed.count("/var/.wh.removed"), 0u);
  EXPECT_EQ(listed.count("/srv/.wh..wh..opq"), 0u);
}

struct TarListing {
  mode_t mode = 0;
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 0;
  int64_t size = 0;
  std::string symlink;
  std::string hardlink;
  uint64_t major = 0;
  uint64_t minor = 0;
  std::map<std::string, std::string> xattrs;
};

// Every entry of a tar as libarchive reads it, keyed by path without "./" or trailing "/".
std::map<std::string, TarListing> ListTar(const std::string& path) {
  std::map<std::string, TarListing> out;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 65536), ARCHIVE_OK);
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e);
    while (!name.empty() && name.back() == '/') {
      name.pop_back();
    }
    if (name.rfind("./", 0) == 0) {
      name = name.substr(2);
    }
    TarListing l;
    l.mode = archive_entry_mode(e);
    l.uid = archive_entry_uid(e);
    l.gid = archive_entry_gid(e);
    l.mtime = archive_entry_mtime(e);
    l.size = archive_entry_size(e);
    l.symlink = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
    l.hardlink = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : "";
    l.major = archive_entry_rdevmajor(e);
    l.minor = archive_entry_rdevminor(e);
    archive_entry_xattr_reset(e);
    const char* key;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
      l.xattrs[key] = std::string(static_cast<const char*>(value), size);
    }
    out["/" + name] = l;
  }
  archive_read_free(a);
  return out;
}

TEST_F(LayerTools, Sqfs2tarGivesBackTheTarsEntries) {
  auto text = RunTool({"sqfs2tar", "--no-skip", sqfs_}, dir_);
  ASSERT_TRUE(text.ok()) << text.status();
  testing::WriteFileOrDie(dir_.Join("back.tar"), *text);
  auto original = ListTar(tar_);
  auto back = ListTar(dir_.Join("back.tar"));
  // Whiteouts and the opaque marker are the two intended differences.
  original.erase("/var/.wh.removed");
  original.erase("/srv/.wh..wh..opq");
  ASSERT_EQ(back.count("/var/removed"), 1u);
  EXPECT_TRUE(S_ISCHR(back["/var/removed"].mode));
  EXPECT_EQ(back["/var/removed"].major, 0u);
  EXPECT_EQ(back["/var/removed"].minor, 0u);
  back.erase("/var/removed");
  EXPECT_EQ(back["/srv"].xattrs["trusted.overlay.opaque"], "y");
  back["/srv"].xattrs.erase("trusted.overlay.opaque");
  for (const auto& [path, want] : original) {
    SCOPED_TRACE(path);
    ASSERT_EQ(back.count(path), 1u);
    const TarListing& got = back[path];
    EXPECT_EQ(got.uid, want.uid);
    EXPECT_EQ(got.gid, want.gid);
    EXPECT_EQ(got.mtime, want.mtime);
    EXPECT_EQ(got.symlink, want.symlink);
    if (!want.hardlink.empty()) {
      // sqfs2tar writes the second name it meets as the link; either direction is the pair.
      const std::string target = "/" + want.hardlink;
      EXPECT_TRUE(got.hardlink == want.hardlink || back[target].hardlink == path.substr(1))
          << got.hardlink;
      continue;
    }
    EXPECT_EQ(got.mode, want.mode);
    if (S_ISREG(want.mode)) {
      EXPECT_EQ(got.size, want.size);
    }
    if (S_ISCHR(want.mode) || S_ISBLK(want.mode)) {
      EXPECT_EQ(got.major, want.major);
      EXPECT_EQ(got.minor, want.minor);
    }
    if (!want.hardlink.empty() || !got.hardlink.empty()) {
      continue;
    }
    EXPECT_EQ(got.xattrs, want.xattrs);
  }
}

// ---- Kernel check: loop-mount each layer, stack them with overlayfs, compare. ----

// The tree the kernel shows under `root`, in FileTree form (inode ids are st_ino).
FileTree WalkMounted(const std::string& root) {
  FileTree tree;
  // Without xino, overlayfs reports each lower file's own st_ino and st_dev (one squashfs
  // per layer), so an inode is identified by the pair.
  std::map<std::pair<dev_t, ino_t>, uint64_t> inode_ids;
  auto add = [&tree, &root, &inode_ids](const std::string& full) {
    struct stat st;
    EXPECT_EQ(::lstat(full.c_str(), &st), 0) << full;
    FileEntry e;
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR: e.type = FileType::kDirectory; break;
      case S_IFREG: e.type = FileType::kRegular; break;
      case S_IFLNK: e.type = FileType::kSymlink; break;
      case S_IFCHR: e.type = FileType::kCharDevice; break;
      case S_IFBLK: e.type = FileType::kBlockDevice; break;
      case S_IFIFO: e.type = FileType::kFifo; break;
      default: e.type = FileType::kSocket; break;
    }
    e.permissions = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime = st.st_mtime;
    e.inode_id = inode_ids.emplace(std::make_pair(st.st_dev, st.st_ino), inode_ids.size())
                     .first->second;
    e.nlink = static_cast<uint32_t>(st.st_nlink);
    if (e.type == FileType::kRegular) {
      e.size = static_cast<uint64_t>(st.st_size);
      e.content = testing::ReadFileOrDie(full);
      e.content_read = true;
    }
    if (e.type == FileType::kSymlink) {
      char buf[4096];
      ssize_t n = ::readlink(full.c_str(), buf, sizeof(buf));
      e.symlink_target.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
    }
    if (e.type == FileType::kCharDevice || e.type == FileType::kBlockDevice) {
      e.dev_major = major(st.st_rdev);
      e.dev_minor = minor(st.st_rdev);
    }
    char names[8192];
    ssize_t len = ::llistxattr(full.c_str(), names, sizeof(names));
    for (ssize_t off = 0; off < len;) {
      std::string key(names + off);
      off += static_cast<ssize_t>(key.size()) + 1;
      char value[4096];
      ssize_t vlen = ::lgetxattr(full.c_str(), key.c_str(), value, sizeof(value));
      e.xattrs[key] = std::string(value, vlen > 0 ? static_cast<size_t>(vlen) : 0);
    }
    const std::string rel = full.substr(root.size());
    tree[rel.empty() ? "/" : rel] = e;
  };
  add(root);
  for (const auto& it : std::filesystem::recursive_directory_iterator(root)) {
    add(it.path().string());
  }
  return tree;
}

// Hard-link groups: sets of paths sharing an inode id (only groups of two or more).
std::set<std::set<std::string>> LinkGroups(const FileTree& tree) {
  std::map<uint64_t, std::set<std::string>> by_inode;
  for (const auto& [path, e] : tree) {
    if (e.type != FileType::kDirectory) {
      by_inode[e.inode_id].insert(path);
    }
  }
  std::set<std::set<std::string>> groups;
  for (auto& [inode, paths] : by_inode) {
    if (paths.size() > 1) {
      groups.insert(paths);
    }
  }
  return groups;
}

TEST(LayerOverlayMount, KernelOverlayOfThreeLayersEqualsFlattenedTree) {
  ASSERT_EQ(::geteuid(), 0u)
      << "this check mounts squashfs (loop) and overlayfs and needs root; run the integration "
         "tests as root or in the lab";
  TempDir dir;
  const std::vector<std::vector<TarEntry>> layers = {
      {Dir("etc"), File("etc/motd", "hello"), File("etc/os-release", "v1"), Dir("opt/app"),
       File("opt/app/old.bin", "old"), File("bin/busybox", "BB", {.perm = 0755}),
       HardLink("bin/sh", "bin/busybox"), Dir("var/cache"), File("var/cache/x", "x"),
       CharDev("dev/null", 1, 3, {.perm = 0666})},
      {File("etc/.wh.motd", ""), File("var/.wh.cache", ""), Dir("opt/app"),
       File("opt/app/.wh..wh..opq", ""), File("opt/app/new.bin", "new", {.perm = 0700}),
       File("usr/bin/ping", "p", {.xattrs = {{"security.capability", kCapability}}})},
      {File("etc/os-release", "v3"), File("lib/liba.so.1", "A"),
       HardLink("lib/liba.so", "lib/liba.so.1"), Symlink("bin/ash", "busybox"),
       Dir("tmp", {.perm = 01777})},
  };
  std::vector<FileTree> trees;
  std::vector<std::string> images;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string tar = dir.Join(absl::StrCat("l", i, ".tar.gz"));
    const std::string sqfs = dir.Join(absl::StrCat("l", i, ".sqfs"));
    ASSERT_TRUE(testing::WriteTar(tar, layers[i], TarCompression::kGzip).ok());
    auto stats = ConvertLayer(tar, sqfs, {});
    ASSERT_TRUE(stats.ok()) << stats.status();
    auto tree = ReadSquashfsTree(sqfs, {});
    ASSERT_TRUE(tree.ok()) << tree.status();
    trees.push_back(std::move(*tree));
    images.push_back(sqfs);
  }
  const FileTree expected = FlattenLayers(trees);

  std::vector<std::string> mounted;
  absl::Cleanup unmount_all = [&mounted] {
    for (auto it = mounted.rbegin(); it != mounted.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
  };
  std::string lowerdir;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string mnt = dir.Join(absl::StrCat("m", i));
    ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
    auto out = RunTool({"mount", "-t", "squashfs", "-o", "loop,ro", images[i], mnt}, dir);
    ASSERT_TRUE(out.ok()) << "loop-mounting squashfs failed (" << out.status()
                          << "); this check needs loop devices and squashfs support";
    mounted.push_back(mnt);
    lowerdir = lowerdir.empty() ? mnt : mnt + ":" + lowerdir;  // Uppermost first.
  }
  const std::string merged = dir.Join("merged");
  ASSERT_EQ(::mkdir(merged.c_str(), 0755), 0);
  const std::string options = "lowerdir=" + lowerdir;
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", MS_RDONLY, options.c_str()), 0)
      << "overlayfs mount failed: " << strerror(errno);
  mounted.push_back(merged);

  const FileTree actual = WalkMounted(merged);
  std::vector<std::string> expected_paths;
  std::vector<std::string> actual_paths;
  for (const auto& [path, e] : expected) {
    expected_paths.push_back(path);
  }
  for (const auto& [path, e] : actual) {
    actual_paths.push_back(path);
  }
  ASSERT_EQ(actual_paths, expected_paths) << "kernel:\n"
                                          << DescribeTree(actual) << "expected:\n"
                                          << DescribeTree(expected);
  for (const auto& [path, want] : expected) {
    SCOPED_TRACE(path);
    const FileEntry& got = actual.at(path);
    EXPECT_EQ(got.type, want.type);
    EXPECT_EQ(got.permissions, want.permissions);
    EXPECT_EQ(got.uid, want.uid);
    EXPECT_EQ(got.gid, want.gid);
    EXPECT_EQ(got.mtime, want.mtime);
    EXPECT_EQ(got.xattrs, want.xattrs);
    EXPECT_EQ(got.symlink_target, want.symlink_target);
    EXPECT_EQ(got.dev_major, want.dev_major);
    EXPECT_EQ(got.dev_minor, want.dev_minor);
    if (want.type == FileType::kRegular) {
      EXPECT_EQ(got.content, want.content);
      EXPECT_EQ(got.nlink, want.nlink);
    }
  }
  EXPECT_EQ(LinkGroups(actual), LinkGroups(expected));
  EXPECT_EQ(LinkGroups(expected),
            (std::set<std::set<std::string>>{{"/bin/busybox", "/bin/sh"},
                                             {"/lib/liba.so", "/lib/liba.so.1"}}));
}

}  // namespace
}  // namespace supermachine::layer
