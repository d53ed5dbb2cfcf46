// File: worker_restore_cli_test.cc
// The worker binary's --restore and --control surface: errors a user sees for an unusable
// snapshot directory (exit 2, message naming the problem, no crash), and a snapshot → restore
// through the real binary and its control socket.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/worker_control.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct WorkerRun {
  base::ExitStatus exit;
  std::string err;
};

class WorkerRestoreCli : public ::testing::Test {
 protected:
  // Starts the worker; Finish() waits for it.
  void Start(std::vector<std::string> args) {
    args.insert(args.begin(), SM_WORKER_BIN);
    err_fd_ = base::UniqueFd(
        open(dir_.Join("stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto child = base::ChildProcess::Spawn({.argv = args, .stderr_fd = err_fd_.get()});
    ASSERT_TRUE(child.ok()) << child.status();
    child_.emplace(std::move(*child));
  }
  WorkerRun Finish() {
    auto st = child_->WaitFor(absl::Seconds(60));
    EXPECT_TRUE(st.ok()) << st.status();
    return WorkerRun{.exit = st.ok() ? *st : base::ExitStatus{}, .err = ReadAll(dir_.Join("stderr"))};
  }

  static std::string Command(const std::string& control, const std::string& line) {
    return test_support::WorkerCommand(control, line);
  }

  test_support::TempDir dir_;
  base::UniqueFd err_fd_;
  std::optional<base::ChildProcess> child_;
};

TEST_F(WorkerRestoreCli, MissingSnapshotDirectoryExitsTwoNamingTheStateFile) {
  Start({"--restore", dir_.Join("nope"), "--serial", "none"});

  WorkerRun r = Finish();

  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr("restore " + dir_.Join("nope")));
  EXPECT_THAT(r.err, HasSubstr(dir_.Join("nope") + "/state"));
}

TEST_F(WorkerRestoreCli, GarbageStateFileExitsTwoSayingItIsNotASnapshot) {
  test_support::WriteFileOrDie(dir_.Join("snap/state"), "hello, world");

  Start({"--restore", dir_.Join("snap"), "--serial", "none"});
  WorkerRun r = Finish();

  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr("not a supermachine snapshot state file"));
}

TEST_F(WorkerRestoreCli, SnapshotAndRestoreThroughTheBinary) {
  // A PVH guest that spins forever printing nothing: the control socket drives everything.
  testing::WriteBytes(dir_.Join("kernel"),
                      testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, true));  // jmp $
  Start({"--kernel", dir_.Join("kernel"), "--mem-mib", "64", "--no-rng", "--serial", "none",
         "--control", dir_.Join("c1")});
  EXPECT_THAT(Command(dir_.Join("c1"), "snapshot " + dir_.Join("snap")), StartsWith("OK snapshot"));
  EXPECT_EQ(Command(dir_.Join("c1"), "exit"), "OK exiting");
  EXPECT_EQ(Finish().exit.ToString(), "exited 6");

  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--control", dir_.Join("c2")});
  EXPECT_EQ(Command(dir_.Join("c2"), "pause"), "OK paused");
  EXPECT_EQ(Command(dir_.Join("c2"), "exit"), "OK exiting");
  WorkerRun r = Finish();

  EXPECT_EQ(r.exit.ToString(), "exited 6") << r.err;
  EXPECT_THAT(r.err, HasSubstr("stopped by the control socket"));
}

#ifdef SM_WORKER_STATIC_CRYPTO
// Every restored clone is a worker process: loading the shared libcrypto would cost each one
// ~400 KiB of private memory (worker/snapshot/sha256.h). The build links SHA-256 statically.
TEST_F(WorkerRestoreCli, RestoredWorkerDoesNotLoadSharedLibcrypto) {
  testing::WriteBytes(dir_.Join("kernel"), testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, true));
  Start({"--kernel", dir_.Join("kernel"), "--mem-mib", "64", "--no-rng", "--serial", "none",
         "--control", dir_.Join("c1")});
  ASSERT_THAT(Command(dir_.Join("c1"), "snapshot " + dir_.Join("snap")), StartsWith("OK snapshot"));
  EXPECT_EQ(Command(dir_.Join("c1"), "exit"), "OK exiting");
  EXPECT_EQ(Finish().exit.ToString(), "exited 6");

  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--control", dir_.Join("c2")});
  ASSERT_EQ(Command(dir_.Join("c2"), "pause"), "OK paused");  // Restored and running.
  const std::string maps = ReadAll("/proc/" + std::to_string(child_->pid()) + "/maps");
  EXPECT_EQ(Command(dir_.Join("c2"), "exit"), "OK exiting");
  EXPECT_EQ(Finish().exit.ToString(), "exited 6");

  EXPECT_THAT(maps, HasSubstr("supermachine-worker"));  // The right process was read.
  EXPECT_THAT(maps, ::testing::Not(HasSubstr("libcrypto")));
}
#endif

TEST_F(WorkerRestoreCli, RestoreWithAnotherVcpuCountExitsTwo) {
  testing::WriteBytes(dir_.Join("kernel"), testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, true));
  Start({"--kernel", dir_.Join("kernel"), "--mem-mib", "64", "--no-rng", "--serial", "none",
         "--control", dir_.Join("c1")});
  EXPECT_THAT(Command(dir_.Join("c1"), "snapshot " + dir_.Join("snap")), StartsWith("OK snapshot"));
  EXPECT_EQ(Command(dir_.Join("c1"), "exit"), "OK exiting");
  Finish();

  Start({"--restore", dir_.Join("snap"), "--vcpus", "3", "--serial", "none"});
  WorkerRun r = Finish();

  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr("snapshot has 1 vCPUs, 3 were requested"));
}

TEST_F(WorkerRestoreCli, KernelAndAgentIdentityAreRecordedAndChecked) {
  testing::WriteBytes(dir_.Join("kernel"), testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, true));
  Start({"--kernel", dir_.Join("kernel"), "--mem-mib", "64", "--no-rng", "--serial", "none",
         "--agent-version", "agent-1.2", "--control", dir_.Join("c1")});
  EXPECT_THAT(Command(dir_.Join("c1"), "snapshot " + dir_.Join("snap")), StartsWith("OK snapshot"));
  EXPECT_EQ(Command(dir_.Join("c1"), "exit"), "OK exiting");
  Finish();
  // The worker hashed the kernel file itself: the state payload holds its sha256sum.
  FILE* p = popen(("sha256sum " + dir_.Join("kernel")).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char hex[65] = {};
  ASSERT_EQ(fread(hex, 1, 64, p), 64u);
  pclose(p);
  const std::string state = ReadAll(dir_.Join("snap/state"));
  EXPECT_THAT(state, HasSubstr(hex));
  EXPECT_THAT(state, HasSubstr("agent-1.2"));

  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--agent-version", "agent-2.0"});
  WorkerRun r = Finish();
  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr("snapshot guest runs agent version agent-1.2, agent-2.0 was "
                               "asked for"));

  const std::string other(64, 'a');
  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--kernel-sha256", other});
  r = Finish();
  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr(std::string("snapshot guest runs kernel sha256 ") + hex));

  // The matching identity restores; the restored worker's own snapshot keeps it (chained),
  // though the kernel file is gone by then.
  ASSERT_EQ(unlink(dir_.Join("kernel").c_str()), 0);
  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--kernel-sha256", hex,
         "--agent-version", "agent-1.2", "--control", dir_.Join("c2")});
  EXPECT_THAT(Command(dir_.Join("c2"), "snapshot " + dir_.Join("snap2")),
              StartsWith("OK snapshot"));
  EXPECT_EQ(Command(dir_.Join("c2"), "exit"), "OK exiting");
  r = Finish();
  EXPECT_EQ(r.exit.ToString(), "exited 6") << r.err;
  const std::string state2 = ReadAll(dir_.Join("snap2/state"));
  EXPECT_THAT(state2, HasSubstr(hex));
  EXPECT_THAT(state2, HasSubstr("agent-1.2"));
}

TEST_F(WorkerRestoreCli, MalformedKernelShaIsRefused) {
  Start({"--restore", dir_.Join("snap"), "--serial", "none", "--kernel-sha256", "abc"});
  WorkerRun r = Finish();
  EXPECT_EQ(r.exit.ToString(), "exited 2");
  EXPECT_THAT(r.err, HasSubstr("expected 64 lowercase hex digits"));
}

}  // namespace
}  // namespace supermachine
