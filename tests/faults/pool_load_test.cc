// File: pool_load_test.cc
// Load without guests: 1000 Acquire/Release cycles through the real VmManager and Pool (warm
// pool refills, a port forwarder listening per VM, journal calls) over the fake launcher of
// the pool unit tests. A leak per cycle of one fd or a few KiB shows as growth far beyond the
// slack. The numbers are printed for docs/faults.md.
#include <cstdio>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/vm/vm_manager.h"
#include "tests/faults/cache_check.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::faults {
namespace {

using vm::testing::FakeJournal;
using vm::testing::FakeLauncher;

constexpr int kCycles = 1000;
constexpr int kWarmup = 50;  // first allocations of every code path (arenas, thread stacks)
constexpr int kFdSlack = 2;
constexpr long kRssSlackKib = 4096;

TEST(PoolLoad, ThousandAcquireReleaseCyclesKeepFdsAndRssFlat) {
  FakeJournal journal;
  FakeLauncher launcher(&journal);
  auto manager = std::make_unique<vm::VmManager>(vm::VmManagerOptions{
      .launcher = &launcher,
      .journal = &journal,
      .resolve_snapshot = [](const std::string&) -> absl::StatusOr<std::string> {
        return std::string("/snapshots/snap");
      },
      .pools = {{"snap", vm::PoolConfig{.min = 2, .max = 4}}},
      .monitor_interval = absl::Milliseconds(5),
  });
  ASSERT_TRUE(manager->StartPools().ok());

  auto cycle = [&](int i) {
    absl::StatusOr<vm::VmView> view = manager->Acquire(
        {.snapshot = "snap", .name = "load", .ports = {{.host_port = 0, .guest_port = 8080}}});
    ASSERT_TRUE(view.ok()) << "cycle " << i << ": " << view.status();
    ASSERT_EQ(view->ports.size(), 1u);
    ASSERT_NE(view->ports[0].host_port, 0);
    ASSERT_TRUE(manager->Release(view->id).ok()) << "cycle " << i;
  };
  for (int i = 0; i < kWarmup; ++i) {
    ASSERT_NO_FATAL_FAILURE(cycle(i));
  }
  const int fds_before = OpenFdCount();
  const long rss_before = ResidentKib();
  for (int i = 0; i < kCycles; ++i) {
    ASSERT_NO_FATAL_FAILURE(cycle(i));
  }
  const int fds_after = OpenFdCount();
  const long rss_after = ResidentKib();
  std::printf("pool load: %d cycles: fds %d -> %d, RSS %ld -> %ld KiB, launches %d\n", kCycles,
              fds_before, fds_after, rss_before, rss_after, launcher.launches_.load());
  EXPECT_LE(fds_after - fds_before, kFdSlack);
  EXPECT_LE(rss_after - rss_before, kRssSlackKib);
  EXPECT_GE(launcher.launches_.load(), kCycles + kWarmup);
  // Every handed-out VM was journaled as ended.
  EXPECT_GE(journal.EndCount(), static_cast<size_t>(kCycles + kWarmup));
}

}  // namespace
}  // namespace supermachine::faults
