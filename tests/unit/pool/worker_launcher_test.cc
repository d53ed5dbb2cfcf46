// File: worker_launcher_test.cc
// The pieces of the worker launcher that need no KVM: the /proc start time used to tell pid
// reuse apart, log tails for error messages, and a worker that fails at once is reported with
// its log and journaled as ended. (The real restore runs in tests/lab/daemon.)
#include "daemon/vm/worker_launcher.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

TEST(ProcessStartTimeTest, OwnProcessHasAStableStartTime) {
  absl::StatusOr<int64_t> a = ProcessStartTime(::getpid());
  absl::StatusOr<int64_t> b = ProcessStartTime(::getpid());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GT(*a, 0);
  EXPECT_EQ(*a, *b);
  EXPECT_TRUE(absl::IsNotFound(ProcessStartTime(0x7ffffff0).status()));
}

TEST(FileTailTest, KeepsTheEnd) {
  std::string path = ::testing::TempDir() + "/tail.txt";
  std::ofstream(path) << "0123456789";
  EXPECT_EQ(FileTail(path, 4), "6789");
  EXPECT_EQ(FileTail(path, 100), "0123456789");
  EXPECT_EQ(FileTail(path + ".missing", 4), "");
}

TEST(WorkerLauncherTest, WorkerThatExitsAtOnceIsReportedWithItsLogAndEnded) {
  std::string dir = ::testing::TempDir() + "/wl";
  std::filesystem::create_directories(dir);
  // A stand-in worker that complains and exits 2, as a refused restore does.
  std::string fake = dir + "/fake-worker.sh";
  std::ofstream(fake) << "#!/bin/sh\necho \"restore $2: snapshot format 9.0\" >&2\nexit 2\n";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  testing::FakeJournal journal;
  WorkerLauncher launcher({.worker_binary = fake, .runtime_dir = dir, .journal = &journal});
  absl::StatusOr<std::unique_ptr<VmInstance>> vm = launcher.Launch(
      {.vm_id = "abc", .snapshot_name = "s", .snapshot_dir = "/snaps/s"},
      absl::Now() + absl::Seconds(10));
  ASSERT_FALSE(vm.ok());
  EXPECT_THAT(vm.status().message(), HasSubstr("exited during restore"));
  EXPECT_THAT(vm.status().message(), HasSubstr("snapshot format 9.0"));
  EXPECT_EQ(journal.EndOf("abc"), store::EndCause::kSnapshotIncompatible) << "exit 2: refused";
  EXPECT_FALSE(std::filesystem::exists(dir + "/abc/vsock"));
}

}  // namespace
}  // namespace supermachine::vm
