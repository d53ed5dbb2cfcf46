// File: volume_files_test.cc
// The restore-time volume files (daemon/vm/volume_files.h) and the launcher's use of them:
// every restore of a snapshot with volumes gets its own file per volume slot — never the
// snapshot's template — passed as one --disk per saved disk in the saved order, and the private
// copies end with the VM. A fake worker records its argv instead of restoring.
#include "daemon/vm/volume_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "daemon/vm/worker_launcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_vm.h"
#include "worker/snapshot/state_file.h"

namespace supermachine::vm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using test_support::ReadFileOrDie;
using test_support::TempDir;
using test_support::WriteFileOrDie;

constexpr uint64_t kVolumeBytes = 1 << 20;

void AddDisk(snapshot::v1::SnapshotState& state, const std::string& path, bool ro,
             const std::string& id, uint64_t bytes) {
  snapshot::v1::BlockDeviceState* b = state.add_devices()->mutable_block();
  b->set_path(path);
  b->set_read_only(ro);
  b->set_id(id);
  b->set_capacity_sectors(bytes / 512);
}

// A snapshot dir as a bake leaves it: the state file names the bake's temp-dir paths, the
// templates sit in volumes/ (one with data at 512 KiB, the rest a hole).
std::string MakeSnapshot(const TempDir& tmp, const std::string& name) {
  const std::string dir = tmp.Join(name);
  snapshot::v1::SnapshotState state;
  AddDisk(state, "/deltas/d.sqfs", true, "delta", 4096);
  AddDisk(state, "/layers/l0.sqfs", true, "l0", 4096);
  AddDisk(state, tmp.Join(".tmp-bake-1/volumes/data.img"), false, "v0", kVolumeBytes);
  AddDisk(state, tmp.Join(".tmp-bake-1/volumes/logs.img"), false, "v1", kVolumeBytes);
  std::filesystem::create_directories(dir + "/volumes");
  EXPECT_TRUE(snapshot::WriteStateFile(dir + "/state", state).ok());
  for (const char* v : {"data", "logs"}) {
    const std::string img = absl::StrCat(dir, "/volumes/", v, ".img");
    std::ofstream(img).close();
    std::filesystem::resize_file(img, kVolumeBytes);
    std::fstream f(img, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(512 * 1024);
    f << "template-" << v;
  }
  return dir;
}

TEST(SparseCopyFileTest, CopiesContentKeepsSizeAndRefusesToOverwrite) {
  TempDir tmp;
  const std::string dir = MakeSnapshot(tmp, "s");
  const std::string src = dir + "/volumes/data.img";
  ASSERT_TRUE(SparseCopyFile(src, tmp.Join("copy.img")).ok());
  EXPECT_EQ(ReadFileOrDie(tmp.Join("copy.img")), ReadFileOrDie(src));
  struct stat st {};
  ASSERT_EQ(::stat(tmp.Join("copy.img").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kVolumeBytes);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kVolumeBytes) << "holes kept";
  EXPECT_TRUE(absl::IsAlreadyExists(SparseCopyFile(src, tmp.Join("copy.img"))));
  EXPECT_TRUE(absl::IsNotFound(SparseCopyFile(tmp.Join("missing"), tmp.Join("c2"))));
  EXPECT_THAT(test_support::ListDir(tmp.path()), ElementsAre("copy.img", "s")) << "no temp left";
}

TEST(VolumeNameTest, Grammar) {
  EXPECT_TRUE(ValidateVolumeName("data").ok());
  EXPECT_TRUE(ValidateVolumeName("a_b.c-9").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateVolumeName("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateVolumeName("-x")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateVolumeName("a/b")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateVolumeName("..")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateVolumeName(std::string(65, 'a'))));
}

TEST(PrepareRestoreDisksTest, EveryDiskInOrderVolumesAtPrivateCopies) {
  TempDir tmp;
  const std::string dir = MakeSnapshot(tmp, "s");
  absl::StatusOr<RestoreDisks> a = PrepareRestoreDisks(dir, tmp.Join("vm-a"), {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->disk_args,
              ElementsAre("/deltas/d.sqfs,ro,id=delta", "/layers/l0.sqfs,ro,id=l0",
                          tmp.Join("vm-a/volumes/v0.img") + ",rw,id=v0",
                          tmp.Join("vm-a/volumes/v1.img") + ",rw,id=v1"));
  EXPECT_EQ(ReadFileOrDie(tmp.Join("vm-a/volumes/v1.img")),
            ReadFileOrDie(dir + "/volumes/logs.img"));
}

TEST(PrepareRestoreDisksTest, NamedVolumeTakesItsSlotAndMustHaveItsSize) {
  TempDir tmp;
  const std::string dir = MakeSnapshot(tmp, "s");
  const std::string named = tmp.Join("named.ext4");
  ASSERT_TRUE(SparseCopyFile(dir + "/volumes/logs.img", named).ok());
  absl::StatusOr<RestoreDisks> d = PrepareRestoreDisks(dir, tmp.Join("vm"), {{"v1", named}});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->disk_args[3], named + ",rw,id=v1");
  EXPECT_THAT(d->private_copies, ElementsAre(tmp.Join("vm/volumes/v0.img")));

  std::filesystem::resize_file(named, kVolumeBytes * 2);
  absl::StatusOr<RestoreDisks> bad = PrepareRestoreDisks(dir, tmp.Join("vm2"), {{"v1", named}});
  EXPECT_TRUE(absl::IsFailedPrecondition(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("size"));
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("vm2/volumes/v0.img"))) << "nothing left behind";
  EXPECT_TRUE(absl::IsInvalidArgument(
      PrepareRestoreDisks(dir, tmp.Join("vm3"), {{"v7", named}}).status()));
}

TEST(PrepareRestoreDisksTest, SnapshotWithoutVolumesKeepsTheSavedPaths) {
  TempDir tmp;
  absl::StatusOr<RestoreDisks> d = PrepareRestoreDisks(tmp.Join("plain"), tmp.Join("vm"), {});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->disk_args.empty());
}

// Two restores of one snapshot through the real launcher: each VM's volume disks are files in
// its own run dir, distinct from the other VM's and from the snapshot's templates.
TEST(WorkerLauncherVolumesTest, TwoVmsOfOneSnapshotNeverShareAVolumeFile) {
  TempDir tmp;
  const std::string dir = MakeSnapshot(tmp, "s");
  const std::string fake = tmp.Join("fake-worker.sh");
  // Records its argv, one per line, next to its run dir, then refuses the restore.
  WriteFileOrDie(fake,
                 "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > \"$(dirname \"$6\")/argv\"\n"
                 "exit 2\n");
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  testing::FakeJournal journal;
  WorkerLauncher launcher(
      {.worker_binary = fake, .runtime_dir = tmp.Join("run"), .journal = &journal});
  std::vector<std::vector<std::string>> volume_args;
  for (const char* id : {"aaa", "bbb"}) {
    absl::StatusOr<std::unique_ptr<VmInstance>> vm = launcher.Launch(
        {.vm_id = id, .snapshot_name = "s", .snapshot_dir = dir},
        absl::Now() + absl::Minutes(2));
    ASSERT_FALSE(vm.ok());
    const std::string run = tmp.Join(absl::StrCat("run/", id));
    std::vector<std::string> argv = absl::StrSplit(ReadFileOrDie(run + "/argv"), '\n');
    std::vector<std::string> disks;
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == "--disk") {
        disks.push_back(argv[i + 1]);
      }
    }
    ASSERT_EQ(disks.size(), 4u) << ReadFileOrDie(run + "/argv");
    EXPECT_EQ(disks[0], "/deltas/d.sqfs,ro,id=delta");
    for (size_t i = 2; i < 4; ++i) {
      EXPECT_THAT(disks[i], StartsWith(run + "/volumes/"));
      EXPECT_THAT(disks[i], Not(HasSubstr(dir)));
    }
    volume_args.push_back({disks[2], disks[3]});
    EXPECT_FALSE(std::filesystem::exists(run + "/volumes")) << "copies end with the VM";
  }
  EXPECT_NE(volume_args[0][0], volume_args[1][0]);
  EXPECT_NE(volume_args[0][1], volume_args[1][1]);
}

}  // namespace
}  // namespace supermachine::vm
