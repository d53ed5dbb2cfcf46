// File: daemon_config_test.cc
#include "daemon/config/daemon_config.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::config {
namespace {

using ::testing::HasSubstr;

const UserEnvironment kRoot = {.uid = 0, .home = "/root"};
const UserEnvironment kAlice = {.uid = 1000, .home = "/home/alice",
                                .xdg_runtime_dir = "/run/user/1000"};

ParsedFlags Parse(std::vector<const char*> args, const UserEnvironment& env = kAlice) {
  args.insert(args.begin(), "supermachined");
  return ParseDaemonFlags(static_cast<int>(args.size()), args.data(), env, "1.2.3");
}

TEST(DefaultPaths, RootUsesSystemPaths) {
  EXPECT_EQ(DefaultSocketPath(kRoot), "/run/supermachine/supermachined.sock");
  EXPECT_EQ(DefaultStateDir(kRoot), "/var/lib/supermachine");
}

TEST(DefaultPaths, UserUsesXdgDirs) {
  UserEnvironment env = kAlice;
  env.xdg_state_home = "/home/alice/state";
  EXPECT_EQ(DefaultSocketPath(env), "/run/user/1000/supermachine/supermachined.sock");
  EXPECT_EQ(DefaultStateDir(env), "/home/alice/state/supermachine");
}

TEST(DefaultPaths, UserWithoutXdgFallsBackToHomeAndRunUser) {
  const UserEnvironment env = {.uid = 1001, .home = "/home/bob"};
  EXPECT_EQ(DefaultSocketPath(env), "/run/user/1001/supermachine/supermachined.sock");
  EXPECT_EQ(DefaultStateDir(env), "/home/bob/.local/state/supermachine");
}

TEST(ParseDaemonFlags, DefaultsWithoutFlags) {
  ParsedFlags p = Parse({});
  ASSERT_FALSE(p.exit_now) << p.output;
  EXPECT_EQ(p.config.socket, "/run/user/1000/supermachine/supermachined.sock");
  EXPECT_EQ(p.config.state_dir, "/home/alice/.local/state/supermachine");
  EXPECT_EQ(p.config.snapshots_dir, "/home/alice/.local/state/supermachine/snapshots");
  EXPECT_EQ(p.config.socket_mode, 0660u);
  EXPECT_EQ(p.config.metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(p.config.log_level, LogLevel::kInfo);
}

TEST(ParseDaemonFlags, FlagsOverrideConfigFile) {
  test_support::TempDir dir;
  std::ofstream(dir.Join("c.json"))
      << R"({"socket": "/x/file.sock", "state_dir": "/x/state", "socket_mode": "0600",
            "log_level": "debug", "metrics_address": "0.0.0.0:1"})";
  const std::string path = dir.Join("c.json");
  ParsedFlags p = Parse({"--config", path.c_str(), "--socket", "/x/flag.sock", "--metrics-address", ""});
  ASSERT_FALSE(p.exit_now) << p.output;
  EXPECT_EQ(p.config.socket, "/x/flag.sock");
  EXPECT_EQ(p.config.state_dir, "/x/state");
  EXPECT_EQ(p.config.socket_mode, 0600u);
  EXPECT_EQ(p.config.log_level, LogLevel::kDebug);
  EXPECT_EQ(p.config.metrics_address, "");
}

TEST(ParseDaemonFlags, UnknownConfigFieldIsRefusedByName) {
  test_support::TempDir dir;
  std::ofstream(dir.Join("c.json")) << R"({"sockett": "/x"})";
  const std::string path = dir.Join("c.json");
  ParsedFlags p = Parse({"--config", path.c_str()});
  EXPECT_TRUE(p.exit_now);
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("unknown field 'sockett'"));
}

TEST(ParseDaemonFlags, MissingConfigFileIsAnError) {
  ParsedFlags p = Parse({"--config", "/nonexistent/c.json"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("/nonexistent/c.json"));
}

TEST(ParseDaemonFlags, NonOctalSocketModeIsRefused) {
  ParsedFlags p = Parse({"--socket-mode", "0998"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("socket mode '0998'"));
}

TEST(ParseDaemonFlags, BadLogLevelIsRefused) {
  ParsedFlags p = Parse({"--log-level", "loud"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("--log-level 'loud'"));
}

TEST(ParseDaemonFlags, MetricsAddressWithoutPortIsRefused) {
  ParsedFlags p = Parse({"--metrics-address", "localhost"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("expected HOST:PORT"));
}

TEST(ParseDaemonFlags, TcpWithoutTlsIsRefused) {
  ParsedFlags p = Parse({"--tcp", "0.0.0.0:7443", "--token-file", "/t"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("--tcp requires TLS"));
}

TEST(ParseDaemonFlags, TcpWithoutTokenIsRefused) {
  ParsedFlags p = Parse({"--tcp", "0.0.0.0:7443", "--tls-cert", "/c", "--tls-key", "/k"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("--tcp requires --token-file"));
}

TEST(ParseDaemonFlags, FullyConfiguredTcpIsAccepted) {
  ParsedFlags p = Parse({"--tcp", "0.0.0.0:7443", "--tls-cert", "/c", "--tls-key", "/k",
                         "--tls-client-ca", "/ca", "--token-file", "/t"});
  ASSERT_FALSE(p.exit_now) << p.output;
  EXPECT_EQ(p.config.tcp, "0.0.0.0:7443");
  EXPECT_EQ(p.config.tls_cert, "/c");
  EXPECT_EQ(p.config.tls_key, "/k");
  EXPECT_EQ(p.config.tls_client_ca, "/ca");
  EXPECT_EQ(p.config.token_file, "/t");
}

TEST(ApplyJsonConfig, ReadsRemoteAccessFields) {
  DaemonConfig c;
  ASSERT_TRUE(ApplyJsonConfig(R"({"tcp": "[::]:7443", "tls_cert": "/c", "tls_key": "/k",
                                  "tls_client_ca": "/ca", "token_file": "/t"})",
                              &c)
                  .ok());
  EXPECT_EQ(c.tcp, "[::]:7443");
  EXPECT_EQ(c.tls_cert, "/c");
  EXPECT_EQ(c.tls_key, "/k");
  EXPECT_EQ(c.tls_client_ca, "/ca");
  EXPECT_EQ(c.token_file, "/t");
}

TEST(ApplyJsonConfig, WorkerBalloonIsOnByDefaultAndMustBeABool) {
  DaemonConfig c;
  EXPECT_TRUE(c.worker_balloon);
  ASSERT_TRUE(ApplyJsonConfig(R"({"worker_balloon": false})", &c).ok());
  EXPECT_FALSE(c.worker_balloon);
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_balloon": 1})", &c).ok());
}

TEST(ApplyJsonConfig, WorkerKsmIsOffByDefaultAndMustBeABool) {
  DaemonConfig c;
  EXPECT_FALSE(c.worker_ksm);
  ASSERT_TRUE(ApplyJsonConfig(R"({"worker_ksm": true})", &c).ok());
  EXPECT_TRUE(c.worker_ksm);
  EXPECT_FALSE(ApplyJsonConfig(R"({"worker_ksm": "yes"})", &c).ok());
  EXPECT_FALSE(c.keep_vms_on_stop);
  ASSERT_TRUE(ApplyJsonConfig(R"({"keep_vms_on_stop": true})", &c).ok());
  EXPECT_TRUE(c.keep_vms_on_stop);
  absl::Status bad = ApplyJsonConfig(R"({"keep_vms_on_stop": 1})", &c);
  EXPECT_THAT(bad.message(), HasSubstr("'keep_vms_on_stop' must be true or false"));
}

TEST(ApplyJsonConfig, ConsoleLogIsBoundedByDefaultAndZeroMeansUnbounded) {
  DaemonConfig c;
  EXPECT_EQ(c.console_log_max_mib, 8u);
  ASSERT_TRUE(ApplyJsonConfig(R"({"console_log_max_mib": 0})", &c).ok());
  EXPECT_EQ(c.console_log_max_mib, 0u);
  ASSERT_TRUE(ApplyJsonConfig(R"({"console_log_max_mib": 64})", &c).ok());
  EXPECT_EQ(c.console_log_max_mib, 64u);
}

TEST(ApplyJsonConfig, ConsoleLogMaxMibRejectsNegativeAndHugeValues) {
  DaemonConfig c;
  EXPECT_FALSE(ApplyJsonConfig(R"({"console_log_max_mib": -1})", &c).ok());
  absl::Status st = ApplyJsonConfig(R"({"console_log_max_mib": 1000000})", &c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("console_log_max_mib"), absl::string_view::npos);
  EXPECT_EQ(c.console_log_max_mib, 8u);
}

TEST(ApplyJsonConfig, BalloonIdlePolicyDefaultsTo300sAnd70Percent) {
  DaemonConfig c;
  EXPECT_EQ(c.balloon_idle_after_s, 300u);
  EXPECT_EQ(c.balloon_idle_target_percent, 70u);
  ASSERT_TRUE(
      ApplyJsonConfig(R"({"balloon_idle_after_s": 0, "balloon_idle_target_percent": 95})", &c)
          .ok());
  EXPECT_EQ(c.balloon_idle_after_s, 0u);
  EXPECT_EQ(c.balloon_idle_target_percent, 95u);
}

TEST(ApplyJsonConfig, BalloonTargetPercentOutside1To95IsRefusedSayingHowToTurnItOff) {
  DaemonConfig c;
  for (const char* bad : {R"({"balloon_idle_target_percent": 0})",
                          R"({"balloon_idle_target_percent": 96})",
                          R"({"balloon_idle_target_percent": "70"})",
                          R"({"balloon_idle_target_percent": 70.5})"}) {
    absl::Status st = ApplyJsonConfig(bad, &c);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(st.message(), HasSubstr("1 to 95")) << bad;
    EXPECT_THAT(st.message(), HasSubstr("balloon_idle_after_s to 0")) << bad;
  }
  EXPECT_EQ(c.balloon_idle_target_percent, 70u);
}

TEST(ApplyJsonConfig, BalloonIdleAfterRejectsNegativeAndHugeValues) {
  DaemonConfig c;
  EXPECT_FALSE(ApplyJsonConfig(R"({"balloon_idle_after_s": -1})", &c).ok());
  absl::Status st = ApplyJsonConfig(R"({"balloon_idle_after_s": 100000000})", &c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("balloon_idle_after_s"));
  EXPECT_EQ(c.balloon_idle_after_s, 300u);
}

TEST(ValidateDaemonConfig, BalloonTargetPercentOutsideItsRangeIsRefused) {
  DaemonConfig c{.socket = "/run/s.sock", .state_dir = "/var/lib/s"};
  c.balloon_idle_target_percent = 0;
  absl::Status st = ValidateDaemonConfig(c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("balloon_idle_target_percent"));
}

TEST(ParseDaemonFlags, TlsWithoutTcpIsRefused) {
  ParsedFlags p = Parse({"--tls-cert", "/c"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.output, HasSubstr("only apply with --tcp"));
}

TEST(ParseDaemonFlags, VersionPrintsAndExitsZero) {
  ParsedFlags p = Parse({"--version"});
  EXPECT_TRUE(p.exit_now);
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_EQ(p.output, "supermachined 1.2.3\n");
}

TEST(ParseDaemonFlags, HelpNamesTheConfigFields) {
  ParsedFlags p = Parse({"--help"});
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_THAT(p.output, HasSubstr("socket_group"));
}

TEST(ParseSocketMode, AcceptsOctalWithinPermissionBits) {
  EXPECT_EQ(*ParseSocketMode("0660"), 0660u);
  EXPECT_EQ(*ParseSocketMode("600"), 0600u);
  EXPECT_FALSE(ParseSocketMode("1777").ok());
  EXPECT_FALSE(ParseSocketMode("").ok());
}

}  // namespace
}  // namespace supermachine::config

namespace supermachine::config {
namespace {

TEST(ApplyJsonConfig, PoolsInheritDefaultPoolAndOverrideIt) {
  DaemonConfig c;
  absl::Status st = ApplyJsonConfig(
      R"({"default_pool": {"max": 4, "acquire_timeout_s": 5},
          "pools": {"web": {"min": 2}, "db": {"min": 1, "max": 2, "idle_timeout_s": 9}},
          "worker_binary": "/opt/w", "kernel": "/k", "guest_agent": "/a"})",
      &c);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.default_pool.max, 4u);
  EXPECT_EQ(c.pools.at("web").min, 2u);
  EXPECT_EQ(c.pools.at("web").max, 4u);
  EXPECT_EQ(c.pools.at("web").acquire_timeout_s, 5u);
  EXPECT_EQ(c.pools.at("db").max, 2u);
  EXPECT_EQ(c.pools.at("db").idle_timeout_s, 9u);
  EXPECT_EQ(c.worker_binary, "/opt/w");
  EXPECT_EQ(c.kernel, "/k");
  EXPECT_EQ(c.guest_agent, "/a");
}

TEST(ApplyJsonConfig, PoolMinAboveMaxIsRefusedNamingThePool) {
  DaemonConfig c;
  absl::Status st = ApplyJsonConfig(R"({"pools": {"web": {"min": 5, "max": 2}}})", &c);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("pools.web"));
}

TEST(ApplyJsonConfig, UnknownPoolFieldIsRefused) {
  DaemonConfig c;
  absl::Status st = ApplyJsonConfig(R"({"pools": {"web": {"minimum": 1}}})", &c);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("unknown field 'minimum'"));
}

TEST(ParseDaemonFlags, VmDirDefaultsUnderStateDir) {
  const char* argv[] = {"supermachined", "--state-dir", "/s", "--worker-binary", "/w"};
  ParsedFlags p = ParseDaemonFlags(5, argv, {.uid = 0}, "1");
  ASSERT_FALSE(p.exit_now) << p.output;
  EXPECT_EQ(p.config.vm_dir, "/s/vms");
  EXPECT_EQ(p.config.worker_binary, "/w");
}

}  // namespace
}  // namespace supermachine::config
