// File: balloon_lab_test.cc
// Memory give-back end to end inside the KVM lab (tests/lab/run), one boot and one restore: a
// guest with --balloon fills 128 MiB of tmpfs, the host notes the worker's RSS, the guest
// deletes the file, and free page reporting must bring the worker's RSS down by more than
// 64 MiB — first in the booted worker (memfd RAM: holes punched), then again in a worker
// restored from its snapshot (MAP_PRIVATE RAM: copy-on-write pages dropped). Then the guest
// must still run and use fresh memory correctly.
// One more step in the restored worker, for the host's balloon target (`balloon-target`): the
// guest reads 320 MiB of a sparse disk into its page cache, which in a MAP_PRIVATE restore are
// private dirty pages of the worker; the host sets a target of 70% of RAM, the driver inflates
// (reclaiming that cache once its free memory — already given back by reporting — is used up),
// and the worker's RSS must fall by more than 64 MiB; the guest must answer; then target 0
// must bring the balloon back to 0 and the guest must still use 96 MiB of fresh memory. The
// host steers the guest through a small
// read-write disk (guest/balloon_check_init.cc). Generous deadlines, no timing asserts: under
// TCG page reporting's 2 s delay can stretch to minutes.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/worker_control.h"
#include "tests/lab/support/kernel_dir.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::base::ChildProcess;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using supermachine::test_support::ReplyField;

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

struct Worker {
  std::optional<ChildProcess> process;
  fs::path serial;
  fs::path err;
  std::string control;
  std::string Diagnostics() const {
    return absl::StrCat("\nserial:\n", ReadFile(serial), "\nworker stderr:\n", ReadFile(err));
  }
};

Worker Start(const fs::path& dir, const std::string& name, std::vector<std::string> args) {
  Worker w;
  w.serial = dir / (name + ".serial");
  w.err = dir / (name + ".stderr");
  w.control = (dir / (name + ".ctl")).string();
  supermachine::base::UniqueFd err_fd(
      open(w.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  std::vector<std::string> argv = {SM_WORKER_BIN, "--serial", "file:" + w.serial.string(),
                                   "--control", w.control};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::Spawn({.argv = argv, .stderr_fd = err_fd.get()});
  EXPECT_TRUE(child.ok()) << child.status();
  if (child.ok()) {
    w.process.emplace(std::move(*child));
  }
  return w;
}

std::vector<std::string> Control(const Worker& w, const std::vector<std::string>& lines) {
  return supermachine::test_support::WorkerCommands(w.control, lines);
}

// Polls the `balloon` control command until actual_pages satisfies `done` or `timeout`;
// returns the last actual_pages read (0 if no reply had one).
uint64_t WaitForActual(const Worker& w, const std::function<bool(uint64_t)>& done,
                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  uint64_t actual = 0;
  for (;;) {
    const std::optional<uint64_t> now = ReplyField(Control(w, {"balloon"})[0], "actual_pages");
    if (now.has_value()) {
      actual = *now;
    }
    if ((now.has_value() && done(actual)) || absl::Now() > deadline) {
      return actual;
    }
    absl::SleepFor(absl::Seconds(1));
  }
}

// The target step (restored worker): page cache in, balloon to 70% of RAM, RSS down, guest
// alive, balloon back to 0.
void TargetAndBack(const Worker& w, const fs::path& control, uint64_t ram_mib) {
  const pid_t pid = w.process->pid();
  Command(control, "CACHE");
  ASSERT_TRUE(WaitForSerial(w.serial, "sm-balloon: cached MiB=", absl::Minutes(10)))
      << w.Diagnostics();
  const uint64_t rss_cached = SmapsRollup(pid, "Rss");
  std::printf("balloon lab (target): worker Rss with the guest's page cache full: %llu MiB "
              "(Anonymous %llu MiB)\n",
              static_cast<unsigned long long>(rss_cached / kMiB),
              static_cast<unsigned long long>(SmapsRollup(pid, "Anonymous") / kMiB));

  const uint64_t target = ram_mib * kMiB / 4096 * 7 / 10;
  std::vector<std::string> r = Control(w, {absl::StrCat("balloon-target ", target)});
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0], absl::StrCat("OK balloon-target pages=", target)) << w.Diagnostics();
  // The driver inflates 256 pages per request and backs off 200 ms when the guest cannot
  // reclaim at once; under TCG give it minutes.
  const uint64_t actual = WaitForActual(
      w, [&](uint64_t a) { return a >= target; }, absl::Minutes(8));
  const uint64_t rss_inflated = SmapsRollup(pid, "Rss");
  const std::string stats = Control(w, {"balloon"})[0];
  std::printf("balloon lab (target %llu pages): actual_pages=%llu, worker Rss %llu MiB "
              "(-%lld MiB, Anonymous %llu MiB); %s\n",
              static_cast<unsigned long long>(target), static_cast<unsigned long long>(actual),
              static_cast<unsigned long long>(rss_inflated / kMiB),
              static_cast<long long>((static_cast<int64_t>(rss_cached) -
                                      static_cast<int64_t>(rss_inflated)) /
                                     static_cast<int64_t>(kMiB)),
              static_cast<unsigned long long>(SmapsRollup(pid, "Anonymous") / kMiB),
              stats.c_str());
  EXPECT_GE(actual, target * 9 / 10) << "the driver did not inflate near the target"
                                     << w.Diagnostics();
  EXPECT_LT(rss_inflated + 64 * kMiB, rss_cached)
      << "inflating the balloon gave no memory back" << w.Diagnostics();
  EXPECT_EQ(ReplyField(stats, "rejected_chains"), 0u);

  Command(control, "PING");
  ASSERT_TRUE(WaitForSerial(w.serial, "sm-balloon: pong", absl::Minutes(5)))
      << "the guest stopped answering with the balloon inflated" << w.Diagnostics();

  r = Control(w, {"balloon-target 0"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], "OK balloon-target pages=0");
  const uint64_t back = WaitForActual(
      w, [](uint64_t a) { return a == 0; }, absl::Minutes(8));
  std::printf("balloon lab (target 0): actual_pages=%llu, worker Rss %llu MiB; %s\n",
              static_cast<unsigned long long>(back),
              static_cast<unsigned long long>(SmapsRollup(pid, "Rss") / kMiB),
              Control(w, {"balloon"})[0].c_str());
  EXPECT_EQ(back, 0u) << "the driver did not deflate" << w.Diagnostics();
}

// One round: the guest fills 128 MiB of tmpfs, the worker's RSS must hold it; the guest deletes
// it, and the RSS must fall by more than 64 MiB.
void FillAndDrop(const Worker& w, const fs::path& control, int round, const char* what) {
  const std::string n = std::to_string(round);
  const pid_t pid = w.process->pid();
  Command(control, "FILL" + n);
  ASSERT_TRUE(WaitForSerial(w.serial, "sm-balloon: filled" + n, absl::Minutes(10)))
      << w.Diagnostics();
  const uint64_t rss_filled = SmapsRollup(pid, "Rss");
  std::printf("balloon lab (%s): worker Rss with 128 MiB in guest tmpfs: %llu MiB\n", what,
              static_cast<unsigned long long>(rss_filled / kMiB));
  ASSERT_GT(rss_filled, 128 * kMiB) << "the guest's tmpfs file should be in the worker's RSS"
                                    << w.Diagnostics();
  Command(control, "DROP" + n);
  ASSERT_TRUE(WaitForSerial(w.serial, "sm-balloon: deleted" + n, absl::Minutes(5)))
      << w.Diagnostics();
  // Page reporting runs ~2 s after pages are freed; under TCG give it minutes.
  uint64_t rss_now = rss_filled;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (absl::Now() < deadline && rss_now + 64 * kMiB > rss_filled) {
    absl::SleepFor(absl::Seconds(1));
    rss_now = SmapsRollup(pid, "Rss");
  }
  absl::SleepFor(absl::Seconds(5));  // Let the rest of the report land, for the printed figure.
  rss_now = SmapsRollup(pid, "Rss");
  std::printf("balloon lab (%s): worker Rss after the guest deleted the file: %llu MiB "
              "(-%lld MiB)\n",
              what, static_cast<unsigned long long>(rss_now / kMiB),
              static_cast<long long>((static_cast<int64_t>(rss_filled) -
                                      static_cast<int64_t>(rss_now)) /
                                     static_cast<int64_t>(kMiB)));
  EXPECT_LT(rss_now + 64 * kMiB, rss_filled)
      << "freed guest memory did not leave the worker" << w.Diagnostics();
}

TEST(BalloonLab, FreedGuestMemoryLeavesBootedAndRestoredWorkers) {
  const std::string kernel_dir = supermachine::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty())
      << "guest kernel not built: run kernel/build.sh (kernel/README.md) or set SM_KERNEL_DIR";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: this test must run via tests/lab/run";
  // sun_path is short: keep the directory short.
  const fs::path dir =
      fs::path(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") / absl::StrCat("smb-", getpid());
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
  // The command sector, then 320 MiB (sparse) the guest reads into its page cache for the
  // target step.
  fs::resize_file(control, kMiB + 320 * kMiB);

  // Round 1 in the booted worker.
  const std::string cmdline =
      "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init quiet";
  Worker a = Start(dir, "a",
                   {"--kernel", kernel_dir + "/vmlinux", "--mem-mib", "512", "--balloon",
                    "--disk", image.string() + ",ro", "--disk", control.string(), "--cmdline",
                    cmdline});
  ASSERT_TRUE(a.process.has_value());
  FillAndDrop(a, control, 1, "booted");
  if (::testing::Test::HasFatalFailure()) {
    (void)a.process->Terminate(absl::Seconds(5));
    return;
  }
  // The driver negotiated DEFLATE_ON_OOM (bit 2; sysfs lists bits from 0): an inflated guest
  // that gets busy deflates by itself.
  EXPECT_THAT(ReadFile(a.serial), HasSubstr("sm-balloon: device=bound features=001"))
      << a.Diagnostics();

  // Snapshot, then round 2 in a worker restored from it.
  const fs::path snap = dir / "snap";
  std::vector<std::string> r = Control(a, {"snapshot " + snap.string(), "exit"});
  ASSERT_EQ(r.size(), 2u);
  ASSERT_THAT(r[0], StartsWith("OK snapshot")) << a.Diagnostics();
  std::printf("balloon lab: %s\n", r[0].c_str());
  auto ended = a.process->WaitFor(absl::Seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status();
  Worker b = Start(dir, "b", {"--restore", snap.string()});
  ASSERT_TRUE(b.process.has_value());
  FillAndDrop(b, control, 2, "restored");
  if (::testing::Test::HasFatalFailure()) {
    (void)b.process->Terminate(absl::Seconds(5));
    return;
  }
  // The control socket's counters for the restored worker.
  const std::string stats = Control(b, {"balloon"})[0];
  std::printf("balloon lab (restored): %s\n", stats.c_str());
  EXPECT_THAT(stats, StartsWith("OK balloon reported_ranges="));
  EXPECT_GE(ReplyField(stats, "reported_bytes"), 64 * kMiB);
  EXPECT_EQ(ReplyField(stats, "rejected_chains"), 0u);

  // A target too big for RAM is refused, naming the RAM size.
  const std::vector<std::string> too_big = Control(b, {"balloon-target 131073"});
  ASSERT_EQ(too_big.size(), 1u);
  EXPECT_THAT(too_big[0], StartsWith("ERR "));
  EXPECT_THAT(too_big[0], HasSubstr("512 MiB"));

  TargetAndBack(b, control, 512);
  if (::testing::Test::HasFatalFailure()) {
    (void)b.process->Terminate(absl::Seconds(5));
    return;
  }

  Command(control, "DONE");
  auto st = b.process->WaitFor(absl::Minutes(5));
  if (!st.ok()) {
    ADD_FAILURE() << "restored worker did not finish" << b.Diagnostics();
    (void)b.process->Terminate(absl::Seconds(5));
  } else {
    EXPECT_EQ(st->ToString(), "exited 0") << b.Diagnostics();
  }
  EXPECT_THAT(ReadFile(b.serial), HasSubstr("sm-balloon: alive verify=ok")) << b.Diagnostics();
  EXPECT_THAT(ReadFile(b.err), HasSubstr("supermachine-worker: balloon: reported_ranges="));
  fs::remove_all(dir);
}

}  // namespace
