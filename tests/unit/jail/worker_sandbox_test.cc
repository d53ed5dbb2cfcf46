// File: worker_sandbox_test.cc
// The real worker binary under its sandbox with tiny hand-written guests (they run on PVM hosts
// too): a guest runs to its end under --seccomp=on, and a snapshot → restore → snapshot cycle
// through the control socket works with the filter and the jail (own namespaces, pivot_root,
// uid/gid 65534) — the run-time paths the allowlist and the jail's bind mounts must cover.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_control.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine::jail {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class WorkerSandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access("/dev/kvm", R_OK | W_OK), 0) << "these tests need /dev/kvm (PVM is enough)";
    ASSERT_EQ(geteuid(), 0u) << "the jail needs root (CI runs unit tests as root)";
    // The VM's directory: the jail binds it (it holds the control socket) and hands it to
    // the VM's uid.
    vm_dir_ = dir_.Join("vm");
    ASSERT_EQ(mkdir(vm_dir_.c_str(), 0755), 0);
  }
  void Start(std::vector<std::string> args) {
    args.insert(args.begin(), SM_WORKER_BIN);
    err_ = base::UniqueFd(
        open(dir_.Join("stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    // No SM_WORKER_SECCOMP from the caller's environment: each test says what it runs under.
    // In the ASan build, LeakSanitizer's exit-time check needs prctl and ptrace, which the
    // filter refuses (docs/seccomp.md): leak checking is off for these filtered workers.
    auto child = base::ChildProcess::Spawn(
        {.argv = args,
         .env = std::vector<std::string>{"PATH=/usr/bin:/bin", "ASAN_OPTIONS=detect_leaks=0"},
         .stderr_fd = err_.get()});
    ASSERT_TRUE(child.ok()) << child.status();
    child_.emplace(std::move(*child));
  }
  std::string Finish() {
    auto st = child_->WaitFor(absl::Seconds(60));
    EXPECT_TRUE(st.ok()) << st.status();
    const std::string err = test_support::ReadFileOrDie(dir_.Join("stderr"));
    return (st.ok() ? st->ToString() : "still running") + "; stderr: " + err;
  }
  static std::string Command(const std::string& control, const std::string& line) {
    return test_support::WorkerCommand(control, line);
  }

  test_support::TempDir dir_;
  std::string vm_dir_;
  base::UniqueFd err_;
  std::optional<base::ChildProcess> child_;
};

TEST_F(WorkerSandbox, TinyGuestRunsToItsEndUnderTheFilter) {
  testing::WriteBytes(dir_.Join("kernel"),
                      testing::MakeElfKernel(testing::PrintOkAndResetCode(), 0x1000000, true));
  Start({"--seccomp=on", "--kernel", dir_.Join("kernel"), "--mem-mib", "64", "--serial",
         "file:" + dir_.Join("serial")});
  // Exit 4: the guest's own i8042 reset, reached only if every vCPU and event-loop call the
  // run needed passed the filter.
  EXPECT_THAT(Finish(), StartsWith("exited 4"));
  EXPECT_EQ(test_support::ReadFileOrDie(dir_.Join("serial")), "OK\n");
}

// The pid, in its own (innermost) PID namespace, of `keeper`'s only child: the last field of
// the child's NSpid line. "" when `keeper` has not exactly one child.
std::string NamespacePidOfOnlyChild(int keeper) {
  std::ifstream children(absl::StrCat("/proc/", keeper, "/task/", keeper, "/children"));
  std::vector<std::string> pids;
  std::string pid;
  while (children >> pid) {
    pids.push_back(pid);
  }
  if (pids.size() != 1) {
    return "";
  }
  std::ifstream status("/proc/" + pids[0] + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("NSpid:", 0) == 0) {
      return line.substr(line.find_last_of(" \t") + 1);
    }
  }
  return "";
}

TEST_F(WorkerSandbox, SnapshotAndRestoreUnderTheFilterAndTheJail) {
  testing::WriteBytes(dir_.Join("kernel"),
                      testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, true));  // jmp $
  const std::vector<std::string> sandbox = {"--seccomp=on", "--jail-dir", dir_.Join("jail"),
                                            "--uid=65534", "--gid=65534"};
  std::vector<std::string> boot = sandbox;
  for (const char* a : {"--mem-mib", "64", "--serial", "none"}) {
    boot.push_back(a);
  }
  boot.insert(boot.end(), {"--kernel", dir_.Join("kernel"), "--control", vm_dir_ + "/c1",
                           "--vsock", vm_dir_ + "/vsock"});
  Start(boot);
  EXPECT_THAT(Command(vm_dir_ + "/c1", "snapshot " + vm_dir_ + "/snap"),
              StartsWith("OK snapshot"));
  EXPECT_EQ(Command(vm_dir_ + "/c1", "exit"), "OK exiting");
  EXPECT_THAT(Finish(), StartsWith("exited 6"));
  // Written by the jailed worker as its uid, into the host's directory.
  struct stat st {};
  ASSERT_EQ(stat((vm_dir_ + "/snap/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);

  // Restored as the daemon starts workers: filter, jail and uid.
  std::vector<std::string> restore = sandbox;
  restore.insert(restore.end(), {"--restore", vm_dir_ + "/snap", "--serial", "none",
                                 "--control", vm_dir_ + "/c2", "--vsock", vm_dir_ + "/vsock"});
  Start(restore);
  EXPECT_EQ(Command(vm_dir_ + "/c2", "pause"), "OK paused");
  // The VMM that answered is PID 1 of its own PID namespace, the only child of the process
  // started.
  EXPECT_EQ(NamespacePidOfOnlyChild(child_->pid()), "1");
  EXPECT_EQ(Command(vm_dir_ + "/c2", "resume"), "OK resumed");
  EXPECT_EQ(Command(vm_dir_ + "/c2", "exit"), "OK exiting");
  std::string end = Finish();
  EXPECT_THAT(end, StartsWith("exited 6"));
  EXPECT_THAT(end, HasSubstr("stopped by the control socket"));

  // A restored VM's snapshot reads /proc/self/pagemap, which a worker that switched uid
  // cannot open (it is not dumpable, on purpose: docs/security.md); in the jail as root
  // without capabilities it works, through the filter.
  // (A fresh VM directory: the one above now belongs to uid 65534, and root without
  // CAP_DAC_OVERRIDE may not write into it.)
  const std::string vm2 = dir_.Join("vm2");
  ASSERT_EQ(mkdir(vm2.c_str(), 0755), 0);
  Start({"--seccomp=on", "--jail-dir", dir_.Join("jail"), "--restore", vm_dir_ + "/snap",
         "--serial", "none", "--control", vm2 + "/c3", "--vsock", vm2 + "/vsock"});
  EXPECT_THAT(Command(vm2 + "/c3", "snapshot " + vm2 + "/snap2"), StartsWith("OK snapshot"));
  EXPECT_EQ(Command(vm2 + "/c3", "exit"), "OK exiting");
  end = Finish();
  EXPECT_THAT(end, StartsWith("exited 6"));
}

}  // namespace
}  // namespace supermachine::jail
