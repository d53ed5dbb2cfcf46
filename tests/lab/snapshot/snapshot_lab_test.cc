// File: snapshot_lab_test.cc
// Snapshot and restore of a real Linux guest with supermachine-worker; runs inside the KVM lab
// (tests/lab/run). The guest's init (guest/counter_init.cc) counts, reading its disk each step;
// the test snapshots it through the control socket, restores it in a new worker, and checks
// the count goes on from where it was, the disk still answers, pause really stops the guest,
// and a snapshot of the restored guest restores too (chained).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

extern char** environ;

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/worker_control.h"
#include "tests/lab/support/guest_test.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::lab::ReadFile;
using supermachine::base::ChildProcess;
using supermachine::base::UniqueFd;
using ::testing::StartsWith;

// The counters the guest printed, in order ("sm-counter: N disk=ok" lines; a torn last line
// is ignored). Lines with disk=error count as -1.
std::vector<long> Counters(const std::string& serial) {
  std::vector<long> out;
  for (absl::string_view line : absl::StrSplit(serial, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);  // The guest tty writes "\r\n".
    if (!absl::ConsumePrefix(&line, "sm-counter: ")) {
      continue;
    }
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    long n = 0;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &n)) {
      out.push_back(parts[1] == "disk=ok" ? n : -1);
    }
  }
  return out;
}

class SnapshotLab : public supermachine::lab::GuestTest {
 protected:
  SnapshotLab() : GuestTest("sm-snap") {}

  std::string MakeRoot() {
    fs::path root = dir_ / "root";
    for (const char* d : {"dev", "proc", "sys", "tmp"}) {
      fs::create_directories(root / d);
    }
    fs::copy_file(SM_COUNTER_INIT_BIN, root / "init");
    fs::path image = dir_ / "root.sqfs";
    auto child = ChildProcess::Spawn({.argv = {"mksquashfs", root.string(), image.string(),
                                               "-quiet", "-noappend", "-all-root"}});
    EXPECT_TRUE(child.ok()) << child.status();
    auto st = child->Wait();
    EXPECT_TRUE(st.ok() && st->success()) << "mksquashfs failed";
    return image.string();
  }

  struct Worker {
    std::optional<ChildProcess> process;
    fs::path serial;
    fs::path err;
    std::string control;
  };

  Worker Start(const std::string& name, std::vector<std::string> args) {
    Worker w;
    w.serial = dir_ / (name + ".serial");
    w.err = dir_ / (name + ".stderr");
    // sun_path is short: keep the socket name short and relative to a short dir.
    w.control = (dir_ / (name + ".ctl")).string();
    UniqueFd err_fd(open(w.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    std::vector<std::string> argv = {SM_WORKER_BIN, "--serial", "file:" + w.serial.string(),
                                     "--control", w.control};
    argv.insert(argv.end(), args.begin(), args.end());
    // The worker prints its start-up phases (restore included) on stderr; reported below.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      env.emplace_back(*e);
    }
    env.emplace_back("SUPERMACHINE_WORKER_TIMING=1");
    auto child = ChildProcess::Spawn({.argv = argv, .env = env, .stderr_fd = err_fd.get()});
    EXPECT_TRUE(child.ok()) << child.status();
    if (child.ok()) {
      w.process.emplace(std::move(*child));
    }
    return w;
  }

  // Waits until the guest printed a counter >= `at_least`; returns the counters.
  std::vector<long> WaitForCounter(const Worker& w, long at_least, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<long> c;
    while (absl::Now() < deadline) {
      c = Counters(ReadFile(w.serial));
      if (!c.empty() && c.back() >= at_least) {
        return c;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "no sm-counter >= " << at_least << " within " << timeout
                  << "; serial tail: " << ReadFile(w.serial).substr(0, 4000)
                  << "\nstderr: " << ReadFile(w.err);
    return c;
  }

  std::vector<std::string> Control(const Worker& w, const std::vector<std::string>& lines) {
    return supermachine::test_support::WorkerCommands(w.control, lines);
  }

  // Prints the worker's timing line (informational: the lab is emulated, so absolute times
  // say little; the benchmark compares like with like).
  static void ReportTiming(const Worker& w, const std::string& what) {
    for (absl::string_view line : absl::StrSplit(ReadFile(w.err), '\n')) {
      if (absl::StrContains(line, "timing:")) {
        std::printf("%s: %s\n", what.c_str(), std::string(line).c_str());
      }
    }
  }

  // Snapshots `w` to `snap`, then ends it through the control socket.
  void SnapshotAndExit(Worker& w, const fs::path& snap) {
    std::vector<std::string> r = Control(w, {"snapshot " + snap.string(), "exit"});
    EXPECT_THAT(r[0], StartsWith("OK snapshot")) << ReadFile(w.err);
    EXPECT_EQ(r[1], "OK exiting");
    auto st = w.process->WaitFor(absl::Seconds(60));
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->ToString(), "exited 6") << ReadFile(w.err);  // kExitStopped.
  }
};

TEST_F(SnapshotLab, RestoredGuestContinuesCountingWithDiskAndPauseWorks) {
  const std::string root = MakeRoot();
  const std::string cmdline =
      "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init quiet";
  // Two vCPUs: LAPIC timers, IPIs and the AP's state must survive too.
  Worker a = Start("a", {"--kernel", KernelDir() + "/vmlinux", "--vcpus", "2", "--disk",
                         root + ",ro", "--cmdline", cmdline});
  WaitForCounter(a, 5, absl::Seconds(300));
  SnapshotAndExit(a, dir_ / "snap1");
  const std::vector<long> before = Counters(ReadFile(a.serial));
  ASSERT_FALSE(before.empty());
  const long last = before.back();

  Worker b = Start("b", {"--restore", (dir_ / "snap1").string()});
  std::vector<long> after = WaitForCounter(b, last + 5, absl::Seconds(120));

  ASSERT_FALSE(after.empty()) << ReadFile(b.err);
  // Continues, not restarts: the first count printed after the restore follows the last one
  // printed before (the snapshot may have caught the guest between count and print).
  EXPECT_GE(after.front(), last);
  EXPECT_LE(after.front(), last + 1);
  EXPECT_THAT(after, ::testing::Not(::testing::Contains(-1)))
      << "the guest's disk read failed after restore; serial:\n"
      << ReadFile(b.serial) << "\nstderr:\n" << ReadFile(b.err);

  ReportTiming(a, "boot");
  ReportTiming(b, "restore");

  // Pause really stops the guest; resume lets it go on.
  EXPECT_EQ(Control(b, {"pause"})[0], "OK paused");
  const size_t paused_at = Counters(ReadFile(b.serial)).size();
  absl::SleepFor(absl::Seconds(2));
  EXPECT_LE(Counters(ReadFile(b.serial)).size(), paused_at + 1);  // One may be in flight.
  EXPECT_EQ(Control(b, {"resume"})[0], "OK resumed");
  const long resumed_from = Counters(ReadFile(b.serial)).back();
  WaitForCounter(b, resumed_from + 3, absl::Seconds(60));

  // Chained: a snapshot of the restored guest restores too.
  SnapshotAndExit(b, dir_ / "snap2");
  const long last_b = Counters(ReadFile(b.serial)).back();
  Worker c = Start("c", {"--restore", (dir_ / "snap2").string()});
  std::vector<long> third = WaitForCounter(c, last_b + 3, absl::Seconds(120));
  ASSERT_FALSE(third.empty());
  EXPECT_THAT(third, ::testing::Not(::testing::Contains(-1))) << ReadFile(c.serial);
  EXPECT_GE(third.front(), last_b);
  EXPECT_LE(third.front(), last_b + 1);
  EXPECT_EQ(Control(c, {"exit"})[0], "OK exiting") << ReadFile(c.err);
  EXPECT_TRUE(c.process->WaitFor(absl::Seconds(60)).ok());
}

// kB of `key` ("Private_Dirty:") in /proc/PID/smaps_rollup, or -1.
long SmapsKb(pid_t pid, const std::string& key) {
  for (absl::string_view line :
       absl::StrSplit(ReadFile(absl::StrCat("/proc/", pid, "/smaps_rollup")), '\n')) {
    if (absl::ConsumePrefix(&line, key)) {
      long kb = 0;
      line = absl::StripAsciiWhitespace(line);
      if (absl::ConsumeSuffix(&line, " kB") && absl::SimpleAtoi(line, &kb)) {
        return kb;
      }
    }
  }
  return -1;
}

TEST_F(SnapshotLab, ClonesOfOneSnapshotRunTogetherAndShareItsPages) {
  constexpr int kClones = 4;
  const std::string root = MakeRoot();
  Worker a = Start("a", {"--kernel", KernelDir() + "/vmlinux", "--disk", root + ",ro",
                         "--cmdline",
                         std::string("console=ttyS0 reboot=t panic=-1 root=/dev/vda "
                                     "rootfstype=squashfs ro init=/init quiet")});
  WaitForCounter(a, 5, absl::Seconds(300));
  SnapshotAndExit(a, dir_ / "snap");
  const long last = Counters(ReadFile(a.serial)).back();
  struct stat st {};
  ASSERT_EQ(stat((dir_ / "snap" / "memory").c_str(), &st), 0);
  const long saved_kb = static_cast<long>(st.st_blocks) / 2;  // RAM the snapshot holds.

  std::vector<Worker> clones;
  for (int i = 0; i < kClones; ++i) {
    clones.push_back(Start(absl::StrCat("clone", i), {"--restore", (dir_ / "snap").string()}));
  }
  long private_dirty_kb = 0;
  for (int i = 0; i < kClones; ++i) {
    std::vector<long> c = WaitForCounter(clones[i], last + 5, absl::Seconds(120));
    ASSERT_FALSE(c.empty());
    EXPECT_LE(c.front(), last + 1) << "clone " << i << " did not continue from the snapshot";
    const long dirty = SmapsKb(clones[i].process->pid(), "Private_Dirty:");
    std::printf("clone %d: Rss %ld kB, Pss %ld kB, Private_Dirty %ld kB, Shared_Clean %ld kB\n",
                i, SmapsKb(clones[i].process->pid(), "Rss:"),
                SmapsKb(clones[i].process->pid(), "Pss:"), dirty,
                SmapsKb(clones[i].process->pid(), "Shared_Clean:"));
    ASSERT_GE(dirty, 0);
    private_dirty_kb += dirty;
  }
  std::printf("%d clones: private dirty %ld kB in total; the snapshot holds %ld kB of RAM\n",
              kClones, private_dirty_kb, saved_kb);
  // The guest RAM is mapped from the one file: what the clones read stays shared page cache,
  // only what each writes (plus the worker's own heap) is private.
  EXPECT_LT(private_dirty_kb, saved_kb);
  for (Worker& w : clones) {
    // The worker's stderr says why it is gone, e.g. a guest reset (the emulated lab's known
    // L2 triple fault, which tests/lab/run then reports as such).
    EXPECT_EQ(Control(w, {"exit"})[0], "OK exiting") << ReadFile(w.err);
    EXPECT_TRUE(w.process->WaitFor(absl::Seconds(60)).ok());
  }
}

}  // namespace
