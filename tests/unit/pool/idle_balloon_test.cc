// File: idle_balloon_test.cc
// The idle-VM balloon policy (daemon/vm/idle_balloon.h) driven tick by tick: a fake clock, a
// send hook that records commands and answers with a scripted reply, a RAM-size hook. Covers
// inflate after idle (not before), activity deflating and restarting the timer, workers
// without a balloon never asked twice, the percent math and the reply classification. The
// control-socket exchange itself (daemon/vm/worker_control.h) has worker_control_test.cc.
#include "daemon/vm/idle_balloon.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::vm {
namespace {

using ::testing::ElementsAre;
using Kind = IdleBalloonEvent::Kind;

constexpr absl::Duration kIdleAfter = absl::Seconds(300);
const std::vector<IdleVm> kOneVm = {IdleVm{.id = "vm1", .snapshot = "redis"}};

class IdleBalloonTest : public ::testing::Test {
 protected:
  IdleBalloonTest()
      : balloon_(IdleBalloonConfig{.idle_after = kIdleAfter, .target_percent = 70},
                 IdleBalloonHooks{
                     .now = [this] { return now_; },
                     .send = [this](const std::string& id,
                                    const std::string& command) -> absl::StatusOr<std::string> {
                       sent_.push_back(id + ": " + command);
                       return reply_;
                     },
                     .guest_ram_mib = [this](const std::string&) { return ram_mib_; },
                     .on_event = [this](const IdleBalloonEvent& e) { events_.push_back(e.kind); },
                 }) {}

  void Advance(absl::Duration d, const std::vector<IdleVm>& vms = kOneVm) {
    now_ += d;
    balloon_.Tick(vms);
  }

  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  absl::StatusOr<std::string> reply_ = std::string("OK balloon-target pages=1");
  std::optional<uint64_t> ram_mib_ = 256;
  std::vector<std::string> sent_;
  std::vector<Kind> events_;
  IdleBalloon balloon_;
};

TEST_F(IdleBalloonTest, InflatesToThePercentOfGuestRamOnceIdleLongEnough) {
  balloon_.Tick(kOneVm);  // first sighting starts the idle timer
  Advance(kIdleAfter);
  // 256 MiB = 65536 pages; 70% of it, rounded down.
  EXPECT_THAT(sent_, ElementsAre("vm1: balloon-target 45875"));
  EXPECT_TRUE(balloon_.Get("vm1")->inflated);
  EXPECT_EQ(balloon_.InflatedCount(), 1u);
  EXPECT_THAT(events_, ElementsAre(Kind::kInflated));
}

TEST_F(IdleBalloonTest, DoesNotInflateBeforeTheIdlePeriod) {
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter - absl::Seconds(1));
  EXPECT_TRUE(sent_.empty());
  EXPECT_FALSE(balloon_.Get("vm1")->inflated);
}

TEST_F(IdleBalloonTest, InflatesOnlyOnceWhileIdle) {
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  Advance(kIdleAfter);
  Advance(kIdleAfter);
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(IdleBalloonTest, ActivityDeflatesFirstAndRestartsTheTimer) {
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  sent_.clear();
  { IdleBalloon::Activity exec = balloon_.Begin("vm1"); }
  EXPECT_THAT(sent_, ElementsAre("vm1: balloon-target 0"));
  EXPECT_FALSE(balloon_.Get("vm1")->inflated);
  Advance(kIdleAfter - absl::Seconds(1));
  EXPECT_EQ(sent_.size(), 1u);  // the timer restarted at the activity
  Advance(absl::Seconds(1));
  EXPECT_THAT(sent_, ElementsAre("vm1: balloon-target 0", "vm1: balloon-target 45875"));
}

TEST_F(IdleBalloonTest, ActivityOnADeflatedVmSendsNothing) {
  balloon_.Tick(kOneVm);
  { IdleBalloon::Activity exec = balloon_.Begin("vm1"); }
  balloon_.Touch("vm1");
  EXPECT_TRUE(sent_.empty());
}

TEST_F(IdleBalloonTest, ALongRunningActivityKeepsTheVmBusy) {
  balloon_.Tick(kOneVm);
  IdleBalloon::Activity exec = balloon_.Begin("vm1");
  Advance(kIdleAfter * 3);
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(balloon_.Get("vm1")->active, 1);
}

TEST_F(IdleBalloonTest, TheIdleTimerStartsWhenTheActivityEnds) {
  balloon_.Tick(kOneVm);
  std::optional<IdleBalloon::Activity> exec = balloon_.Begin("vm1");
  Advance(kIdleAfter * 2);
  exec.reset();
  Advance(kIdleAfter - absl::Seconds(1));
  EXPECT_TRUE(sent_.empty());
  Advance(absl::Seconds(1));
  EXPECT_EQ(sent_.size(), 1u);
}

TEST_F(IdleBalloonTest, AnExecBeforeTheFirstTickStillCountsAsActivity) {
  IdleBalloon::Activity exec = balloon_.Begin("vm1");
  Advance(kIdleAfter * 2);
  EXPECT_TRUE(sent_.empty());
}

TEST_F(IdleBalloonTest, NoBalloonDeviceIsAskedOnceAndNeverAgain) {
  reply_ = std::string("ERR no balloon device");
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  Advance(kIdleAfter);
  { IdleBalloon::Activity exec = balloon_.Begin("vm1"); }
  Advance(kIdleAfter * 2);
  EXPECT_EQ(sent_.size(), 1u);
  EXPECT_TRUE(balloon_.Get("vm1")->unsupported);
  EXPECT_THAT(events_, ElementsAre(Kind::kUnsupported));
}

TEST_F(IdleBalloonTest, AWorkerWithoutTheVerbIsTreatedAsHavingNoBalloon) {
  reply_ = std::string(
      "ERR unknown command 'balloon-target' (commands: pause, resume, snapshot DIR, exit)");
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  Advance(kIdleAfter);
  EXPECT_EQ(sent_.size(), 1u);
  EXPECT_TRUE(balloon_.Get("vm1")->unsupported);
}

TEST_F(IdleBalloonTest, AFailedInflateIsRetriedAfterAnotherIdlePeriodNotEveryTick) {
  reply_ = absl::UnavailableError("worker control socket closed before answering");
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  Advance(absl::Seconds(1));
  Advance(kIdleAfter - absl::Seconds(2));
  EXPECT_EQ(sent_.size(), 1u);
  reply_ = std::string("OK balloon-target pages=45875");
  Advance(absl::Seconds(1));
  EXPECT_EQ(sent_.size(), 2u);
  EXPECT_TRUE(balloon_.Get("vm1")->inflated);
  EXPECT_THAT(events_, ElementsAre(Kind::kFailed, Kind::kInflated));
}

TEST_F(IdleBalloonTest, AFailedDeflateKeepsTheVmMarkedInflatedSoTheNextActivityRetries) {
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter);
  reply_ = absl::DeadlineExceededError("worker control reply");
  { IdleBalloon::Activity exec = balloon_.Begin("vm1"); }
  EXPECT_TRUE(balloon_.Get("vm1")->inflated);
  reply_ = std::string("OK balloon-target pages=0");
  { IdleBalloon::Activity exec = balloon_.Begin("vm1"); }
  EXPECT_FALSE(balloon_.Get("vm1")->inflated);
  EXPECT_EQ(sent_.size(), 3u);
}

TEST_F(IdleBalloonTest, AVmWithUnknownGuestRamIsSkipped) {
  ram_mib_ = std::nullopt;
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter * 2);
  EXPECT_TRUE(sent_.empty());
  EXPECT_THAT(events_, ElementsAre(Kind::kUnsupported));
}

TEST_F(IdleBalloonTest, AVmNoLongerHandedOutIsForgotten) {
  balloon_.Tick(kOneVm);
  Advance(kIdleAfter, {});
  EXPECT_TRUE(sent_.empty());
  EXPECT_FALSE(balloon_.Get("vm1").has_value());
}

TEST_F(IdleBalloonTest, EachVmHasItsOwnTimer) {
  balloon_.Tick(kOneVm);
  const std::vector<IdleVm> two = {IdleVm{.id = "vm1", .snapshot = "redis"},
                                   IdleVm{.id = "vm2", .snapshot = "redis"}};
  Advance(absl::Seconds(100), two);
  Advance(kIdleAfter - absl::Seconds(100), two);
  EXPECT_THAT(sent_, ElementsAre("vm1: balloon-target 45875"));
}

TEST(IdleBalloon, OffMeansNoCommandsAndEmptyActivityScopes) {
  std::vector<std::string> sent;
  IdleBalloon balloon(IdleBalloonConfig{.idle_after = absl::ZeroDuration()},
                      IdleBalloonHooks{
                          .now = [] { return absl::FromUnixSeconds(1); },
                          .send = [&sent](const std::string& id, const std::string& command)
                              -> absl::StatusOr<std::string> {
                            sent.push_back(command);
                            return std::string("OK balloon-target pages=0");
                          },
                          .guest_ram_mib = [](const std::string&) { return uint64_t{256}; },
                      });
  balloon.Tick(kOneVm);
  { IdleBalloon::Activity exec = balloon.Begin("vm1"); }
  EXPECT_TRUE(sent.empty());
  EXPECT_FALSE(balloon.Get("vm1").has_value());
}

TEST(BalloonTargetPages, IsThePercentOfGuestRamIn4KiBPagesRoundedDown) {
  EXPECT_EQ(BalloonTargetPages(256, 70), 45875u);  // 65536 * 0.7 = 45875.2
  EXPECT_EQ(BalloonTargetPages(1024, 50), 131072u);
  EXPECT_EQ(BalloonTargetPages(32, 1), 81u);       // 8192 * 0.01 = 81.92
  EXPECT_EQ(BalloonTargetPages(1024 * 1024, 95), 255013683u);  // 1 TiB: 268435456 * 0.95
}

TEST(ClassifyBalloonReply, TellsAcceptedUnsupportedAndOtherErrorsApart) {
  EXPECT_EQ(ClassifyBalloonReply("OK balloon-target pages=45875"), BalloonReply::kOk);
  EXPECT_EQ(ClassifyBalloonReply("ERR this VM has no balloon device (bake with worker_balloon)"),
            BalloonReply::kUnsupported);
  EXPECT_EQ(ClassifyBalloonReply("ERR unknown command 'balloon-target' (commands: ...)"),
            BalloonReply::kUnsupported);
  EXPECT_EQ(ClassifyBalloonReply("ERR balloon-target: PAGES must be a number"),
            BalloonReply::kError);
  EXPECT_EQ(ClassifyBalloonReply("OK balloon=none"), BalloonReply::kError);
}

}  // namespace
}  // namespace supermachine::vm
