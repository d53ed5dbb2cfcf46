// File: idle_balloon_manager_test.cc
// The idle balloon policy as VmManager wires it (daemon/vm/vm_manager.cc): fake VMs whose
// control socket is a fake worker recording every command line, a snapshot dir whose
// metadata.json says 256 MiB. A handed-out VM left alone gets the 70 % target over its control
// socket; BeginActivity deflates it before returning; a pooled VM is left alone. Real threads
// and clock, so every wait is an Eventually with a generous deadline and nothing asserts time.
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "daemon/bake/metadata.h"
#include "daemon/vm/vm_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/pool/fake_vm.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {
namespace {

using ::testing::Contains;
using ::testing::Not;
using testing::Eventually;
using testing::FakeJournal;
using testing::FakeVm;
using testing::FakeVmState;

constexpr absl::Duration kWait = absl::Seconds(60);

// A worker control socket that answers every line with "OK balloon-target pages=N" and keeps
// the lines it got, one connection after another.
class FakeWorkerControl {
 public:
  explicit FakeWorkerControl(std::string path) : path_(std::move(path)) {
    fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_.get(), 8), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeWorkerControl() {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  void Serve() {
    while (!stop_) {
      base::UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) {
        continue;
      }
      std::string line;
      char ch = 0;
      while (::recv(c.get(), &ch, 1, 0) == 1 && ch != '\n') {
        line.push_back(ch);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(line);
      }
      const std::string pages = line.substr(line.find(' ') + 1);
      const std::string reply = "OK balloon-target pages=" + pages + "\n";
      (void)::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }

  std::string path_;
  base::UniqueFd fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class ControlledVm : public FakeVm {
 public:
  ControlledVm(std::string id, std::string control)
      : FakeVm(std::move(id), std::make_shared<FakeVmState>()), control_(std::move(control)) {}
  std::string control_socket() const override { return control_; }

 private:
  std::string control_;
};

// Every VM it restores talks to the same fake worker control socket.
class ControlledLauncher : public VmLauncher {
 public:
  explicit ControlledLauncher(std::string control) : control_(std::move(control)) {}
  absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                    absl::Time) override {
    return std::make_unique<ControlledVm>(request.vm_id, control_);
  }

 private:
  std::string control_;
};

class IdleBalloonManagerTest : public ::testing::Test {
 protected:
  IdleBalloonManagerTest() {
    snapshot_dir_ = tmp_.Join("snap");
    std::filesystem::create_directories(snapshot_dir_);
    bake::SnapshotMetadata md;
    md.name = "snap";
    // The strict parser wants every digest well-formed.
    const image::Digest d = *image::Digest::Parse("sha256:" + std::string(64, 'a'));
    md.image_digest = md.cheap_key = md.delta_key = md.bake_key = d;
    md.kernel_digest = md.agent_digest = d;
    md.launch.argv = {"/bin/sh"};
    md.readiness = *bake::ParseReadiness("parked");
    md.memory_mib = 256;
    EXPECT_TRUE(bake::WriteMetadata(snapshot_dir_, md).ok());
  }

  std::unique_ptr<VmManager> Make(uint32_t pool_min, bool keep_handed_out_on_stop = false) {
    VmManagerOptions options{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [this](const std::string& name) -> absl::StatusOr<std::string> {
          if (name == "snap") {
            return snapshot_dir_;
          }
          return absl::NotFoundError("no such snapshot");
        },
        // Only configured pools keep ready VMs (StartPools); the default pool has min 0.
        .pools = {{"snap", PoolConfig{.min = pool_min, .max = 4}}},
        .default_pool = {.min = 0, .max = 4},
        .monitor_interval = absl::Milliseconds(10),
        .supervise_interval = absl::Milliseconds(10),
        // Short enough for a unit test; the tests only wait for what it leads to.
        .idle_balloon = {.idle_after = absl::Milliseconds(200), .target_percent = 70},
        .balloon_interval = absl::Milliseconds(20),
    };
    options.keep_handed_out_on_stop = keep_handed_out_on_stop;
    return std::make_unique<VmManager>(std::move(options));
  }

  test_support::TempDir tmp_;
  std::string snapshot_dir_;
  FakeWorkerControl worker_{tmp_.Join("control")};
  FakeJournal journal_;
  ControlledLauncher launcher_{worker_.path()};
};

TEST_F(IdleBalloonManagerTest, AnIdleHandedOutVmIsInflatedAndAnExecDeflatesItFirst) {
  std::unique_ptr<VmManager> m = Make(0);
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(vm.ok()) << vm.status();
  // 256 MiB = 65536 pages; 70 % rounded down.
  ASSERT_TRUE(Eventually([&] { return m->BalloonsInflated() == 1; }, kWait));
  EXPECT_THAT(worker_.lines(), Contains("balloon-target 45875"));
  {
    IdleBalloon::Activity exec = m->BeginActivity(vm->id);
    // Deflated before BeginActivity returned, i.e. before the exec would start.
    EXPECT_THAT(worker_.lines(), Contains("balloon-target 0"));
    EXPECT_EQ(m->BalloonsInflated(), 0u);
  }
}

// keep_vms_on_stop: the next daemon takes a re-adopted VM as deflated, so a VM left running
// through a clean stop is deflated before it is left.
TEST_F(IdleBalloonManagerTest, AVmKeptThroughAStopIsDeflatedFirst) {
  std::unique_ptr<VmManager> m = Make(0, /*keep_handed_out_on_stop=*/true);
  absl::StatusOr<VmView> vm = m->Acquire({.snapshot = "snap"});
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_TRUE(Eventually([&] { return m->BalloonsInflated() == 1; }, kWait));
  EXPECT_THAT(worker_.lines(), Not(Contains("balloon-target 0")));
  vm = absl::CancelledError("drop");
  m.reset();
  EXPECT_THAT(worker_.lines(), Contains("balloon-target 0"));
}

TEST_F(IdleBalloonManagerTest, APooledVmIsLeftAlone) {
  std::unique_ptr<VmManager> m = Make(1);
  ASSERT_TRUE(m->StartPools().ok());
  ASSERT_TRUE(Eventually(
      [&] {
        auto stats = m->PoolStatistics();
        return !stats.empty() && stats[0].stats.ready == 1;
      },
      kWait));
  // Several idle periods and many ticks of the policy pass with the VM only in the pool.
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(worker_.lines().empty());
  EXPECT_EQ(m->BalloonsInflated(), 0u);
}

}  // namespace
}  // namespace supermachine::vm
