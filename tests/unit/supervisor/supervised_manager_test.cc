// File: supervised_manager_test.cc
// VmManager's supervision end to end without KVM: fake VMs (tests/unit/pool/fake_vm.h) whose
// agent is a fake agent on a Unix socket, so the real exit watcher (WaitExit) and health
// checks (exec) run. A workload killed under `always` comes back under a new id with the same
// name; a failing check turns the VM unhealthy (and restarts it under on-failure); a passing
// one makes it healthy.
#include <atomic>
#include <memory>

#include "daemon/agent/agent_client.h"
#include "daemon/vm/vm_manager.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/agent_client/fake_agent.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using testing::Eventually;
using testing::FakeJournal;
using testing::FakeLauncher;

// Generous: the watcher and checks run on real threads (a slow CI machine must pass).
constexpr absl::Duration kWait = absl::Seconds(30);

class SupervisedManagerTest : public ::testing::Test {
 protected:
  // Starts the fake agent with `handler` and a manager whose VMs all talk to it.
  void Start(agent::testing::FakeAgent::Handler handler) {
    fake_ = std::make_unique<agent::testing::FakeAgent>(dir_.Join("a.sock"), std::move(handler));
    client_ = std::make_unique<agent::AgentClient>(
        std::make_unique<agent::UnixDialer>(dir_.Join("a.sock")));
    launcher_.agent_ = client_.get();
    manager_ = std::make_unique<VmManager>(VmManagerOptions{
        .launcher = &launcher_,
        .journal = &journal_,
        .resolve_snapshot = [](const std::string&) -> absl::StatusOr<std::string> {
          return std::string("/snapshots/snap");
        },
        .default_pool = {.min = 0, .max = 4},
        .monitor_interval = absl::Milliseconds(10),
        .supervise_interval = absl::Milliseconds(10),
        .stop_grace = absl::Milliseconds(10),
    });
  }
  ~SupervisedManagerTest() override {
    manager_.reset();  // its watchers and checks use the agent client
    launcher_.agent_ = nullptr;
    client_.reset();
    fake_.reset();
  }
  // Waits until VM `name` runs under an id other than `id`.
  bool RestartedFrom(const std::string& name, const std::string& id) {
    return Eventually(
        [&] {
          absl::StatusOr<VmView> v = manager_->Get(name);
          return v.ok() && v->id != id;
        },
        kWait);
  }

  test_support::TempDir dir_;
  FakeJournal journal_;
  FakeLauncher launcher_{&journal_};
  std::unique_ptr<agent::testing::FakeAgent> fake_;
  std::unique_ptr<agent::AgentClient> client_;
  std::unique_ptr<VmManager> manager_;
};

// The agent answers an exec with exit `code`.
agent::testing::FakeAgent::Handler ExecExits(int code) {
  return [code](int fd, const agent::v1::Request& req) {
    if (!req.has_exec()) {
      return;
    }
    agent::v1::Response started;
    started.mutable_exec_started()->set_pid(7);
    agent::testing::Send(fd, started);
    agent::v1::ExecOutput exit;
    exit.mutable_exit()->set_exit_code(code);
    agent::testing::Send(fd, exit);
  };
}

TEST_F(SupervisedManagerTest, WorkloadKilledUnderAlwaysComesBackWithItsName) {
  std::atomic<int> waits{0};
  Start([&waits](int fd, const agent::v1::Request& req) {
    // The first run's workload is killed; later runs' waits end without an answer (the
    // watcher then asks again, as after an agent hiccup).
    if (req.has_wait_exit() && waits++ == 0) {
      agent::v1::Response r;
      r.mutable_workload_exit()->mutable_status()->set_signal(9);
      agent::testing::Send(fd, r);
    }
  });
  absl::StatusOr<VmView> vm = manager_->Acquire(
      {.snapshot = "snap", .name = "svc", .restart = {.kind = RestartPolicy::Kind::kAlways}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_TRUE(RestartedFrom("svc", vm->id));
  absl::StatusOr<VmView> now = manager_->Get("svc");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->restarts, 1u);
  ASSERT_TRUE(now->last_exit.has_value());
  EXPECT_EQ(now->last_exit->ToString(), "killed by signal 9");
  EXPECT_EQ(journal_.EndOf(vm->id), store::EndCause::kKilled);
  EXPECT_TRUE(launcher_.State(vm->id)->stopped);
  // The old id leads to the new one (logs -f follows it so); the running one has none.
  EXPECT_EQ(manager_->Successor(vm->id).value_or("?"), now->id);
  EXPECT_EQ(manager_->Successor(now->id).value_or("?"), "");
}

TEST_F(SupervisedManagerTest, FailingHealthCheckWithoutPolicyShowsUnhealthy) {
  Start(ExecExits(1));
  absl::StatusOr<VmView> vm = manager_->Acquire(
      {.snapshot = "snap",
       .name = "svc",
       .health = {.argv = {"probe"}, .interval = absl::Milliseconds(100), .retries = 2}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(manager_->Get("svc")->health, HealthState::kStarting);
  ASSERT_TRUE(Eventually([&] { return manager_->Get("svc")->health == HealthState::kUnhealthy; },
                         kWait));
  EXPECT_EQ(manager_->Get("svc")->id, vm->id) << "policy no: not restarted";
}

TEST_F(SupervisedManagerTest, UnhealthyUnderOnFailureIsRestarted) {
  Start(ExecExits(1));
  absl::StatusOr<VmView> vm = manager_->Acquire(
      {.snapshot = "snap",
       .name = "svc",
       .restart = {.kind = RestartPolicy::Kind::kOnFailure},
       .health = {.argv = {"probe"}, .interval = absl::Milliseconds(100), .retries = 2}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_TRUE(RestartedFrom("svc", vm->id));
  absl::StatusOr<VmView> now = manager_->Get("svc");
  ASSERT_TRUE(now.ok());
  ASSERT_TRUE(now->last_exit.has_value());
  EXPECT_EQ(now->last_exit->cause, "unhealthy");
  EXPECT_EQ(journal_.EndOf(vm->id), store::EndCause::kKilled);
  EXPECT_EQ(journal_.AcquiredOf(now->id)->restart_count, 1);
}

TEST_F(SupervisedManagerTest, PassingHealthCheckIsHealthy) {
  Start(ExecExits(0));
  absl::StatusOr<VmView> vm = manager_->Acquire(
      {.snapshot = "snap",
       .name = "svc",
       .restart = {.kind = RestartPolicy::Kind::kAlways},
       .health = {.argv = {"probe"}, .interval = absl::Milliseconds(100), .retries = 1}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_TRUE(Eventually([&] { return manager_->Get("svc")->health == HealthState::kHealthy; },
                         kWait));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(manager_->Get("svc")->health, HealthState::kHealthy);
  EXPECT_EQ(manager_->Get("svc")->id, vm->id);
}

}  // namespace
}  // namespace supermachine::vm
