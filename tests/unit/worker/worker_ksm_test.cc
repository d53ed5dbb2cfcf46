// File: worker_ksm_test.cc
// --ksm through the real supermachine-worker: a tiny guest is booted and snapshotted, then
// restored with and without --ksm; the restored guest RAM (the snapshot's `memory` file,
// mapped privately) carries the `mg` (VM_MERGEABLE) flag in /proc/<pid>/smaps only with it.
// Needs /dev/kvm (PVM is enough); whether ksmd runs (/sys/kernel/mm/ksm/run) does not matter.
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_guest.h"
#include "tests/support/worker_control.h"
#include "worker/base/child_process.h"

namespace supermachine {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// mov dx,0x3f8; mov al,'R'; out dx,al; jmp $ — says it runs, then spins until stopped.
std::vector<uint8_t> PrintAndSpinCode() {
  return {0x66, 0xba, 0xf8, 0x03, 0xb0, 'R', 0xee, 0xeb, 0xfe};
}

// The VmFlags of the mappings of `file` in /proc/<pid>/smaps (one entry per mapping).
std::vector<std::string> VmFlagsOfMappingsOf(int pid, const std::string& file) {
  std::vector<std::string> out;
  std::istringstream smaps(test_support::ReadFileIfThere("/proc/" + std::to_string(pid) + "/smaps"));
  std::string line;
  bool in_file = false;
  while (std::getline(smaps, line)) {
    if (absl::StartsWith(line, "VmFlags:")) {
      if (in_file) {
        out.push_back(line.substr(8));
      }
      continue;
    }
    // A mapping's header: "start-end perms offset dev inode [path]"; other lines are "Key: n kB".
    const std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() >= 5 && f[0].find('-') != std::string::npos && f[1].size() == 4) {
      in_file = f.size() >= 6 && f[5] == file;
    }
  }
  return out;
}

class WorkerKsm : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/dev/kvm", R_OK | W_OK), 0) << "these tests need /dev/kvm (PVM is enough)";
    workers_.WriteKernel(PrintAndSpinCode());
    snapshot_ = dir_.Join("snap");
    base::ChildProcess w = workers_.Boot("boot", 64, "R");
    ASSERT_EQ(workers_.Serial("boot"), "R") << "the tiny guest did not run";
    const std::vector<std::string> replies = test_support::WorkerCommands(
        workers_.ControlPath("boot"), {"snapshot " + snapshot_, "exit"});
    ASSERT_EQ(replies.size(), 2u);
    ASSERT_THAT(replies[0], StartsWith("OK snapshot"));
    ASSERT_TRUE(w.WaitFor(absl::Minutes(1)).ok());
  }

  // Restores the snapshot (with `extra` flags); once it answers on its control socket (its
  // RAM is mapped by then), returns the VmFlags of its RAM file mappings, then stops it.
  std::vector<std::string> RestoredRamFlags(const std::vector<std::string>& extra,
                                            const std::string& name) {
    std::vector<std::string> args = {"--restore", snapshot_, "--serial", "none", "--control",
                                     workers_.ControlPath(name)};
    args.insert(args.end(), extra.begin(), extra.end());
    base::ChildProcess w = workers_.Spawn(args, name);
    EXPECT_EQ(test_support::WorkerCommand(workers_.ControlPath(name), "pause", 60000), "OK paused")
        << workers_.Stderr(name);
    std::vector<std::string> flags = VmFlagsOfMappingsOf(w.pid(), snapshot_ + "/memory");
    test_support::WorkerCommand(workers_.ControlPath(name), "exit", 1000);
    EXPECT_TRUE(w.WaitFor(absl::Minutes(1)).ok());
    return flags;
  }

  test_support::TempDir dir_;
  test_support::TinyGuestWorkers workers_{SM_WORKER_BIN, dir_.path()};
  std::string snapshot_;
};

TEST_F(WorkerKsm, RestoredRamIsMergeableWithKsm) {
  const std::vector<std::string> flags = RestoredRamFlags({"--ksm"}, "ksm");
  ASSERT_FALSE(flags.empty()) << "no mapping of " << snapshot_ << "/memory in smaps";
  for (const std::string& f : flags) {
    EXPECT_THAT(f, HasSubstr(" mg")) << "VmFlags:" << f;
  }
}

TEST_F(WorkerKsm, RestoredRamIsNotMergeableByDefault) {
  const std::vector<std::string> flags = RestoredRamFlags({}, "plain");
  ASSERT_FALSE(flags.empty()) << "no mapping of " << snapshot_ << "/memory in smaps";
  for (const std::string& f : flags) {
    EXPECT_THAT(f, ::testing::Not(HasSubstr(" mg"))) << "VmFlags:" << f;
  }
}

}  // namespace
}  // namespace supermachine
