// File: daemon_test.cc
// The real supermachined: lifecycle (socket claim, SIGTERM), grpc.health.v1, /metrics, and
// startup recovery of interrupted bakes.
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <future>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "daemon/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/support/grpc_health.h"

namespace supermachine::test_support {
namespace {

using ::testing::HasSubstr;


TEST(Daemon, StandardHealthCheckAnswersServing) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<int> status = HealthCheck(d->socket());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, kHealthServing);
}

TEST(Daemon, MetricsEndpointServesBuildInfoAndSnapshotGauge) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<std::string> resp = HttpGet(d->metrics_port(), "/metrics");
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_THAT(*resp, HasSubstr("200 OK"));
  EXPECT_THAT(*resp, HasSubstr("supermachine_build_info{api=\"supermachine.v1\",version=\""));
  EXPECT_THAT(*resp, HasSubstr("supermachine_snapshots 0"));
}

TEST(Daemon, MetricsCountRpcsByMethodAndCode) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(HealthCheck(d->socket()).ok());  // grpc.health is not ours: not counted
  absl::StatusOr<CommandResult> ps =
      RunCommand({SM_SMCTL_PATH, "--socket", d->socket(), "ps"}, dir.path());
  ASSERT_TRUE(ps.ok()) << ps.status();
  absl::StatusOr<std::string> resp = HttpGet(d->metrics_port(), "/metrics");
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_THAT(*resp, HasSubstr("supermachine_rpcs_total{code=\"OK\",method=\"ListVMs\"} 1"));
}

TEST(Daemon, SigtermStopsCleanlyAndRemovesTheSocket) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->process().Signal(SIGTERM).ok());
  absl::StatusOr<base::ExitStatus> exit = d->process().WaitFor(absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << d->Stderr();
  EXPECT_FALSE(std::filesystem::exists(d->socket()));
  EXPECT_THAT(d->Stderr(), HasSubstr("level=info msg=\"stopped\""));
}

TEST(Daemon, SecondDaemonOnTheSameSocketIsRefused) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<CommandResult> second = RunDaemonToExit(
      {"--socket", d->socket(), "--state-dir", dir.File("state2"), "--metrics-address", ""},
      dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit.code, 1);
  EXPECT_THAT(second->err, HasSubstr("another supermachined is already running on " + d->socket()));
  // The first one is untouched.
  EXPECT_TRUE(HealthCheck(d->socket()).ok());
}

TEST(Daemon, StaleSocketFromAKilledDaemonIsReplaced) {
  ScratchDir dir;
  {
    absl::StatusOr<DaemonProcess> first = DaemonProcess::Start(dir.path());
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE(first->process().Signal(SIGKILL).ok());
    ASSERT_TRUE(first->process().Wait().ok());
  }
  ASSERT_TRUE(std::filesystem::exists(dir.File("sm.sock")));
  absl::StatusOr<DaemonProcess> second = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(second->Stderr(), HasSubstr("removed stale socket"));
  EXPECT_TRUE(HealthCheck(second->socket()).ok());
}

TEST(Daemon, SocketGetsTheConfiguredMode) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path(), {"--socket-mode", "0600"});
  ASSERT_TRUE(d.ok()) << d.status();
  struct stat st;
  ASSERT_EQ(::stat(d->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Daemon, MarksBakesInterruptedByACrashAsFailedAtStartup) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.File("state"));
  {
    absl::StatusOr<store::Store> s =
        store::Store::Open(dir.File("state/store.db"), [] { return int64_t{1}; });
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->BeginBake("key-1", "{}", dir.File("snapshots/.tmp-bake-1")).ok());
    // A row whose temp dir is not one the pipeline names: recovery must not delete it.
    ASSERT_TRUE(s->BeginBake("key-2", "{}", dir.File("precious")).ok());
  }
  std::filesystem::create_directories(dir.File("snapshots/.tmp-bake-1/half"));
  std::filesystem::create_directories(dir.File("precious"));
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->Stderr(), HasSubstr("bake was interrupted"));
  EXPECT_THAT(d->Stderr(), HasSubstr("interrupted_bakes=2"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("snapshots/.tmp-bake-1")));
  EXPECT_TRUE(std::filesystem::exists(dir.File("precious")));
}

TEST(Daemon, TcpWithoutTlsRefusesToStart) {
  ScratchDir dir;
  absl::StatusOr<CommandResult> r = RunDaemonToExit(
      {"--socket", dir.File("sm.sock"), "--state-dir", dir.File("state"), "--tcp", "127.0.0.1:0",
       "--token-file", dir.File("token")},
      dir.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 2);
  EXPECT_THAT(r->err, HasSubstr("--tcp requires TLS"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("sm.sock")));
}

TEST(Daemon, TakenMetricsPortFailsStartupWithTheAddress) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> first = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = "127.0.0.1:" + std::to_string(first->metrics_port());
  absl::StatusOr<CommandResult> r = RunDaemonToExit(
      {"--socket", dir.File("other.sock"), "--state-dir", dir.File("state2"), "--metrics-address",
       taken},
      dir.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 1);
  EXPECT_THAT(r->err, HasSubstr("metrics address " + taken));
  EXPECT_FALSE(std::filesystem::exists(dir.File("other.sock")));
}

// The sandbox restored workers get is decided at start and logged; by default the jail is on
// exactly when the daemon runs as root (docs/security.md "Worker sandbox").
TEST(Daemon, LogsTheWorkerSandboxItResolvedAtStart) {
  ScratchDir dir;
  absl::StatusOr<DaemonProcess> d = DaemonProcess::Start(dir.path());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->Stderr(), HasSubstr(::geteuid() == 0
                                         ? "jail on (auto: the daemon runs as root)"
                                         : "jail off (auto: the daemon does not run as root"));

  ScratchDir off_dir;
  {
    std::ofstream(off_dir.File("config.json")) << R"({"worker_jail": false})";
  }
  absl::StatusOr<DaemonProcess> off =
      DaemonProcess::Start(off_dir.path(), {"--config", off_dir.File("config.json")});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_THAT(off->Stderr(), HasSubstr("jail off (set in the config file)"));
}

TEST(Daemon, AJailItCannotHonourFailsTheStart) {
  ScratchDir dir;
  {
    std::ofstream(dir.File("config.json")) << R"({"worker_jail": true})";
  }
  std::vector<std::string> argv = {SM_SUPERMACHINED_PATH, "--socket", dir.File("sm.sock"),
                                   "--state-dir", dir.File("state"), "--config",
                                   dir.File("config.json"), "--metrics-address", ""};
  if (::geteuid() == 0) {
    // The refusal is for a daemon that is not root: run this one as nobody.
    ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                               "--clear-groups"});
  }
  absl::StatusOr<CommandResult> r = RunCommand(argv, dir.path());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit.code, 1) << r->err;
  EXPECT_THAT(r->err, HasSubstr("needs supermachined to run as root"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("sm.sock")));
}

}  // namespace
}  // namespace supermachine::test_support
