// File: daemon_crash_test.cc
// kill -9 of the real supermachined mid-Acquire, without a guest: the daemon is pointed at a
// fake worker (--worker-binary) that starts and never answers the agent handshake, so the
// Acquire is in flight (VM journaled 'starting', worker alive in its own session) when the
// daemon dies. The restarted daemon must reconcile: the VM row ends (`released`: the restore
// never finished, nobody holds the VM), the leftover worker is killed, nothing else stays.
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/store/store.h"
#include "tests/integration/daemon/daemon_process.h"
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
  ASSERT_EQ(vms->size(), 1u);
  EXPECT_EQ((*vms)[0].state, "ended");
  EXPECT_EQ((*vms)[0].end_cause.value_or("none"), "released") << again->Stderr();
  absl::StatusOr<std::vector<store::VmRecord>> live = s->ListVms(/*include_ended=*/false);
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(live->empty());
}

}  // namespace
}  // namespace supermachine::faults
