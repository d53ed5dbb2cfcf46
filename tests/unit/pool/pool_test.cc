// File: pool_test.cc
// Pool state machine with a fake launcher: refill to min, hits vs on-demand restores, max,
// acquire deadline, dead ready VMs replaced, failing restores back off.
#include "daemon/vm/pool.h"

#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_vm.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;
using testing::Eventually;
using testing::FakeJournal;
using testing::FakeLauncher;

class PoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<Pool> MakePool(PoolConfig config) {
    return std::make_unique<Pool>(
        "snap", config,
        [this](absl::Time deadline) {
          return launcher_.Launch({.vm_id = absl::StrCat("vm", next_id_++)}, deadline);
        },
        [this](const std::string& id, const VmEnd& end) { (void)journal_.End(id, end); });
  }
  FakeJournal journal_;
  FakeLauncher launcher_{&journal_};
  std::atomic<int> next_id_{0};
};

TEST_F(PoolTest, FillsToMinAndAcquireIsAHitThenRefills) {
  auto pool = MakePool({.min = 2, .max = 4});
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 2; }));
  absl::StatusOr<Acquired> got = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->pool_hit);
  EXPECT_EQ(pool->Stats().in_use, 1u);
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 2; }));
  EXPECT_EQ(launcher_.launches_.load(), 3);
}

TEST_F(PoolTest, EmptyPoolRestoresOnDemand) {
  auto pool = MakePool({.min = 0, .max = 2});
  absl::StatusOr<Acquired> got = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->pool_hit);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(pool->Stats().ready, 0u) << "min 0 keeps nothing warm";
}

TEST_F(PoolTest, AtMaxIsResourceExhaustedNamingTheConfigKey) {
  auto pool = MakePool({.min = 0, .max = 1});
  absl::StatusOr<Acquired> first = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(first.ok());
  absl::StatusOr<Acquired> second = pool->Acquire(absl::InfiniteFuture());
  EXPECT_TRUE(absl::IsResourceExhausted(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("pools.snap.max"));
  // Releasing frees the slot (the VM itself is gone, not reused).
  first->vm.reset();
  pool->Done();
  absl::StatusOr<Acquired> third = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_NE(third->vm->id(), "vm0");
}

TEST_F(PoolTest, WaitingForASlowRefillEndsAtTheDeadline) {
  launcher_.delay_ = absl::Seconds(2);
  auto pool = MakePool({.min = 1, .max = 1});
  ASSERT_TRUE(Eventually([&] { return pool->Stats().starting == 1; }));
  absl::Time start = absl::Now();
  absl::StatusOr<Acquired> got = pool->Acquire(absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(PoolTest, AcquireWaitsForARefillInFlight) {
  launcher_.delay_ = absl::Milliseconds(200);
  auto pool = MakePool({.min = 1, .max = 1});
  ASSERT_TRUE(Eventually([&] { return pool->Stats().starting == 1; }));
  absl::StatusOr<Acquired> got = pool->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->pool_hit);
}

TEST_F(PoolTest, DeadReadyVmIsJournaledAsCrashAndReplaced) {
  auto pool = MakePool({.min = 1, .max = 2});
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 1; }));
  launcher_.State("vm0")->dead = true;
  ASSERT_TRUE(Eventually([&] { return journal_.EndOf("vm0").has_value(); }));
  EXPECT_EQ(*journal_.EndOf("vm0"), store::EndCause::kWorkerCrash);
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 1 && launcher_.launches_ == 2; }));
  absl::StatusOr<Acquired> got = pool->Acquire(absl::InfiniteFuture());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->vm->id(), "vm1");
}

TEST_F(PoolTest, FailingRestoresBackOffAndSurfaceTheError) {
  launcher_.fail_ = true;
  auto pool = MakePool({.min = 2, .max = 4});
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_LE(launcher_.launches_.load(), 2) << "restores must back off, not loop";
  EXPECT_THAT(pool->Stats().last_refill_error, HasSubstr("fake restore failed"));
  absl::StatusOr<Acquired> got = pool->Acquire(absl::InfiniteFuture());
  EXPECT_TRUE(absl::IsFailedPrecondition(got.status())) << got.status();
}

TEST_F(PoolTest, DestroyingThePoolStopsReadyVmsAsReleased) {
  auto pool = MakePool({.min = 2, .max = 2});
  ASSERT_TRUE(Eventually([&] { return pool->Stats().ready == 2; }));
  pool.reset();
  EXPECT_TRUE(launcher_.State("vm0")->stopped);
  EXPECT_TRUE(launcher_.State("vm1")->stopped);
  EXPECT_EQ(journal_.EndOf("vm0"), store::EndCause::kReleased);
}

}  // namespace
}  // namespace supermachine::vm
