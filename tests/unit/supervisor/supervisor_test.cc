// File: supervisor_test.cc
// The supervisor (daemon/vm/supervisor.h) driven tick by tick: a fake clock, a restart hook
// that hands out new ids (or fails), a give-up hook and a scripted health check. Covers the
// policies (no, on-failure[:N], always), the backoff bounds and reset, and health states.
#include "daemon/vm/supervisor.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest()
      : sup_(SupervisorHooks{
            .now = [this] { return now_; },
            .restart = [this](const std::string& id,
                              const SuperviseSpec& next) -> absl::StatusOr<std::string> {
              restart_calls_.push_back({id, next});
              if (restart_fails_) {
                return absl::UnavailableError("fake restore failed");
              }
              return absl::StrCat("vm", ++next_id_);
            },
            .give_up = [this](const std::string& id,
                              const ExitReport& exit) { gave_up_.push_back({id, exit}); },
            .run_check = [this](const std::string& id,
                                const HealthCheck&) -> absl::StatusOr<agent::ExitInfo> {
              checks_.push_back(id);
              return agent::ExitInfo{.code = check_code_};
            },
            .on_health = [this](const std::string& id, HealthState s,
                                const std::string& check) {
              health_events_.push_back({id, s});
              health_checks_.push_back(check);
            },
        }) {}

  void Advance(absl::Duration d) {
    now_ += d;
    sup_.Tick();
  }
  ExitReport Exit(int code) { return ExitReport{.cause = "exited", .exit_code = code, .at = now_}; }
  ExitReport Killed(int sig) { return ExitReport{.cause = "killed", .signal = sig, .at = now_}; }
  // The id the last successful restart handed out.
  std::string Current() const { return absl::StrCat("vm", next_id_); }

  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  int next_id_ = 0;
  bool restart_fails_ = false;
  int check_code_ = 0;
  std::vector<std::pair<std::string, SuperviseSpec>> restart_calls_;
  std::vector<std::pair<std::string, ExitReport>> gave_up_;
  std::vector<std::string> checks_;
  std::vector<std::pair<std::string, HealthState>> health_events_;
  std::vector<std::string> health_checks_;  // how the check behind each event ended
  Supervisor sup_;
};

TEST(RestartPolicyTest, ParsesDockerSpellingsAndRefusesOthers) {
  EXPECT_EQ(ParseRestartPolicy("")->kind, RestartPolicy::Kind::kNo);
  EXPECT_EQ(ParseRestartPolicy("no")->kind, RestartPolicy::Kind::kNo);
  EXPECT_EQ(ParseRestartPolicy("always")->kind, RestartPolicy::Kind::kAlways);
  EXPECT_EQ(*ParseRestartPolicy("on-failure"), RestartPolicy{RestartPolicy::Kind::kOnFailure});
  EXPECT_EQ(*ParseRestartPolicy("on-failure:3"),
            (RestartPolicy{RestartPolicy::Kind::kOnFailure, 3}));
  EXPECT_EQ(ToString(*ParseRestartPolicy("on-failure:3")), "on-failure:3");
  for (const char* bad : {"sometimes", "on-failure:", "on-failure:0", "on-failure:-1",
                          "on-failure:x", "unless-stopped"}) {
    absl::StatusOr<RestartPolicy> p = ParseRestartPolicy(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << bad;
    EXPECT_THAT(p.status().message(), HasSubstr(bad));
  }
}

TEST(HealthCheckJsonTest, RoundTripsAndEmptyMeansNone) {
  HealthCheck c{.argv = {"/bin/sh", "-c", "wget -q -O- localhost"},
                .interval = absl::Seconds(2),
                .timeout = absl::Milliseconds(1500),
                .retries = 4,
                .start_period = absl::Seconds(7)};
  absl::StatusOr<HealthCheck> back = HealthCheckFromJson(HealthCheckToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
  EXPECT_EQ(HealthCheckToJson(HealthCheck{}), "");
  EXPECT_FALSE(HealthCheckFromJson("")->enabled());
  EXPECT_FALSE(HealthCheckFromJson("{\"argv\":1}").ok());
  EXPECT_FALSE(ValidateHealthCheck({.argv = {"x"}, .retries = 0}).ok());
  EXPECT_FALSE(ValidateHealthCheck({.argv = {"x"}, .interval = absl::Milliseconds(1)}).ok());
}

TEST(RestartBackoffTest, DoublesFrom100MsUpTo30S) {
  EXPECT_EQ(RestartBackoff(0), absl::Milliseconds(100));
  EXPECT_EQ(RestartBackoff(1), absl::Milliseconds(200));
  EXPECT_EQ(RestartBackoff(3), absl::Milliseconds(800));
  EXPECT_EQ(RestartBackoff(8), absl::Milliseconds(25600));
  EXPECT_EQ(RestartBackoff(9), absl::Seconds(30));
  EXPECT_EQ(RestartBackoff(1000), absl::Seconds(30));
}

TEST_F(SupervisorTest, OnFailure3RestartsThreeTimesThenStaysExited) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("on-failure:3")}, now_);
  std::string id = "vm0";
  for (int i = 1; i <= 3; ++i) {
    sup_.ReportExit(id, Exit(1));
    Advance(absl::Seconds(31));  // past any backoff
    ASSERT_EQ(restart_calls_.size(), static_cast<size_t>(i));
    EXPECT_EQ(restart_calls_.back().first, id);
    EXPECT_EQ(restart_calls_.back().second.restarts, static_cast<uint32_t>(i));
    EXPECT_EQ(restart_calls_.back().second.last_exit->exit_code, 1);
    id = Current();
    EXPECT_TRUE(sup_.Watching(id));
    EXPECT_EQ(sup_.Get(id)->spec.restarts, static_cast<uint32_t>(i));
  }
  sup_.ReportExit(id, Exit(1));
  EXPECT_TRUE(sup_.Get(id)->exited);
  Advance(absl::Seconds(31));
  EXPECT_EQ(restart_calls_.size(), 3u) << "no fourth restart";
  ASSERT_EQ(gave_up_.size(), 1u);
  EXPECT_EQ(gave_up_[0].first, id);
  EXPECT_EQ(gave_up_[0].second.ToString(), "exited 1");
  EXPECT_FALSE(sup_.Watching(id));
}

TEST_F(SupervisorTest, OnFailureLeavesACleanExitAlone) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("on-failure")}, now_);
  sup_.ReportExit("vm0", Exit(0));
  Advance(absl::Seconds(1));
  EXPECT_TRUE(restart_calls_.empty());
  ASSERT_EQ(gave_up_.size(), 1u);
  EXPECT_EQ(gave_up_[0].second.exit_code, 0);
}

TEST_F(SupervisorTest, AlwaysRestartsAfterAKillAndAfterExitZero) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("always")}, now_);
  sup_.ReportExit("vm0", Killed(9));
  Advance(absl::Seconds(1));
  ASSERT_EQ(restart_calls_.size(), 1u);
  EXPECT_EQ(restart_calls_[0].second.last_exit->ToString(), "killed by signal 9");
  sup_.ReportExit(Current(), Exit(0));
  Advance(absl::Seconds(1));
  EXPECT_EQ(restart_calls_.size(), 2u);
  EXPECT_TRUE(gave_up_.empty());
  EXPECT_EQ(sup_.Get(Current())->spec.restarts, 2u);
}

TEST_F(SupervisorTest, NoNeverRestarts) {
  // Nothing to supervise: not even watched (the VM behaves as before supervision existed).
  sup_.Watch("plain", {}, now_);
  EXPECT_FALSE(sup_.Watching("plain"));
  // With a health check only, an exit is final.
  sup_.Watch("vm0", {.health = {.argv = {"true"}}}, now_);
  EXPECT_FALSE(sup_.Restarts("vm0"));
  sup_.ReportExit("vm0", Exit(1));
  Advance(absl::Minutes(5));
  EXPECT_TRUE(restart_calls_.empty());
  ASSERT_EQ(gave_up_.size(), 1u);
}

TEST_F(SupervisorTest, BackoffGrowsWhileCrashLoopingAndResetsAfterTenSecondsUp) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("always")}, now_);
  std::string id = "vm0";
  // Quick exits: restarts are due after 100 ms, 200 ms, 400 ms.
  for (absl::Duration delay : {absl::Milliseconds(100), absl::Milliseconds(200),
                               absl::Milliseconds(400)}) {
    const size_t before = restart_calls_.size();
    sup_.ReportExit(id, Exit(1));
    Advance(delay - absl::Milliseconds(1));
    EXPECT_EQ(restart_calls_.size(), before) << "not before " << delay;
    EXPECT_TRUE(sup_.Get(id)->restarting);
    Advance(absl::Milliseconds(1));
    ASSERT_EQ(restart_calls_.size(), before + 1) << "due after " << delay;
    id = Current();
  }
  // Up for 10 s: the next exit is not part of the loop, back to 100 ms.
  now_ += absl::Seconds(10);
  sup_.ReportExit(id, Exit(1));
  Advance(absl::Milliseconds(100));
  EXPECT_EQ(restart_calls_.size(), 4u);
}

TEST_F(SupervisorTest, AFailedRestoreIsRetriedWithBackoffAndCountsAgainstTheMax) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("on-failure:2")}, now_);
  restart_fails_ = true;
  sup_.ReportExit("vm0", Exit(3));
  Advance(absl::Milliseconds(100));
  ASSERT_EQ(restart_calls_.size(), 1u);
  EXPECT_TRUE(sup_.Get("vm0")->restarting) << "retried";
  Advance(absl::Milliseconds(199));
  EXPECT_EQ(restart_calls_.size(), 1u);
  Advance(absl::Milliseconds(1));
  EXPECT_EQ(restart_calls_.size(), 2u);
  Advance(absl::Seconds(31));
  EXPECT_EQ(restart_calls_.size(), 2u) << "on-failure:2 allows two attempts";
  ASSERT_EQ(gave_up_.size(), 1u);
  EXPECT_EQ(gave_up_[0].second.exit_code, 3) << "the workload's exit stays the last exit";
}

TEST_F(SupervisorTest, FailingHealthCheckTurnsUnhealthyAfterRetriesAndTriggersARestart) {
  sup_.Watch("vm0",
             {.policy = *ParseRestartPolicy("on-failure"),
              .health = {.argv = {"false"}, .interval = absl::Seconds(1), .retries = 3}},
             now_);
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kStarting);
  check_code_ = 1;
  Advance(absl::Milliseconds(999));
  EXPECT_TRUE(checks_.empty()) << "the first check runs one interval after the start";
  Advance(absl::Milliseconds(1));
  Advance(absl::Seconds(1));
  EXPECT_EQ(checks_.size(), 2u);
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kStarting) << "two failures of three";
  Advance(absl::Seconds(1));
  EXPECT_EQ(checks_.size(), 3u);
  ASSERT_EQ(health_events_.size(), 1u);
  EXPECT_EQ(health_events_[0].second, HealthState::kUnhealthy);
  EXPECT_EQ(health_checks_[0], "exited 1");
  EXPECT_TRUE(sup_.Get("vm0")->restarting);
  Advance(absl::Milliseconds(100));
  ASSERT_EQ(restart_calls_.size(), 1u);
  EXPECT_EQ(restart_calls_[0].second.last_exit->cause, "unhealthy");
  EXPECT_EQ(sup_.Get(Current())->health, HealthState::kStarting) << "the new VM starts over";
}

TEST_F(SupervisorTest, UnhealthyWithoutAPolicyStaysUpUnhealthy) {
  sup_.Watch("vm0", {.health = {.argv = {"false"}, .interval = absl::Seconds(1), .retries = 1}},
             now_);
  check_code_ = 1;
  Advance(absl::Seconds(1));
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kUnhealthy);
  Advance(absl::Seconds(5));
  EXPECT_TRUE(restart_calls_.empty());
  EXPECT_TRUE(gave_up_.empty());
}

TEST_F(SupervisorTest, HealthyCheckStaysHealthy) {
  sup_.Watch("vm0",
             {.policy = *ParseRestartPolicy("always"),
              .health = {.argv = {"true"}, .interval = absl::Seconds(1), .retries = 1}},
             now_);
  for (int i = 0; i < 10; ++i) {
    Advance(absl::Seconds(1));
  }
  EXPECT_EQ(checks_.size(), 10u);
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kHealthy);
  ASSERT_EQ(health_events_.size(), 1u) << "one change: starting -> healthy";
  EXPECT_EQ(health_checks_[0], "passed");
  EXPECT_TRUE(restart_calls_.empty());
}

TEST(DescribeCheckTest, SaysHowACheckEnded) {
  EXPECT_EQ(DescribeCheck(agent::ExitInfo{}), "passed");
  EXPECT_EQ(DescribeCheck(agent::ExitInfo{.code = 3}), "exited 3");
  EXPECT_EQ(DescribeCheck(agent::ExitInfo{.signaled = true, .signal = 9}), "killed by signal 9");
  EXPECT_EQ(DescribeCheck(agent::ExitInfo{.signaled = true, .signal = 9, .timed_out = true}),
            "killed by signal 9 (timed out)");
  EXPECT_EQ(DescribeCheck(agent::ExitInfo{.timed_out = true}), "exited 0 (timed out)")
      << "a check that ran out of time did not pass, whatever its exit";
  EXPECT_EQ(DescribeCheck(absl::UnavailableError("agent gone")), "could not run: agent gone");
}

TEST_F(SupervisorTest, FailuresInTheStartPeriodDoNotCount) {
  sup_.Watch("vm0",
             {.health = {.argv = {"false"},
                         .interval = absl::Seconds(1),
                         .retries = 1,
                         .start_period = absl::Seconds(5)}},
             now_);
  check_code_ = 1;
  for (int i = 0; i < 4; ++i) {
    Advance(absl::Seconds(1));
  }
  EXPECT_EQ(checks_.size(), 4u);
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kStarting);
  Advance(absl::Seconds(1));
  EXPECT_EQ(sup_.Get("vm0")->health, HealthState::kUnhealthy);
}

TEST_F(SupervisorTest, ForgetDropsAPendingRestart) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("always")}, now_);
  sup_.ReportExit("vm0", Exit(1));
  sup_.Forget("vm0");
  Advance(absl::Seconds(1));
  EXPECT_TRUE(restart_calls_.empty());
  EXPECT_TRUE(gave_up_.empty());
}

TEST_F(SupervisorTest, OnlyTheFirstExitOfARunCounts) {
  sup_.Watch("vm0", {.policy = *ParseRestartPolicy("always")}, now_);
  sup_.ReportExit("vm0", Exit(2));
  sup_.ReportExit("vm0", ExitReport{.cause = "worker_crash", .at = now_});
  Advance(absl::Seconds(1));
  ASSERT_EQ(restart_calls_.size(), 1u);
  EXPECT_EQ(restart_calls_[0].second.last_exit->exit_code, 2);
}

}  // namespace
}  // namespace supermachine::vm
