// File: balloon_lab_test.cc
// Memory give-back end to end, one boot inside the KVM lab (tests/lab/run): a guest with
// --balloon fills 128 MiB of tmpfs, the host notes the worker's RSS, the guest deletes the file,
// and free page reporting must bring the worker's RSS down by more than 64 MiB; then the guest
// must still run and use fresh memory correctly. The host steers the guest through a small
// read-write disk (guest/balloon_check_init.cc). Generous deadlines, no timing asserts: under
// TCG page reporting's 2 s delay can stretch to minutes.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lab/support/kernel_dir.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::base::ChildProcess;
using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1 << 20;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The `key` line of /proc/PID/smaps_rollup in bytes (0 if absent).
uint64_t SmapsRollup(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

// Polls `serial` for `marker` until `deadline`.
bool WaitForSerial(const fs::path& serial, const std::string& marker, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (ReadFile(serial).find(marker) != std::string::npos) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return false;
}

// The guest polls the first sector of the control disk for its next step.
void Command(const fs::path& disk, const std::string& word) {
  supermachine::base::UniqueFd fd(open(disk.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << disk;
  std::string sector(512, '\0');
  sector.replace(0, word.size(), word);
  ASSERT_EQ(pwrite(fd.get(), sector.data(), sector.size(), 0),
            static_cast<ssize_t>(sector.size()));
  ASSERT_EQ(fsync(fd.get()), 0);
}

TEST(BalloonLab, FreedGuestMemoryLeavesTheWorker) {
  const std::string kernel_dir = supermachine::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty())
      << "guest kernel not built: run kernel/build.sh (kernel/README.md) or set SM_KERNEL_DIR";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: this test must run via tests/lab/run";
  const fs::path dir =
      fs::path(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") / absl::StrCat("sm-balloon-", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "root");
  for (const char* d : {"dev", "proc", "sys", "tmp", "run"}) {
    fs::create_directories(dir / "root" / d);
  }
  fs::copy_file(SM_BALLOON_CHECK_INIT_BIN, dir / "root" / "init");
  const fs::path image = dir / "root.sqfs";
  {
    auto mk = ChildProcess::Spawn({.argv = {"mksquashfs", (dir / "root").string(),
                                            image.string(), "-quiet", "-noappend", "-all-root"},
                                   .stdout_fd = -1});
    ASSERT_TRUE(mk.ok()) << mk.status();
    auto st = mk->Wait();
    ASSERT_TRUE(st.ok() && st->success()) << "mksquashfs failed";
  }
  const fs::path control = dir / "control.img";
  std::ofstream(control, std::ios::binary).close();
  fs::resize_file(control, kMiB);
  const fs::path serial = dir / "serial.log";
  const fs::path err = dir / "stderr.log";
  supermachine::base::UniqueFd err_fd(
      open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));

  auto child = ChildProcess::Spawn(
      {.argv = {SM_WORKER_BIN, "--serial", "file:" + serial.string(), "--kernel",
                kernel_dir + "/vmlinux", "--mem-mib", "512", "--balloon", "--disk",
                image.string() + ",ro", "--disk", control.string(), "--cmdline",
                "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init "
                "quiet"},
       .stderr_fd = err_fd.get()});
  ASSERT_TRUE(child.ok()) << child.status();
  const pid_t pid = child->pid();
  auto diagnostics = [&] {
    return absl::StrCat("\nserial:\n", ReadFile(serial), "\nworker stderr:\n", ReadFile(err));
  };

  ASSERT_TRUE(WaitForSerial(serial, "sm-balloon: filled", absl::Minutes(10))) << diagnostics();
  EXPECT_THAT(ReadFile(serial), HasSubstr("sm-balloon: device=bound"));
  const uint64_t rss_filled = SmapsRollup(pid, "Rss");
  std::printf("balloon lab: worker Rss with 128 MiB in guest tmpfs: %llu MiB (Shared %llu MiB)\n",
              static_cast<unsigned long long>(rss_filled / kMiB),
              static_cast<unsigned long long>(
                  (SmapsRollup(pid, "Shared_Clean") + SmapsRollup(pid, "Shared_Dirty")) / kMiB));
  ASSERT_GT(rss_filled, 128 * kMiB) << "the guest's tmpfs file should be in the worker's RSS"
                                    << diagnostics();

  Command(control, "DROP");
  ASSERT_TRUE(WaitForSerial(serial, "sm-balloon: deleted", absl::Minutes(5))) << diagnostics();
  // Page reporting runs ~2 s after pages are freed; under TCG give it minutes.
  uint64_t rss_now = rss_filled;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (absl::Now() < deadline && rss_now + 64 * kMiB > rss_filled) {
    absl::SleepFor(absl::Seconds(1));
    rss_now = SmapsRollup(pid, "Rss");
  }
  absl::SleepFor(absl::Seconds(5));  // Let the rest of the report land, for the printed figure.
  rss_now = SmapsRollup(pid, "Rss");
  std::printf("balloon lab: worker Rss after the guest deleted the file: %llu MiB (-%lld MiB)\n",
              static_cast<unsigned long long>(rss_now / kMiB),
              static_cast<long long>((static_cast<int64_t>(rss_filled) -
                                      static_cast<int64_t>(rss_now)) /
                                     static_cast<int64_t>(kMiB)));
  EXPECT_LT(rss_now + 64 * kMiB, rss_filled)
      << "freed guest memory did not leave the worker" << diagnostics();

  Command(control, "DONE");
  auto st = child->WaitFor(absl::Minutes(5));
  if (!st.ok()) {
    ADD_FAILURE() << "worker did not finish" << diagnostics();
    (void)child->Terminate(absl::Seconds(5));
  } else {
    EXPECT_EQ(st->ToString(), "exited 0") << diagnostics();
  }
  EXPECT_THAT(ReadFile(serial), HasSubstr("sm-balloon: alive verify=ok")) << diagnostics();
  // The worker's exit line: reported_bytes=N, N at least what RSS fell by.
  const std::string text = ReadFile(err);
  const size_t at = text.find("balloon: reported_ranges=");
  ASSERT_NE(at, std::string::npos) << diagnostics();
  const size_t b = text.find("reported_bytes=", at);
  ASSERT_NE(b, std::string::npos);
  uint64_t reported = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      text.substr(b + 15, text.find(' ', b) - (b + 15)), &reported));
  std::printf("balloon lab: %s", text.substr(at, text.find('\n', at) - at + 1).c_str());
  EXPECT_GE(reported, 64 * kMiB);
  fs::remove_all(dir);
}

}  // namespace
