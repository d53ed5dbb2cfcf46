// Tests daemon/bake/volume_image.cc with the real mke2fs (e2fsprogs is a deploy dependency) and
// debugfs to read back what it made.
#include "daemon/bake/volume_image.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::supermachine::test_support::TempDir;

// `debugfs -R "stat /"` output for the image (root inode: owner, type).
std::string DebugfsStatRoot(const std::string& image) {
  std::string out;
  FILE* p = ::popen(("debugfs -R 'stat /' " + image + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) {
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = ::fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  ::pclose(p);
  return out;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") {
        out.push_back(e->d_name);
      }
    }
    ::closedir(d);
  }
  return out;
}

TEST(VolumeOwnerFor, NumericUsersAndGroupsOnly) {
  EXPECT_EQ(VolumeOwnerFor(""), (VolumeOwner{0, 0}));
  EXPECT_EQ(VolumeOwnerFor("1000"), (VolumeOwner{1000, 1000}));
  EXPECT_EQ(VolumeOwnerFor("1000:50"), (VolumeOwner{1000, 50}));
  EXPECT_EQ(VolumeOwnerFor("www"), (VolumeOwner{0, 0}));
  EXPECT_EQ(VolumeOwnerFor("1000:staff"), (VolumeOwner{0, 0}));
}

TEST(VolumeImage, RelPathAndLabel) {
  const Volume v{.name = "a-very-long-volume-name", .guest_path = "/d", .size_bytes = 16 << 20};
  EXPECT_EQ(VolumeImageRelPath(v), "volumes/a-very-long-volume-name.img");
  EXPECT_EQ(VolumeLabel(v), "a-very-long-volu");
}

TEST(VolumeImage, CreatesASparseExt4OwnedByTheWorkloadUser) {
  TempDir dir;
  const Volume v{.name = "data", .guest_path = "/var/data", .size_bytes = uint64_t{64} << 20};
  absl::StatusOr<std::string> path =
      CreateVolumeImage(v, dir.path(), {.owner = {.uid = 1234, .gid = 567}});
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir.Join("volumes/data.img"));
  struct stat st {};
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), v.size_bytes);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, v.size_bytes / 2) << "not sparse";
  EXPECT_TRUE(CheckExt4Image(*path, "data").ok());
  const std::string root = DebugfsStatRoot(*path);
  ASSERT_FALSE(root.empty()) << "debugfs (e2fsprogs) is needed by this test";
  EXPECT_TRUE(absl::StrContains(root, "User:  1234")) << root;
  EXPECT_TRUE(absl::StrContains(root, "Group:   567")) << root;
  // Only the image: no temp file or mke2fs log left.
  EXPECT_EQ(Entries(dir.Join("volumes")), std::vector<std::string>{"data.img"});
}

TEST(VolumeImage, ExistingImageIsAlreadyExists) {
  TempDir dir;
  const Volume v{.name = "data", .guest_path = "/d", .size_bytes = uint64_t{16} << 20};
  ASSERT_TRUE(CreateVolumeImage(v, dir.path()).ok());
  EXPECT_EQ(CreateVolumeImage(v, dir.path()).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(VolumeImage, FailingMke2fsLeavesNothingAndSaysWhat) {
  TempDir dir;
  const Volume v{.name = "data", .guest_path = "/d", .size_bytes = uint64_t{16} << 20};
  absl::StatusOr<std::string> r = CreateVolumeImage(v, dir.path(), {.mke2fs = "/bin/false"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "volume 'data': /bin/false exited 1"))
      << r.status();
  absl::StatusOr<std::string> missing =
      CreateVolumeImage(v, dir.path(), {.mke2fs = "/nonexistent/mke2fs"});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "e2fsprogs")) << missing.status();
  EXPECT_EQ(::rmdir(dir.Join("volumes").c_str()), 0) << "volumes/ should be empty";
}

TEST(CheckExt4Image, RejectsNonExt4WrongLabelAndTruncatedImages) {
  TempDir dir;
  std::ofstream(dir.Join("zeros")) << std::string(8192, '\0');
  EXPECT_EQ(CheckExt4Image(dir.Join("zeros"), "x").code(), absl::StatusCode::kDataLoss);
  std::ofstream(dir.Join("short")) << "abc";
  EXPECT_EQ(CheckExt4Image(dir.Join("short"), "x").code(), absl::StatusCode::kDataLoss);

  const Volume v{.name = "data", .guest_path = "/d", .size_bytes = uint64_t{16} << 20};
  absl::StatusOr<std::string> path = CreateVolumeImage(v, dir.path());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(absl::StrContains(CheckExt4Image(*path, "other").message(), "label 'data'"));
  ASSERT_EQ(::truncate(path->c_str(), 8 << 20), 0);
  EXPECT_TRUE(absl::StrContains(CheckExt4Image(*path, "data").message(), "does not fit"));
}

}  // namespace
}  // namespace supermachine::bake
