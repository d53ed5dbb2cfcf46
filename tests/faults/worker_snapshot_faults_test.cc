// File: worker_snapshot_faults_test.cc
// Faults at the worker's snapshot and restore (issue #11), with the real supermachine-worker
// and a tiny guest that dirties 128 MiB of its RAM (so a snapshot has real data to write and
// takes long enough to be interrupted), natively on /dev/kvm (PVM is enough):
//   - the disk fills up mid-snapshot: the command fails naming ENOSPC, no file of the failed
//     snapshot is left, and the VM runs on (resume, snapshot elsewhere, restore);
//   - kill -9 mid-snapshot: the directory never holds a `state` file (what makes a directory
//     a snapshot: memory is written first, state last), and a restore from it fails clearly;
//   - kill -9 mid-restore, at several points: the snapshot's files are bit-for-bit unchanged
//     (guest RAM is a private mapping) and the next restore works.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/private_tmpfs.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_guest.h"
#include "tests/support/worker_control.h"
#include "worker/base/child_process.h"
#include "worker/snapshot/guest_identity.h"

namespace supermachine::faults {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kGuestMib = 256;

// 32-bit PVH entry code: write one byte into each 4 KiB page of the 128 MiB from 32 MiB up
// (a non-zero page is saved whole, so the snapshot has 128 MiB of data; one store per page
// rather than `rep stosb`, which costs minutes under a software-assisted /dev/kvm), write 'D'
// to COM1, spin.
std::vector<uint8_t> DirtyRamKernelCode() {
  return {0xbf, 0x00, 0x00, 0x00, 0x02,        // mov edi, 0x02000000
          0xb9, 0x00, 0x80, 0x00, 0x00,        // mov ecx, 32768 (pages)
          0xc6, 0x07, 0xaa,                    // loop: mov byte [edi], 0xaa
          0x81, 0xc7, 0x00, 0x10, 0x00, 0x00,  //   add edi, 4096
          0x49,                                //   dec ecx
          0x75, 0xf4,                          //   jnz loop
          0x66, 0xba, 0xf8, 0x03,              // mov dx, 0x3f8
          0xb0, 'D',                           // mov al, 'D'
          0xee,                                // out dx, al
          0xeb, 0xfe};                         // jmp $
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

class WorkerSnapshotFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/dev/kvm", R_OK | W_OK), 0) << "these tests need /dev/kvm (PVM is enough)";
    workers_.WriteKernel(DirtyRamKernelCode());
  }

  // Boots the guest as `name` and waits until it has dirtied its RAM.
  base::ChildProcess BootDirtyGuest(const std::string& name) {
    base::ChildProcess w = workers_.Boot(name, kGuestMib, "D");
    EXPECT_THAT(workers_.Serial(name), HasSubstr("D"))
        << "the guest did not finish dirtying its RAM";
    return w;
  }

  std::string Control(const std::string& name) const { return workers_.ControlPath(name); }

  base::ChildProcess SpawnRestore(const std::string& snap, const std::string& name) {
    return workers_.Spawn({"--restore", snap, "--serial", "none", "--control", Control(name)},
                          name);
  }

  // A good snapshot at `snap` of a guest whose RAM is dirty.
  void TakeSnapshot(const std::string& snap) {
    base::ChildProcess w = BootDirtyGuest("source");
    ASSERT_THAT(test_support::WorkerCommand(Control("source"), "snapshot " + snap),
                StartsWith("OK snapshot"));
    EXPECT_EQ(test_support::WorkerCommand(Control("source"), "exit"), "OK exiting");
    auto end = w.WaitFor(absl::Minutes(1));
    ASSERT_TRUE(end.ok()) << end.status();
  }

  // Restores `snap`; returns the reply to `pause` ("OK paused" when it runs), then stops it.
  std::string RestoreAndPause(const std::string& snap, const std::string& name) {
    base::ChildProcess w = SpawnRestore(snap, name);
    const std::string reply = test_support::WorkerCommand(Control(name), "pause", 60000);
    test_support::WorkerCommand(Control(name), "exit", 1000);
    auto end = w.WaitFor(absl::Minutes(1));
    EXPECT_TRUE(end.ok()) << end.status();
    return reply + "; stderr: " + workers_.Stderr(name);
  }

  // Restores `snap` expecting the worker to refuse: returns how it ended and its stderr.
  std::string RestoreExpectingRefusal(const std::string& snap, const std::string& name) {
    base::ChildProcess w = SpawnRestore(snap, name);
    auto end = w.WaitFor(absl::Minutes(1));
    return (end.ok() ? end->ToString() : "still running") + "; stderr: " +
           workers_.Stderr(name);
  }

  test_support::TempDir dir_;
  test_support::TinyGuestWorkers workers_{SM_WORKER_BIN, dir_.path()};
};

TEST_F(WorkerSnapshotFaults, AFullDiskFailsTheSnapshotCleanlyAndTheVmRunsOn) {
  ASSERT_EQ(geteuid(), 0u) << "the size-limited tmpfs needs root (CI runs fault tests as root)";
  // 16 MiB for a snapshot with 128 MiB of data: the memory file cannot fit.
  auto disk = PrivateTmpfs::Mount(dir_.Join("small"), 16u << 20);
  ASSERT_TRUE(disk.ok()) << disk.status();
  base::ChildProcess w = BootDirtyGuest("vm");
  const std::string full = dir_.Join("small/snap");
  const std::string reply = test_support::WorkerCommand(Control("vm"), "snapshot " + full);
  EXPECT_THAT(reply, StartsWith("ERR"));
  EXPECT_THAT(reply, HasSubstr("No space left on device"));
  // Nothing of the failed snapshot remains: no state (so no one mistakes it for a snapshot),
  // no memory file and no temp file filling the disk.
  EXPECT_THAT(test_support::ListDir(full), ::testing::IsEmpty());

  // The VM is intact: it resumes, and a snapshot where there is room restores.
  EXPECT_EQ(test_support::WorkerCommand(Control("vm"), "resume"), "OK resumed");
  const std::string good = dir_.Join("good");
  EXPECT_THAT(test_support::WorkerCommand(Control("vm"), "snapshot " + good),
              StartsWith("OK snapshot"));
  EXPECT_EQ(test_support::WorkerCommand(Control("vm"), "exit"), "OK exiting");
  ASSERT_TRUE(w.WaitFor(absl::Minutes(1)).ok());
  EXPECT_THAT(RestoreAndPause(good, "restored"), StartsWith("OK paused"));
}

TEST_F(WorkerSnapshotFaults, KillDuringSnapshotLeavesNoStateFile) {
  // Kill as soon as the memory file's temp name appears: mid-write. Should the whole write
  // slip between two polls, the attempt proves nothing and is repeated.
  bool caught = false;
  for (int attempt = 0; attempt < 5 && !caught; ++attempt) {
    const std::string snap = dir_.Join("snap" + std::to_string(attempt));
    base::ChildProcess w = BootDirtyGuest("vm" + std::to_string(attempt));
    // The command runs on the worker's event loop; its reply is not awaited (the worker dies).
    std::thread command([&] {
      test_support::WorkerCommand(Control("vm" + std::to_string(attempt)), "snapshot " + snap);
    });
    const absl::Time deadline = absl::Now() + absl::Minutes(1);
    bool mid_write = false;
    while (!mid_write && absl::Now() < deadline && !Exists(snap + "/state")) {
      for (const std::string& n : test_support::ListDir(snap)) {
        mid_write = mid_write || absl::StartsWith(n, "memory.tmp.");
      }
    }
    ASSERT_TRUE(w.Signal(SIGKILL).ok());
    auto end = w.WaitFor(absl::Minutes(1));
    ASSERT_TRUE(end.ok()) << end.status();
    command.join();
    if (!mid_write || Exists(snap + "/memory")) {
      continue;  // Not caught in the memory write; try again.
    }
    caught = true;
    // The directory is not a snapshot, and a restore says so instead of booting garbage.
    EXPECT_FALSE(Exists(snap + "/state"));
    const std::string restore =
        RestoreExpectingRefusal(snap, "restore" + std::to_string(attempt));
    EXPECT_THAT(restore, StartsWith("exited ")) << restore;
    EXPECT_THAT(restore, ::testing::Not(StartsWith("exited 0"))) << restore;
    EXPECT_THAT(restore, HasSubstr("state")) << restore;
  }
  EXPECT_TRUE(caught) << "five snapshots of 128 MiB all finished between two directory polls";
}

TEST_F(WorkerSnapshotFaults, KillDuringRestoreLeavesTheSnapshotIntact) {
  const std::string snap = dir_.Join("snap");
  TakeSnapshot(snap);
  auto state_before = snapshot::Sha256OfFile(snap + "/state");
  auto memory_before = snapshot::Sha256OfFile(snap + "/memory");
  ASSERT_TRUE(state_before.ok() && memory_before.ok());
  const std::vector<std::string> files_before = test_support::ListDir(snap);

  // From "just spawned" to "running", killed each time.
  for (int delay_ms : {0, 2, 10, 50, 200}) {
    const std::string name = "kill" + std::to_string(delay_ms);
    base::ChildProcess w = SpawnRestore(snap, name);
    absl::SleepFor(absl::Milliseconds(delay_ms));
    ASSERT_TRUE(w.Signal(SIGKILL).ok());
    ASSERT_TRUE(w.WaitFor(absl::Minutes(1)).ok());
  }
  EXPECT_EQ(*snapshot::Sha256OfFile(snap + "/state"), *state_before);
  EXPECT_EQ(*snapshot::Sha256OfFile(snap + "/memory"), *memory_before);
  EXPECT_EQ(test_support::ListDir(snap), files_before);
  EXPECT_THAT(RestoreAndPause(snap, "after"), StartsWith("OK paused"));
}

}  // namespace
}  // namespace supermachine::faults
