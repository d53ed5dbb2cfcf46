// File: named_volumes_test.cc
// Named volumes (daemon/vm/named_volumes.h) over a real store and a snapshot dir as a bake
// leaves it, and the manager's use of them with a fake launcher: create on first use as a copy
// of the slot's template, one live VM per volume, freed when the VM ends, kept across a
// supervised restart, removable only while free; a VM naming a volume skips the pool.
#include "daemon/vm/named_volumes.h"

#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "daemon/bake/metadata.h"
#include "daemon/vm/vm_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using test_support::ReadFileOrDie;
using test_support::TempDir;
using testing::Eventually;
using testing::FakeJournal;
using testing::FakeLauncher;

constexpr uint64_t kSlotBytes = uint64_t{16} << 20;  // the smallest volume a bake allows

class NamedVolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(tmp_.Join("store.db"), [] { return int64_t{7}; });
    ASSERT_TRUE(s.ok()) << s.status();
    store_.emplace(std::move(*s));
    // A snapshot with one volume slot at /data, its clean template in volumes/.
    snapshot_dir_ = tmp_.Join("snapshots/web");
    std::filesystem::create_directories(snapshot_dir_ + "/volumes");
    bake::SnapshotMetadata md;
    md.name = "web";
    // Strict parser: every digest must be well-formed.
    const image::Digest d = *image::Digest::Parse("sha256:" + std::string(64, 'a'));
    md.image_digest = md.cheap_key = md.delta_key = md.bake_key = d;
    md.kernel_digest = md.agent_digest = d;
    md.launch.argv = {"/bin/sh"};
    md.readiness = *bake::ParseReadiness("parked");
    md.volumes = {{.name = "data", .guest_path = "/data", .size_bytes = kSlotBytes}};
    ASSERT_TRUE(bake::WriteMetadata(snapshot_dir_, md).ok());
    const std::string img = snapshot_dir_ + "/volumes/data.img";
    { std::ofstream(img) << "clean ext4"; }
    std::filesystem::resize_file(img, kSlotBytes);
    volumes_.emplace(tmp_.Join("state/volumes"),
                     [this](const std::function<absl::Status(store::Store&)>& fn) {
                       absl::MutexLock lock(&store_mu_);
                       return fn(*store_);
                     });
  }

  std::unique_ptr<VmManager> MakeManager() {
    return std::make_unique<VmManager>(VmManagerOptions{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [this](const std::string& name) -> absl::StatusOr<std::string> {
          if (name == "web") {
            return snapshot_dir_;
          }
          return absl::NotFoundError("no such snapshot");
        },
        .default_pool = {.min = 0, .max = 4},
        .monitor_interval = absl::Milliseconds(10),
        .supervise_interval = absl::Milliseconds(10),
        .stop_grace = absl::Milliseconds(10),
        .volumes = &*volumes_,
    });
  }

  std::string AttachedTo(const std::string& name) {
    absl::MutexLock lock(&store_mu_);
    absl::StatusOr<store::VolumeRecord> v = store_->GetVolume(name);
    return v.ok() ? v->attached_vm : "<" + std::string(v.status().message()) + ">";
  }

  TempDir tmp_;
  absl::Mutex store_mu_;
  std::optional<store::Store> store_;
  std::string snapshot_dir_;
  std::optional<NamedVolumes> volumes_;
  FakeJournal journal_;
  FakeLauncher launcher_{&journal_};
};

TEST(VolumeBindingTest, ParsesNameAndGuestPath) {
  absl::StatusOr<VolumeBinding> b = ParseVolumeBinding("db:/var/lib/db");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->name, "db");
  EXPECT_EQ(b->guest_path, "/var/lib/db");
  EXPECT_EQ(ToString(*b), "db:/var/lib/db");
  for (const char* bad : {"db", "db:", "db:rel", ":/x", "a/b:/x"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseVolumeBinding(bad).status())) << bad;
  }
}

TEST_F(NamedVolumesTest, CreatedOnFirstUseAsACopyOfTheSlotTemplate) {
  absl::StatusOr<std::map<std::string, std::string>> files =
      volumes_->Attach("vm-1", {{.name = "db", .guest_path = "/data"}}, "web", snapshot_dir_);
  ASSERT_TRUE(files.ok()) << files.status();
  const std::string path = tmp_.Join("state/volumes/db.ext4");
  EXPECT_THAT(*files, ElementsAre(Pair("v0", path)));
  EXPECT_EQ(ReadFileOrDie(path), ReadFileOrDie(snapshot_dir_ + "/volumes/data.img"));
  EXPECT_EQ(AttachedTo("db"), "vm-1");
  absl::StatusOr<std::vector<store::VolumeRecord>> all = volumes_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].size_bytes, static_cast<int64_t>(kSlotBytes));
  EXPECT_EQ((*all)[0].guest_path, "/data");
}

TEST_F(NamedVolumesTest, OneVmAtATimeThenDetachAndRemove) {
  ASSERT_TRUE(volumes_->Attach("vm-1", {{"db", "/data"}}, "web", snapshot_dir_).ok());
  // The data written through vm-1 must survive to the next holder.
  { std::fstream(tmp_.Join("state/volumes/db.ext4"), std::ios::in | std::ios::out) << "WRITTEN"; }
  absl::StatusOr<std::map<std::string, std::string>> second =
      volumes_->Attach("vm-2", {{"db", "/data"}}, "web", snapshot_dir_);
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("vm-1"));
  absl::Status rm = volumes_->Remove("db");
  EXPECT_TRUE(absl::IsFailedPrecondition(rm)) << rm;
  EXPECT_THAT(rm.message(), HasSubstr("vm-1"));

  ASSERT_TRUE(volumes_->Detach("vm-1").ok());
  ASSERT_TRUE(volumes_->Attach("vm-2", {{"db", "/data"}}, "web", snapshot_dir_).ok());
  EXPECT_EQ(ReadFileOrDie(tmp_.Join("state/volumes/db.ext4")).substr(0, 7), "WRITTEN");
  ASSERT_TRUE(volumes_->Detach("vm-2").ok());
  ASSERT_TRUE(volumes_->Remove("db").ok());
  EXPECT_FALSE(std::filesystem::exists(tmp_.Join("state/volumes/db.ext4")));
  EXPECT_TRUE(absl::IsNotFound(volumes_->Remove("db")));
}

TEST_F(NamedVolumesTest, PathWithoutASlotNamesTheSlotsTheSnapshotHas) {
  absl::StatusOr<std::map<std::string, std::string>> got =
      volumes_->Attach("vm-1", {{"db", "/x"}}, "web", snapshot_dir_);
  EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
  EXPECT_THAT(got.status().message(),
              HasSubstr("snapshot 'web' declares volumes at /data; bake with -v NAME:/x"));
  EXPECT_TRUE(absl::IsInvalidArgument(
      volumes_->Attach("vm-1", {{"db", "/data"}, {"db", "/data"}}, "web", snapshot_dir_)
          .status()));
  EXPECT_THAT(AttachedTo("db"), HasSubstr("not found")) << "a refused attach creates nothing";
  EXPECT_FALSE(std::filesystem::exists(tmp_.Join("state/volumes/db.ext4")));
}

TEST_F(NamedVolumesTest, ManagerBindsTheNamedFileSkipsThePoolAndFreesOnRelease) {
  std::unique_ptr<VmManager> m = MakeManager();
  absl::StatusOr<VmView> a = m->Acquire({.snapshot = "web", .volumes = {{"db", "/data"}}});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->pool_hit);
  EXPECT_THAT(launcher_.VolumeFiles(a->id),
              ElementsAre(Pair("v0", tmp_.Join("state/volumes/db.ext4"))));
  EXPECT_THAT(a->volumes, ElementsAre(VolumeBinding{"db", "/data"}));
  EXPECT_EQ(AttachedTo("db"), a->id);
  EXPECT_TRUE(m->PoolStatistics().empty()) << "no pool was made for it";

  absl::StatusOr<VmView> b = m->Acquire({.snapshot = "web", .volumes = {{"db", "/data"}}});
  EXPECT_TRUE(absl::IsFailedPrecondition(b.status())) << b.status();
  EXPECT_THAT(b.status().message(), HasSubstr(a->id));

  // A VM without the name: pooled path, private copies only (no named files).
  absl::StatusOr<VmView> plain = m->Acquire({.snapshot = "web"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(launcher_.VolumeFiles(plain->id).empty());

  ASSERT_TRUE(m->Release(a->id).ok());
  EXPECT_EQ(AttachedTo("db"), "");
  absl::StatusOr<VmView> c = m->Acquire({.snapshot = "web", .volumes = {{"db", "/data"}}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(AttachedTo("db"), c->id);
}

TEST_F(NamedVolumesTest, WorkerDeathFreesTheVolume) {
  std::unique_ptr<VmManager> m = MakeManager();
  absl::StatusOr<VmView> a = m->Acquire({.snapshot = "web", .volumes = {{"db", "/data"}}});
  ASSERT_TRUE(a.ok()) << a.status();
  launcher_.State(a->id)->dead = true;
  EXPECT_TRUE(Eventually([&] { return AttachedTo("db").empty(); }, absl::Seconds(30)));
}

TEST_F(NamedVolumesTest, SupervisedRestartKeepsTheNamedVolume) {
  std::unique_ptr<VmManager> m = MakeManager();
  absl::StatusOr<VmView> a = m->Acquire({.snapshot = "web",
                                         .name = "svc",
                                         .restart = {.kind = RestartPolicy::Kind::kAlways},
                                         .volumes = {{"db", "/data"}}});
  ASSERT_TRUE(a.ok()) << a.status();
  launcher_.State(a->id)->dead = true;
  ASSERT_TRUE(Eventually(
      [&] {
        absl::StatusOr<VmView> v = m->Get("svc");
        return v.ok() && v->id != a->id && !v->restarting;
      },
      absl::Seconds(30)));
  absl::StatusOr<VmView> now = m->Get("svc");
  ASSERT_TRUE(now.ok());
  EXPECT_THAT(now->volumes, ElementsAre(VolumeBinding{"db", "/data"}));
  EXPECT_THAT(launcher_.VolumeFiles(now->id),
              ElementsAre(Pair("v0", tmp_.Join("state/volumes/db.ext4"))));
  EXPECT_EQ(AttachedTo("db"), now->id);
}

TEST_F(NamedVolumesTest, AcquireWithoutNamedVolumesConfiguredFails) {
  VmManager m(VmManagerOptions{
      .launcher = &launcher_,
      .journal = &journal_,
      .resolve_snapshot = [this](const std::string&) -> absl::StatusOr<std::string> {
        return snapshot_dir_;
      },
  });
  EXPECT_TRUE(absl::IsFailedPrecondition(
      m.Acquire({.snapshot = "web", .volumes = {{"db", "/data"}}}).status()));
}

}  // namespace
}  // namespace supermachine::vm
