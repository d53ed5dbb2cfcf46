// File: daemon_crash_test.cc
// kill -9 of the real supermachined mid-Acquire, without a guest: the daemon is pointed at a
// fake worker (--worker-binary) that starts and never answers the agent handshake, so the
// Acquire is in flight (VM journaled 'starting', worker alive in its own session) when the
// daemon dies. The restarted daemon must reconcile: the VM row ends (`released`: the restore
// never finished, nobody holds the VM), the leftover worker is killed, nothing else stays.
//
// The same for a bake: `smctl bake` of an image served by a local FakeRegistry (the daemon has
// dummy kernel and agent files, which the bake only hashes and copies) pulls, converts and
// builds the delta for real, then starts the fake worker, whose agent never answers: the bake
// waits in its boot stage when the daemon dies. The restarted daemon marks the bake failed and
// kills its worker, which is journaled nowhere; only its argv ties it to the bake's temp dir
// (daemon/bake/orphan_sweep.h).
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "daemon/image/manifest.h"
#include "daemon/store/store.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/unit/image/testing/fake_registry.h"
#include "tests/unit/image/testing/image_builder.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine::faults {
namespace {

namespace fs = std::filesystem;
using test_support::DaemonProcess;
using test_support::ScratchDir;

// Generous: the CI machine may be several times slower than a laptop.
constexpr absl::Duration kWait = absl::Seconds(60);

// A live process (not a zombie waiting for its reaper).
bool Alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) {
    return false;
  }
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// The fake worker's pid once it has started under <state>/vms/<id>/; 0 if none by `deadline`.
int WaitForFakeWorker(const std::string& vm_dir, absl::Time deadline) {
  while (absl::Now() < deadline) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(vm_dir, ec)) {
      std::ifstream in(e.path() / "fake-worker.pid");
      int pid = 0;
      if (in >> pid && pid > 0) {
        return pid;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return 0;
}

// The argv of `pid`, NUL-separated as in /proc ("" when gone).
std::string Cmdline(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The fake bake worker's pid: it writes fake-worker.pid into its /tmp/smbake-* socket dir;
// the one whose console path lies under `state_dir` is this test's (other tests may bake).
int WaitForFakeBakeWorker(const std::string& state_dir, absl::Time deadline,
                          std::string* socket_dir) {
  while (absl::Now() < deadline) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator("/tmp", ec)) {
      if (!absl::StartsWith(e.path().filename().string(), "smbake-")) {
        continue;
      }
      std::ifstream in(e.path() / "fake-worker.pid");
      int pid = 0;
      if (in >> pid && pid > 0 && absl::StrContains(Cmdline(pid), "file:" + state_dir + "/")) {
        *socket_dir = e.path().string();
        return pid;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return 0;
}

TEST(DaemonCrash, KillNineMidAcquireThenRestartEndsTheVmAndKillsItsWorker) {
  ScratchDir dir;
  fs::create_directories(dir.File("state"));
  fs::create_directories(dir.File("snap"));
  {
    absl::StatusOr<store::Store> s =
        store::Store::Open(dir.File("state/store.db"), [] { return absl::ToUnixMillis(absl::Now()); });
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->PutSnapshot({.name = "snap", .path = dir.File("snap"), .metadata_json = "{}"}).ok());
  }
  const std::vector<std::string> args = {"--worker-binary", SM_FAKE_WORKER_PATH};
  absl::StatusOr<DaemonProcess> daemon = DaemonProcess::Start(dir.path(), args);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  // smctl run -d: an Acquire that will wait for an agent that never comes.
  base::UniqueFd out(::open(dir.File("smctl.out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(out);
  absl::StatusOr<base::ChildProcess> client = base::ChildProcess::Spawn(
      {.argv = {SM_SMCTL_PATH, "--socket", daemon->socket(), "run", "-d", "snap"},
       .stdout_fd = out.get(), .stderr_fd = out.get()});
  ASSERT_TRUE(client.ok()) << client.status();
  const int worker = WaitForFakeWorker(dir.File("state/vms"), absl::Now() + kWait);
  ASSERT_GT(worker, 0) << "the daemon never started the fake worker:\n" << daemon->Stderr();
  // Not a timing assert: it only makes the usual case (the VM row journaled) the likely one.
  absl::SleepFor(absl::Milliseconds(300));

  ASSERT_TRUE(daemon->process().Signal(SIGKILL).ok());
  ASSERT_TRUE(daemon->process().WaitFor(kWait).ok());
  absl::StatusOr<base::ExitStatus> client_exit = client->WaitFor(kWait);
  ASSERT_TRUE(client_exit.ok()) << client_exit.status();
  EXPECT_FALSE(client_exit->success()) << "the Acquire cannot have succeeded";
  ASSERT_TRUE(Alive(worker)) << "workers run in their own session and outlive a daemon crash";

  // Restart on the same state: reconcile runs before the daemon serves.
  absl::StatusOr<DaemonProcess> again = DaemonProcess::Start(dir.path(), args);
  ASSERT_TRUE(again.ok()) << again.status();
  const absl::Time deadline = absl::Now() + kWait;
  while (Alive(worker) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_FALSE(Alive(worker)) << "orphan worker " << worker << " survived the restart:\n"
                              << again->Stderr();
  absl::StatusOr<store::Store> s =
      store::Store::Open(dir.File("state/store.db"), [] { return absl::ToUnixMillis(absl::Now()); });
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<std::vector<store::VmRecord>> vms = s->ListVms(/*include_ended=*/true);
  ASSERT_TRUE(vms.ok()) << vms.status();
  // The fake worker writes its pid file as soon as it runs, which can be just before the daemon
  // journals it (worker_launcher.cc journals right after the spawn). A kill in that window
  // leaves no row, only an unjournaled worker, which reconcile must kill all the same (checked
  // above); otherwise the row must be ended `released`.
  ASSERT_LE(vms->size(), 1u);
  for (const store::VmRecord& vm : *vms) {
    EXPECT_EQ(vm.state, "ended");
    EXPECT_EQ(vm.end_cause.value_or("none"), "released") << again->Stderr();
  }
  absl::StatusOr<std::vector<store::VmRecord>> live = s->ListVms(/*include_ended=*/false);
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(live->empty());
}

TEST(DaemonCrash, KillNineMidBakeThenRestartMarksTheBakeFailedAndKillsItsWorker) {
  ScratchDir dir;
  image::testing::FakeRegistry registry;
  registry.AddImage("faults/bake", "1",
                    image::testing::BuildImage(image::HostPlatform(),
                                               {{{"bin/", ""}, {"bin/app", "#!/bin/sh\n"}}},
                                               {"/bin/app"}));
  for (const char* f : {"vmlinux", "agent"}) {
    std::ofstream(dir.File(f)) << f;  // hashed and copied, never run: the worker is fake
  }
  std::ofstream(dir.File("config.json"))
      << R"({"kernel": ")" << dir.File("vmlinux") << R"(", "guest_agent": ")" << dir.File("agent")
      << R"("})";
  const std::vector<std::string> args = {"--worker-binary", SM_FAKE_WORKER_PATH, "--config",
                                         dir.File("config.json")};
  absl::StatusOr<DaemonProcess> daemon = DaemonProcess::Start(dir.path(), args);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  base::UniqueFd out(::open(dir.File("smctl.out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(out);
  absl::StatusOr<base::ChildProcess> client = base::ChildProcess::Spawn(
      {.argv = {SM_SMCTL_PATH, "--socket", daemon->socket(), "bake",
                registry.host() + "/faults/bake:1"},
       .stdout_fd = out.get(), .stderr_fd = out.get()});
  ASSERT_TRUE(client.ok()) << client.status();
  std::string socket_dir;
  const int worker = WaitForFakeBakeWorker(daemon->state_dir(), absl::Now() + kWait, &socket_dir);
  ASSERT_GT(worker, 0) << "the bake never started the fake worker:\n"
                       << daemon->Stderr() << "\nsmctl:\n"
                       << test_support::ReadWholeFile(dir.File("smctl.out"));
  // Should an assertion below fail, the orphan must not outlive the test either.
  absl::Cleanup reap = [worker] {
    if (Alive(worker)) {
      ::kill(worker, SIGKILL);
    }
  };

  ASSERT_TRUE(daemon->process().Signal(SIGKILL).ok());
  ASSERT_TRUE(daemon->process().WaitFor(kWait).ok());
  absl::StatusOr<base::ExitStatus> client_exit = client->WaitFor(kWait);
  ASSERT_TRUE(client_exit.ok()) << client_exit.status();
  EXPECT_FALSE(client_exit->success()) << "the bake cannot have succeeded";
  ASSERT_TRUE(Alive(worker)) << "bake workers run in their own session and outlive a crash";

  absl::StatusOr<DaemonProcess> again = DaemonProcess::Start(dir.path(), args);
  ASSERT_TRUE(again.ok()) << again.status();
  // The sweep runs before the daemon serves, and Start waited for "serving".
  EXPECT_FALSE(Alive(worker)) << "orphan bake worker " << worker << " survived the restart:\n"
                              << again->Stderr();
  const std::string log = again->Stderr();
  EXPECT_TRUE(absl::StrContains(log, "killed orphaned bake worker")) << log;
  EXPECT_TRUE(absl::StrContains(log, std::to_string(worker))) << log;
  absl::StatusOr<store::Store> s =
      store::Store::Open(dir.File("state/store.db"), [] { return absl::ToUnixMillis(absl::Now()); });
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<store::BakeRecord> bake = s->GetBake(1);
  ASSERT_TRUE(bake.ok()) << bake.status();
  EXPECT_EQ(bake->status, "failed");
  EXPECT_FALSE(fs::exists(bake->temp_dir)) << bake->temp_dir;
  EXPECT_FALSE(fs::exists(socket_dir)) << "the killed worker's socket dir is left: " << socket_dir;
}

}  // namespace
}  // namespace supermachine::faults
