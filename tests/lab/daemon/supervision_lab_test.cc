// File: supervision_lab_test.cc
// Supervision (docs/supervision.md) with real guests and the real supermachined: restart
// policies and health checks as the daemon enforces them on a restored VM's agent and worker,
// where tests/unit/pool/ drives the same code with fake VMs.
//
// One bake (parked, so every restore starts the workload afresh) of a busybox image whose
// workload waits on a FIFO and exits with the code written into it: each case steers its own
// VM through Exec, so one snapshot serves all of them. Cases, one daemon, 10 restores in all:
// - on-failure:3: the workload exits 1 four times; 3 restarts (new ids, count and last exit in
//   the API), then the VM stays ended as exited(1); `Logs --follow` on the first id follows
//   all four runs and ends when the policy gives up;
// - always: kill -9 of the worker; the new run answers Exec;
// - a failing health check without a restart policy: unhealthy, the VM keeps running;
// - a failing health check with on-failure: restarted (last exit "unhealthy"), healthy again.
// - the idle-VM balloon policy (docs/balloon.md "Daemon policy"): a VM idle past
//   balloon_idle_after_s is inflated (the worker's actual_pages), an exec deflates it.
// Deadlines are minutes (the emulated lab is slow, CI slower); nothing asserts on timing.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/lab/daemon/hang_report.h"
#include "tests/lab/daemon/web_snapshot.h"
#include "tests/support/worker_control.h"

namespace supermachine {
namespace {

namespace fs = std::filesystem;
using lab::ExecIn;
using lab::ExecOut;
using test_support::ReplyField;

constexpr char kSnapshot[] = "sup";
// How long anything that waits on a guest may take: a restore plus an exec is seconds in the
// emulated lab, and CI has been 3x slower.
constexpr absl::Duration kGuestWait = absl::Minutes(3);
// A case still running after this is stuck (each runs in seconds here): HangWatchdog reports
// the daemon's state and ends the run, rather than leaving it to the lab's timeout.
constexpr absl::Duration kCaseWatchdog = absl::Minutes(8);
// The idle-balloon case: a handed-out VM idle this long gets its balloon inflated (the bake's
// workers have one: worker_balloon is on by default). Longer than any other case's pauses
// between execs, so only that case sees an inflation.
constexpr absl::Duration kBalloonIdleAfter = absl::Seconds(20);

// The workload: announce the run on the console, make the control FIFO, block on it (no
// polling: idle VMs cost no CPU), exit with the code written into it.
constexpr char kWorkload[] =
    "echo supervision-lab-run; /bin/busybox mkdir -p /tmp && /bin/busybox mkfifo /tmp/ctl && "
    "read code < /tmp/ctl; echo supervision-lab-exit \"$code\"; exit \"$code\"";

// Exec argv that makes the workload of a VM exit with `code`. It waits for the FIFO: a VM is
// handed out when its agent answers, which may be before the workload has made it.
std::vector<std::string> ExitWith(int code) {
  return {"/bin/busybox", "sh", "-c",
          absl::StrCat("while [ ! -p /tmp/ctl ]; do /bin/busybox sleep 0.2; done; echo ", code,
                       " > /tmp/ctl")};
}

// The health check of the health cases: healthy until /tmp/sick exists.
const std::vector<std::string>& HealthCmd() {
  static const std::vector<std::string> cmd = {"/bin/busybox", "sh", "-c", "test ! -e /tmp/sick"};
  return cmd;
}

std::string Describe(const v1::VM& vm) {
  return absl::StrCat("{id ", vm.id(), " state ", v1::VMState_Name(vm.state()), " end ",
                      v1::EndCause_Name(vm.end_cause()), " exit_code ", vm.exit_code(),
                      " restarts ", vm.restart_count(), " last_exit ", vm.last_exit().cause(), "/",
                      vm.last_exit().exit_code(), "/", vm.last_exit().signal(), " health ",
                      v1::HealthStatus_Name(vm.health()), " restarting ", vm.restarting(), "}");
}

// A `Logs --follow` stream read on its own thread. The destructor cancels it, so a test that
// fails half-way never leaves the thread running.
class LogFollower {
 public:
  LogFollower(v1::Supermachine::Stub& stub, const std::string& vm_id) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(20));
    thread_ = std::thread([this, &stub, vm_id] {
      v1::LogsRequest req;
      req.set_vm_id(vm_id);
      req.set_follow(true);
      auto reader = stub.Logs(&ctx_, req);
      v1::LogChunk chunk;
      while (reader->Read(&chunk)) {
        text_ += chunk.data();
      }
      status_ = reader->Finish();
    });
  }
  ~LogFollower() {
    ctx_.TryCancel();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  LogFollower(const LogFollower&) = delete;
  LogFollower& operator=(const LogFollower&) = delete;

  // Waits for the stream to end (the daemon ends it, or the 20 min deadline does).
  grpc::Status Wait() {
    thread_.join();
    return status_;
  }
  // After Wait.
  const std::string& text() const { return text_; }

 private:
  grpc::ClientContext ctx_;
  std::string text_;
  grpc::Status status_;
  std::thread thread_;
};

// One daemon and one bake for every case (a bake boots a guest; restores are cheap).
class SupervisionLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new test_support::ScratchDir();
    setup_error_ = StartDaemonAndBake();
  }

  static void TearDownTestSuite() {
    if (daemon_ != nullptr) {
      // A clean stop ends the workers too (no re-adoption needed after the test).
      (void)daemon_->process().Signal(SIGTERM);
      (void)daemon_->process().WaitFor(absl::Seconds(120));
    }
    stub_.reset();
    delete daemon_;
    daemon_ = nullptr;
    delete scratch_;
    scratch_ = nullptr;
  }

  static std::string StartDaemonAndBake() {
    const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
    if (kernel_dir.empty()) {
      return "guest kernel not built: run kernel/build.sh";
    }
    if (!fs::exists("/dev/kvm")) {
      return "no /dev/kvm: run via tests/lab/run";
    }
    fs::create_directories(scratch_->File("work"));
    if (absl::Status st = lab::WriteBusyboxLayout(scratch_->File("layout"), scratch_->File("work"),
                                                  {"/bin/busybox", "sh", "-c", kWorkload});
        !st.ok()) {
      return absl::StrCat("could not write the busybox OCI layout: ", st.ToString());
    }
    const std::string config = scratch_->File("config.json");
    std::ofstream(config) << absl::StrCat(
        R"({"kernel": ")", kernel_dir, R"(/vmlinux", "guest_agent": ")", SM_GUEST_AGENT_BIN,
        R"(", "balloon_idle_after_s": )", absl::ToInt64Seconds(kBalloonIdleAfter),
        R"(, "default_pool": {"min": 0, "max": 4, "acquire_timeout_s": 600}})");
    auto daemon = test_support::DaemonProcess::Start(
        scratch_->path(), {"--config", config, "--worker-binary", SM_WORKER_BIN});
    if (!daemon.ok()) {
      return daemon.status().ToString();
    }
    daemon_ = new test_support::DaemonProcess(std::move(*daemon));
    stub_ = v1::Supermachine::NewStub(
        grpc::CreateChannel("unix:" + daemon_->socket(), grpc::InsecureChannelCredentials()));

    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(20));
    v1::BakeRequest req;
    req.set_image("oci-layout:" + scratch_->File("layout") + ":v1");
    req.set_name(kSnapshot);
    req.set_readiness("parked");  // each restore starts the workload: a fresh FIFO per run
    auto reader = stub_->Bake(&ctx, req);
    v1::BakeProgress p;
    bool baked = false;
    while (reader->Read(&p)) {
      baked = baked || p.has_result();
    }
    grpc::Status st = reader->Finish();
    if (!st.ok() || !baked) {
      return absl::StrCat("bake failed: ", st.error_message(), "\n", daemon_->Stderr());
    }
    return "";
  }

  void SetUp() override {
    ASSERT_EQ(setup_error_, "");
    // Every wait below is bounded, but a daemon RPC that never returns is not: report it.
    watchdog_.emplace(
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), kCaseWatchdog,
        daemon_->process().pid(), [] { return daemon_->Stderr(); });
  }
  void TearDown() override { watchdog_.reset(); }
  std::optional<lab::HangWatchdog> watchdog_;

  // Acquires a VM of the snapshot named `name`; "" on failure (with the test failed).
  static v1::VM Acquire(const std::string& name, const std::string& policy,
                        const std::optional<v1::HealthCheck>& health = std::nullopt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    v1::AcquireRequest req;
    req.set_snapshot(kSnapshot);
    req.set_name(name);
    req.set_restart_policy(policy);
    if (health) {
      *req.mutable_health_check() = *health;
    }
    v1::AcquireResponse resp;
    grpc::Status st = stub_->Acquire(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << daemon_->Stderr();
    return resp.vm();
  }

  static void Release(const std::string& id_or_name) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
    v1::ReleaseRequest req;
    req.set_vm_id(id_or_name);
    v1::ReleaseResponse resp;
    grpc::Status st = stub_->Release(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << "release " << id_or_name << ": " << st.error_message() << "\n"
                         << daemon_->Stderr();
  }

  // Polls InspectVM(name) until `done` holds, for up to kGuestWait. nullopt on timeout, with
  // what was seen last in `*last`.
  static std::optional<v1::VM> AwaitVm(const std::string& name,
                                       const std::function<bool(const v1::VM&)>& done,
                                       std::string* last) {
    for (const absl::Time until = absl::Now() + kGuestWait; absl::Now() < until;) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::InspectVMRequest req;
      req.set_vm_id(name);
      v1::InspectVMResponse resp;
      grpc::Status st = stub_->InspectVM(&ctx, req, &resp);
      if (st.ok() && done(resp.vm())) {
        return resp.vm();
      }
      *last = st.ok() ? Describe(resp.vm()) : absl::StrCat("InspectVM: ", st.error_message());
      absl::SleepFor(absl::Milliseconds(300));
    }
    return std::nullopt;
  }

  // The rows of ListVMs(all) with these ids, in the same order (a default VM for one missing).
  static std::vector<v1::VM> Rows(const std::vector<std::string>& ids) {
    grpc::ClientContext ctx;
    v1::ListVMsRequest req;
    req.set_all(true);
    v1::ListVMsResponse resp;
    grpc::Status st = stub_->ListVMs(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<v1::VM> out(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      for (const v1::VM& vm : resp.vms()) {
        if (vm.id() == ids[i]) {
          out[i] = vm;
        }
      }
    }
    return out;
  }

  // Polls ListVMs(all) until the row of `id` is ended, for up to kGuestWait.
  static bool AwaitRowEnded(const std::string& id, std::string* last) {
    for (const absl::Time until = absl::Now() + kGuestWait; absl::Now() < until;) {
      const v1::VM row = Rows({id})[0];
      if (row.state() == v1::VM_STATE_ENDED) {
        return true;
      }
      *last = Describe(row);
      absl::SleepFor(absl::Milliseconds(300));
    }
    return false;
  }

  // Running VMs (ListVMs without `all`) named `name`.
  static int RunningNamed(const std::string& name) {
    grpc::ClientContext ctx;
    v1::ListVMsResponse resp;
    grpc::Status st = stub_->ListVMs(&ctx, v1::ListVMsRequest(), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    int n = 0;
    for (const v1::VM& vm : resp.vms()) {
      n += vm.name() == name && vm.state() != v1::VM_STATE_ENDED ? 1 : 0;
    }
    return n;
  }

  static v1::HealthCheck Check(uint32_t retries) {
    v1::HealthCheck check;
    for (const std::string& a : HealthCmd()) {
      check.add_cmd(a);
    }
    check.set_interval_ms(1000);
    // A check that times out fails: generous, so a slow machine never fails one by accident.
    check.set_timeout_ms(60000);
    check.set_retries(retries);
    return check;
  }

  static test_support::ScratchDir* scratch_;
  static test_support::DaemonProcess* daemon_;
  static std::unique_ptr<v1::Supermachine::Stub> stub_;
  static std::string setup_error_;
};

test_support::ScratchDir* SupervisionLab::scratch_ = nullptr;
test_support::DaemonProcess* SupervisionLab::daemon_ = nullptr;
std::unique_ptr<v1::Supermachine::Stub> SupervisionLab::stub_;
std::string SupervisionLab::setup_error_;

TEST_F(SupervisionLab, OnFailureMaxRestartsThreeTimesThenStaysExited) {
  const v1::VM first = Acquire("fails", "on-failure:3");
  ASSERT_FALSE(first.id().empty());
  EXPECT_EQ(first.restart_policy(), "on-failure:3");
  EXPECT_EQ(first.restart_count(), 0u);

  // logs -f on the first run's id: it must carry on through each restart and end by itself
  // when the policy gives up.
  LogFollower follower(*stub_, first.id());

  std::vector<std::string> ids = {first.id()};
  for (uint32_t restarts = 1; restarts <= 3; ++restarts) {
    (void)ExecIn(*stub_, ids.back(), ExitWith(1));  // its reply may race with the VM's end
    std::string last;
    std::optional<v1::VM> next = AwaitVm("fails", [&](const v1::VM& vm) {
      return vm.id() != ids.back() && vm.restart_count() == restarts;
    }, &last);
    ASSERT_TRUE(next.has_value()) << "restart " << restarts << " not seen; last: " << last
                                  << "\n" << daemon_->Stderr();
    EXPECT_EQ(next->last_exit().cause(), "exited") << Describe(*next);
    EXPECT_EQ(next->last_exit().exit_code(), 1) << Describe(*next);
    ids.push_back(next->id());
  }
  // The fourth exit: the policy's max is reached.
  (void)ExecIn(*stub_, ids.back(), ExitWith(1));
  std::string last;
  ASSERT_TRUE(AwaitRowEnded(ids.back(), &last)) << "run 4 never ended; last: " << last;
  // Ends when the daemon gave up for good: no successor, no restart under way.
  const grpc::Status logs_status = follower.Wait();
  EXPECT_TRUE(logs_status.ok()) << logs_status.error_message();
  const std::string logs = follower.text();
  const std::vector<std::string> lines = absl::StrSplit(logs, '\n');
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return absl::StrContains(l, "supervision-lab-run"); }),
            4)
      << "logs -f shows each of the 4 runs:\n" << logs;
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return absl::StrContains(l, "supervision-lab-exit 1"); }),
            4)
      << logs;

  const std::vector<v1::VM> rows = Rows(ids);
  for (uint32_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("run ", i, " ", ids[i]));
    EXPECT_EQ(rows[i].state(), v1::VM_STATE_ENDED) << Describe(rows[i]);
    EXPECT_EQ(rows[i].end_cause(), v1::END_CAUSE_EXITED) << Describe(rows[i]);
    EXPECT_EQ(rows[i].exit_code(), 1) << Describe(rows[i]);
    EXPECT_EQ(rows[i].restart_count(), i) << Describe(rows[i]);
    EXPECT_EQ(rows[i].restart_policy(), "on-failure:3");
  }
  EXPECT_EQ(RunningNamed("fails"), 0);
  grpc::ClientContext ctx;
  v1::InspectVMRequest req;
  req.set_vm_id("fails");
  v1::InspectVMResponse resp;
  EXPECT_EQ(stub_->InspectVM(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND)
      << "the VM stays ended: " << Describe(resp.vm());
}

TEST_F(SupervisionLab, AlwaysRestartsAfterTheWorkerIsKilledAndTheNewRunAnswersExec) {
  const v1::VM first = Acquire("phoenix", "always");
  ASSERT_FALSE(first.id().empty());
  ASSERT_GT(first.worker_pid(), 0);
  ExecOut before = ExecIn(*stub_, first.id(), {"/bin/busybox", "echo", "first-run"});
  ASSERT_EQ(before.code, 0) << before.err;

  ASSERT_EQ(::kill(first.worker_pid(), SIGKILL), 0) << "kill -9 " << first.worker_pid();
  std::string last;
  // >= 1: a restore that fails (the emulated lab's L2 guests triple-fault now and then) is
  // retried after backoff and counts as an attempt (docs/supervision.md).
  std::optional<v1::VM> next = AwaitVm("phoenix", [&](const v1::VM& vm) {
    return vm.id() != first.id() && vm.restart_count() >= 1;
  }, &last);
  ASSERT_TRUE(next.has_value()) << "no restart seen; last: " << last << "\n" << daemon_->Stderr();
  EXPECT_EQ(next->last_exit().cause(), "worker_crash") << Describe(*next);
  EXPECT_EQ(next->last_exit().signal(), SIGKILL) << Describe(*next);
  EXPECT_NE(next->worker_pid(), first.worker_pid());

  ExecOut after = ExecIn(*stub_, next->id(), {"/bin/busybox", "echo", "second-run"});
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(after.out, "second-run\n");
  // By name too: clients address supervised VMs by name, ids change per run.
  ExecOut by_name = ExecIn(*stub_, "phoenix", {"/bin/busybox", "echo", "by-name"});
  EXPECT_EQ(by_name.out, "by-name\n") << by_name.err;

  const std::vector<v1::VM> rows = Rows({first.id()});
  EXPECT_EQ(rows[0].end_cause(), v1::END_CAUSE_WORKER_CRASH) << Describe(rows[0]);
  Release("phoenix");
  EXPECT_EQ(RunningNamed("phoenix"), 0);
}

TEST_F(SupervisionLab, FailingHealthCheckWithoutRestartPolicyLeavesTheVmUnhealthyAndRunning) {
  const v1::VM vm = Acquire("sick-no", "no", Check(2));
  ASSERT_FALSE(vm.id().empty());
  std::string last;
  ASSERT_TRUE(AwaitVm("sick-no", [](const v1::VM& v) {
    return v.health() == v1::HEALTH_STATUS_HEALTHY;
  }, &last).has_value()) << "never healthy; last: " << last << "\n" << daemon_->Stderr();

  ExecOut sick = ExecIn(*stub_, vm.id(), {"/bin/busybox", "touch", "/tmp/sick"});
  ASSERT_EQ(sick.code, 0) << sick.err;
  std::optional<v1::VM> unhealthy = AwaitVm("sick-no", [](const v1::VM& v) {
    return v.health() == v1::HEALTH_STATUS_UNHEALTHY;
  }, &last);
  ASSERT_TRUE(unhealthy.has_value()) << "never unhealthy; last: " << last;
  EXPECT_EQ(unhealthy->id(), vm.id()) << "policy no: never restarted";
  EXPECT_EQ(unhealthy->restart_count(), 0u);
  ExecOut still = ExecIn(*stub_, vm.id(), {"/bin/busybox", "echo", "still-up"});
  EXPECT_EQ(still.out, "still-up\n") << still.err;
  Release(vm.id());
}

TEST_F(SupervisionLab, FailingHealthCheckRestartsTheVmUnderOnFailure) {
  const v1::VM first = Acquire("sick", "on-failure", Check(2));
  ASSERT_FALSE(first.id().empty());
  std::string last;
  ASSERT_TRUE(AwaitVm("sick", [](const v1::VM& v) {
    return v.health() == v1::HEALTH_STATUS_HEALTHY;
  }, &last).has_value()) << "never healthy; last: " << last << "\n" << daemon_->Stderr();

  ExecOut sick = ExecIn(*stub_, first.id(), {"/bin/busybox", "touch", "/tmp/sick"});
  ASSERT_EQ(sick.code, 0) << sick.err;
  // Unhealthy lasts one supervise tick before the restart replaces the run: the new run's
  // last exit is the API's record of it.
  std::optional<v1::VM> next = AwaitVm("sick", [&](const v1::VM& v) {
    return v.id() != first.id() && v.restart_count() >= 1;  // >= 1: as in the kill -9 case
  }, &last);
  ASSERT_TRUE(next.has_value()) << "no restart seen; last: " << last << "\n" << daemon_->Stderr();
  EXPECT_EQ(next->last_exit().cause(), "unhealthy") << Describe(*next);
  const std::vector<v1::VM> rows = Rows({first.id()});
  EXPECT_EQ(rows[0].end_cause(), v1::END_CAUSE_KILLED) << Describe(rows[0]);

  // The new run is a fresh restore (no /tmp/sick): its checks pass again.
  std::optional<v1::VM> healthy = AwaitVm("sick", [&](const v1::VM& v) {
    return v.health() == v1::HEALTH_STATUS_HEALTHY;
  }, &last);
  ASSERT_TRUE(healthy.has_value()) << "restarted run never healthy; last: " << last;
  EXPECT_EQ(healthy->id(), next->id());
  Release("sick");
}

TEST_F(SupervisionLab, AnIdleVmsBalloonIsInflatedAndAnExecDeflatesIt) {
  const v1::VM vm = Acquire("idle", "no");
  ASSERT_FALSE(vm.id().empty());
  // The worker's own view, on its control socket (<state>/vms/<id>/control).
  const std::string control = absl::StrCat(daemon_->state_dir(), "/vms/", vm.id(), "/control");
  auto actual = [&] { return test_support::WorkerCommand(control, "balloon"); };
  ASSERT_THAT(actual(), ::testing::StartsWith("OK balloon ")) << "no balloon in the baked VM";
  EXPECT_EQ(ReplyField(actual(), "actual_pages"), 0u) << "inflated before it was idle";

  // Idle past balloon_idle_after_s: the daemon sets 70% of the guest's RAM as the target and
  // the guest gives that many pages to the balloon.
  std::string last;
  uint64_t inflated = 0;
  for (const absl::Time until = absl::Now() + kBalloonIdleAfter + kGuestWait;
       absl::Now() < until && inflated == 0;) {
    last = actual();
    inflated = ReplyField(last, "actual_pages").value_or(0);
    absl::SleepFor(absl::Seconds(1));
  }
  ASSERT_GT(inflated, 0u) << "never inflated; last: " << last << "\n" << daemon_->Stderr();
  EXPECT_GT(ReplyField(last, "inflated_pages"), 0u) << last;

  // Activity: the exec first deflates (target 0), and the guest answers all the same.
  ExecOut out = ExecIn(*stub_, vm.id(), {"/bin/busybox", "echo", "awake"});
  EXPECT_EQ(out.out, "awake\n") << out.err;
  uint64_t now_actual = inflated;
  for (const absl::Time until = absl::Now() + kGuestWait; absl::Now() < until && now_actual != 0;) {
    last = actual();
    now_actual = ReplyField(last, "actual_pages").value_or(now_actual);
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_EQ(now_actual, 0u) << "not deflated after the exec; last: " << last;
  Release(vm.id());
}

}  // namespace
}  // namespace supermachine
