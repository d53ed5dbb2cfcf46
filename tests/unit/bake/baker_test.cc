// Baker pipeline logic without KVM or a registry: a fake ImageFetcher and a fake VmBooter
// (which writes a fake snapshot) stand in for the image pipeline and the worker; the delta
// builder, keys, metadata, temp dir + rename and the store are the real ones.
#include "daemon/bake/baker.h"

#include <dirent.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "daemon/bake/gc.h"
#include "daemon/bake/volume_image.h"
#include "daemon/bake/worker_booter.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::supermachine::test_support::TempDir;

void WriteFile(const std::string& path, const std::string& data) { std::ofstream(path) << data; }

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

class FakeFetcher : public ImageFetcher {
 public:
  std::string CachedDigest(const std::string&) override { return cached_digest; }
  absl::StatusOr<ResolvedLayers> Fetch(const BakeRequest&, const ProgressFn&) override {
    ++fetches;
    if (!error.ok()) {
      return error;
    }
    return layers;
  }
  std::string cached_digest = "sha256:" + std::string(64, 'c');
  ResolvedLayers layers;
  absl::Status error;
  int fetches = 0;
};

class FakeBooter : public VmBooter {
 public:
  absl::StatusOr<BootTimings> BootAndSnapshot(const BootPlan& plan, const ProgressFn&) override {
    ++boots;
    last_plan = plan;
    if (during_boot) {
      during_boot(plan);
    }
    if (!error.ok()) {
      return error;
    }
    WriteFile(plan.out_dir + "/state", "state");
    WriteFile(plan.out_dir + "/memory", "memory");
    return BootTimings{.boot_ms = 10, .ready_ms = 20, .snapshot_ms = 30, .agent_version = "0.1.0"};
  }
  absl::Status error;
  std::atomic<int> boots{0};
  BootPlan last_plan;
  std::function<void(const BootPlan&)> during_boot;
};

class BakerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"vmlinux", "agent", "worker", "l0.sqfs"}) {
      WriteFile(dir_.Join(f), f);
    }
    auto s = store::Store::Open(dir_.Join("store.db"), [] { return int64_t{1000}; });
    ASSERT_TRUE(s.ok()) << s.status();
    store_.emplace(std::move(*s));
    fetcher_->layers.image_digest = "sha256:" + std::string(64, 'd');
    fetcher_->layers.config.cmd = std::vector<std::string>{"/bin/httpd", "-f", "-p", "80"};
    fetcher_->layers.layer_digests = {"sha256:" + std::string(64, '1')};
    fetcher_->layers.sqfs_paths = {dir_.Join("l0.sqfs")};
    fetcher_->layers.sqfs_sizes = {7};
    request_.image = "localhost:5000/httpd:1";
    request_.guest_port = 80;
  }

  absl::StatusOr<std::unique_ptr<Baker>> MakeBaker() {
    return Baker::Create({.with_store = LockedStoreAccess(&*store_, &mu_),
                          .state_dir = dir_.Join("state"),
                          .kernel_path = dir_.Join("vmlinux"),
                          .agent_path = dir_.Join("agent"),
                          .worker_path = dir_.Join("worker"),
                          .mke2fs_path = mke2fs_,
                          .fetcher = fetcher_,
                          .booter = booter_});
  }

  std::string Snapshots() { return dir_.Join("state") + "/snapshots"; }

  TempDir dir_;
  absl::Mutex mu_;
  std::optional<store::Store> store_;
  std::shared_ptr<FakeFetcher> fetcher_ = std::make_shared<FakeFetcher>();
  std::shared_ptr<FakeBooter> booter_ = std::make_shared<FakeBooter>();
  BakeRequest request_;
  std::string mke2fs_ = "mke2fs";
};

TEST_F(BakerTest, FirstBakeBootsAndLeavesSnapshotMetadataAndRows) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok()) << baker.status();
  std::vector<BakeProgress::Stage> stages;
  auto r = (*baker)->Bake(request_, [&](const BakeProgress& p) { stages.push_back(p.stage); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->cache_hit);
  EXPECT_EQ(r->hit_kind, "none");
  EXPECT_EQ(r->snapshot_name, "localhost_5000_httpd_1");
  EXPECT_EQ(r->snapshot_dir, Snapshots() + "/localhost_5000_httpd_1");
  EXPECT_EQ(booter_->boots, 1);
  EXPECT_EQ(booter_->last_plan.layer_sqfs, fetcher_->layers.sqfs_paths);
  EXPECT_EQ(booter_->last_plan.readiness.mode, Readiness::Mode::kListener);

  auto md = ReadMetadata(r->snapshot_dir);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->launch.argv, (std::vector<std::string>{"/bin/httpd", "-f", "-p", "80"}));
  EXPECT_EQ(md->timings.boot_ms, 10u);
  EXPECT_EQ(md->agent_version, "0.1.0");
  EXPECT_EQ(md->guest_port, 80u);
  // Only the snapshot (no temp dir, nothing aside).
  EXPECT_EQ(Entries(Snapshots()), std::vector<std::string>{"localhost_5000_httpd_1"});

  auto snap = store_->GetSnapshot("localhost_5000_httpd_1");
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->bake_key, md->bake_key.ToString());
  EXPECT_EQ(snap->cheap_key, md->cheap_key.ToString());
  EXPECT_EQ(snap->layer_digests, fetcher_->layers.layer_digests);
  auto bake = store_->GetBake(r->bake_id);
  ASSERT_TRUE(bake.ok());
  EXPECT_EQ(bake->status, "succeeded");
  EXPECT_EQ(bake->delta_key, md->delta_key.ToString());
  EXPECT_EQ(stages.back(), BakeProgress::Stage::kDone);
}

TEST_F(BakerTest, SameRequestAgainIsACheapHitWithoutPullOrBoot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  auto again = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->cache_hit);
  EXPECT_EQ(again->hit_kind, "cheap");
  EXPECT_EQ(fetcher_->fetches, 1);
  EXPECT_EQ(booter_->boots, 1);
}

TEST_F(BakerTest, UnknownRefDigestSkipsTheCheapTierButHitsTheFullKey) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  fetcher_->cached_digest = "";
  auto again = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->hit_kind, "full");
  EXPECT_EQ(fetcher_->fetches, 2);
  EXPECT_EQ(booter_->boots, 1);
}

TEST_F(BakerTest, PullPolicyAlwaysResolvesAgainButReusesTheSnapshot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  request_.pull_policy = image::PullPolicy::kAlways;
  auto again = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->hit_kind, "full");
  EXPECT_EQ(fetcher_->fetches, 2);
  EXPECT_EQ(booter_->boots, 1);
}

TEST_F(BakerTest, AnotherSnapshotsDirIsNotAHit) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  request_.snapshots_dir = dir_.Join("elsewhere");
  auto r = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->cache_hit);
  EXPECT_EQ(r->snapshot_dir, dir_.Join("elsewhere") + "/localhost_5000_httpd_1");
  EXPECT_EQ(booter_->boots, 2);
}

TEST_F(BakerTest, ChangedCmdBakesAgainAndReplacesTheSnapshot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  auto first = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(first.ok());
  request_.cmd = std::vector<std::string>{"/bin/httpd", "-f", "-p", "8080"};
  auto second = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->cache_hit);
  EXPECT_EQ(booter_->boots, 2);
  EXPECT_NE(second->metadata.bake_key, first->metadata.bake_key);
  EXPECT_EQ(ReadMetadata(second->snapshot_dir)->launch.argv.back(), "8080");
  EXPECT_EQ(Entries(Snapshots()), std::vector<std::string>{"localhost_5000_httpd_1"});
}

TEST_F(BakerTest, WorkloadExitingEarlyFailsWithItsOutputAndLeavesNoSnapshot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  booter_->error = absl::FailedPreconditionError(
      "the workload exited 1 before it was ready\n--- last 50 lines ---\nhttpd: bind: in use");
  auto r = (*baker)->Bake(request_, nullptr);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "httpd: bind: in use"));
  EXPECT_TRUE(Entries(Snapshots()).empty());
  EXPECT_EQ(store_->GetSnapshot("localhost_5000_httpd_1").status().code(),
            absl::StatusCode::kNotFound);
  auto bakes = store_->RecoverInterruptedBakes();  // none left running
  ASSERT_TRUE(bakes.ok());
  EXPECT_TRUE(bakes->empty());
}

TEST_F(BakerTest, FailedRebakeKeepsTheOldSnapshot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  request_.cmd = std::vector<std::string>{"/bin/false"};
  booter_->error = absl::DeadlineExceededError("no listener on guest port 80 appeared");
  auto r = (*baker)->Bake(request_, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  auto md = ReadMetadata(Snapshots() + "/localhost_5000_httpd_1");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->launch.argv.front(), "/bin/httpd");
  EXPECT_EQ(Entries(Snapshots()).size(), 1u);
}

TEST_F(BakerTest, InvalidRequestFailsBeforePullingAndRecordsAFailedRow) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  request_.hostname = "Bad_Host";
  auto r = (*baker)->Bake(request_, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "Bad_Host"));
  EXPECT_EQ(fetcher_->fetches, 0);
  auto bake = store_->GetBake(1);
  ASSERT_TRUE(bake.ok());
  EXPECT_EQ(bake->status, "failed");
  EXPECT_TRUE(absl::StrContains(bake->error, "Bad_Host"));
}

TEST_F(BakerTest, ImageErrorsKeepTheirCode) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  fetcher_->error = absl::NotFoundError("manifest unknown: localhost:5000/httpd:1");
  auto r = (*baker)->Bake(request_, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(booter_->boots, 0);
}

TEST_F(BakerTest, MissingKernelIsRefusedAtCreate) {
  ASSERT_EQ(::unlink(dir_.Join("vmlinux").c_str()), 0);
  auto baker = MakeBaker();
  EXPECT_EQ(baker.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(baker.status().message(), "kernel"));
}

TEST_F(BakerTest, CreateMarksInterruptedBakesFailedAndRemovesTheirTempDirs) {
  const std::string tmp = Snapshots() + "/.tmp-bake-1-2-3";
  ASSERT_EQ(::system(("mkdir -p '" + tmp + "' && touch '" + tmp + "/memory'").c_str()), 0);
  auto id = store_->BeginBake("", "{}", tmp);
  ASSERT_TRUE(id.ok());
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok()) << baker.status();
  EXPECT_EQ(store_->GetBake(*id)->status, "failed");
  EXPECT_TRUE(Entries(Snapshots()).empty());
}

TEST_F(BakerTest, VolumesAreExt4ImagesAttachedToTheParkedBootAndRecorded) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  request_.volumes = {*ParseVolume("data:/var/data:16M"), *ParseVolume("logs:/logs:32M")};
  request_.user = "1000:100";
  std::vector<absl::Status> seen;
  booter_->during_boot = [&](const BootPlan& plan) {
    for (size_t i = 0; i < plan.volume_images.size(); ++i) {
      seen.push_back(CheckExt4Image(plan.volume_images[i], request_.volumes[i].name));
    }
  };
  auto r = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  // Volumes imply parked: the agent holds the workload, the images wait in the temp dir.
  EXPECT_EQ(booter_->last_plan.readiness.mode, Readiness::Mode::kParked);
  ASSERT_EQ(booter_->last_plan.volume_images.size(), 2u);
  EXPECT_TRUE(absl::EndsWith(booter_->last_plan.volume_images[0], "/volumes/data.img"));
  EXPECT_TRUE(absl::EndsWith(booter_->last_plan.volume_images[1], "/volumes/logs.img"));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].ok()) << seen[0];
  EXPECT_TRUE(seen[1].ok()) << seen[1];
  // Renamed into place with the snapshot.
  EXPECT_TRUE(CheckExt4Image(r->snapshot_dir + "/volumes/data.img", "data").ok());
  EXPECT_TRUE(CheckExt4Image(r->snapshot_dir + "/volumes/logs.img", "logs").ok());
  auto md = ReadMetadata(r->snapshot_dir);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->volumes, request_.volumes);
  std::ifstream in(r->snapshot_dir + "/metadata.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["volumes"][0]["image"], "volumes/data.img") << text;
  EXPECT_EQ(j["volumes"][1]["disk_id"], "v1") << text;
  EXPECT_EQ(Entries(Snapshots()), std::vector<std::string>{r->snapshot_name});
}

TEST_F(BakerTest, ParkedDeltaHoldsTheWorkloadAndListenerDeltaDoesNot) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  auto listener = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(listener.ok()) << listener.status();
  request_.readiness = *ParseReadiness("parked");
  auto parked = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(parked.ok()) << parked.status();
  EXPECT_NE(parked->metadata.delta_key, listener->metadata.delta_key);
  EXPECT_EQ(booter_->boots, 2);
}

TEST_F(BakerTest, FailingMke2fsFailsTheBakeAndLeavesNoSnapshot) {
  mke2fs_ = "/bin/false";
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  request_.volumes = {*ParseVolume("data:/data:16M")};
  auto r = (*baker)->Bake(request_, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "volume 'data'")) << r.status();
  EXPECT_EQ(booter_->boots, 0);
  EXPECT_TRUE(Entries(Snapshots()).empty());
}

TEST_F(BakerTest, ConcurrentBakesOfOneNameDoNotOverlap) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  absl::Notification first_booting, release_first;
  std::atomic<int> in_boot{0}, max_in_boot{0};
  booter_->during_boot = [&](const BootPlan&) {
    const int now = ++in_boot;
    max_in_boot = std::max(max_in_boot.load(), now);
    if (!first_booting.HasBeenNotified()) {
      first_booting.Notify();
      release_first.WaitForNotification();
    }
    --in_boot;
  };
  absl::StatusOr<BakeResult> first, second;
  std::thread t1([&] { first = (*baker)->Bake(request_, nullptr); });
  first_booting.WaitForNotification();
  std::atomic<bool> second_waiting{false};
  std::thread t2([&] {
    second = (*baker)->Bake(request_, [&](const BakeProgress& p) {
      if (absl::StrContains(p.message, "waiting for another bake")) {
        second_waiting = true;
      }
    });
  });
  for (int i = 0; i < 500 && !second_waiting; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(second_waiting) << "the second bake did not wait for the first";
  release_first.Notify();
  t1.join();
  t2.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(first->cache_hit);
  EXPECT_TRUE(second->cache_hit);  // it ran after the first and found its snapshot
  EXPECT_EQ(booter_->boots, 1);
  EXPECT_EQ(max_in_boot.load(), 1);
}

TEST_F(BakerTest, BakeWaitingForTheSameNameFailsAtItsDeadline) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  absl::Notification first_booting, release_first;
  booter_->during_boot = [&](const BootPlan&) {
    if (!first_booting.HasBeenNotified()) {
      first_booting.Notify();
      release_first.WaitForNotification();
    }
  };
  absl::StatusOr<BakeResult> first;
  std::thread t1([&] { first = (*baker)->Bake(request_, nullptr); });
  first_booting.WaitForNotification();
  auto second = (*baker)->Bake(request_, nullptr, absl::Now() + absl::Milliseconds(200));
  release_first.Notify();
  t1.join();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "another bake of snapshot"))
      << second.status();
  // Another name is not held up.
  ASSERT_TRUE(first.ok()) << first.status();
  request_.name = "other";
  EXPECT_TRUE((*baker)->Bake(request_, nullptr, absl::Now() + absl::Seconds(60)).ok());
}

TEST_F(BakerTest, GcRemovesTheDeltaAReBakeReplacedAndKeepsTheCurrentOne) {
  auto baker = MakeBaker();
  ASSERT_TRUE(baker.ok());
  ASSERT_TRUE((*baker)->Bake(request_, nullptr).ok());
  request_.cmd = std::vector<std::string>{"/bin/httpd", "-f", "-p", "8080"};
  auto second = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  const std::string deltas = dir_.Join("state") + "/bake/deltas";
  ASSERT_EQ(Entries(deltas).size(), 2u);
  auto report = (*baker)->Gc(/*dry_run=*/false);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->items.size(), 1u);
  EXPECT_EQ(report->items[0].kind, "delta");
  EXPECT_GT(report->bytes_freed, 0u);
  EXPECT_EQ(Entries(deltas),
            std::vector<std::string>{second->metadata.delta_key.hex() + "-l1.sqfs"});
  // The snapshot still bakes as a cache hit afterwards (its delta and layer are intact).
  auto again = (*baker)->Bake(request_, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->cache_hit);
}

TEST(FileTailTest, KeepsTheLastLines) {
  TempDir dir;
  std::string data;
  for (int i = 1; i <= 60; ++i) {
    data += "line " + std::to_string(i) + "\n";
  }
  WriteFile(dir.Join("console.log"), data);
  const std::string tail = FileTail(dir.Join("console.log"), 50);
  EXPECT_TRUE(absl::StartsWith(tail, "line 11\n"));
  EXPECT_TRUE(absl::EndsWith(tail, "line 60"));
  EXPECT_EQ(FileTail(dir.Join("missing"), 50), "");
}

}  // namespace
}  // namespace supermachine::bake
