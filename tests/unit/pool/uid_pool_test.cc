// File: uid_pool_test.cc
// The per-VM uid pool (daemon/vm/uid_pool.h): uids handed out once while held, freed with
// their lease, next-fit order, exhaustion naming the config key, uids of re-adopted workers
// marked taken (counted, so two holders of one uid both have to go).
#include "daemon/vm/uid_pool.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace supermachine::vm {
namespace {

using ::testing::HasSubstr;

TEST(UidPool, HandsOutDistinctUidsOfTheRange) {
  UidPool pool(5000, 3);

  absl::StatusOr<UidLease> a = pool.Acquire();
  absl::StatusOr<UidLease> b = pool.Acquire();

  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->uid(), 5000u);
  EXPECT_EQ(b->uid(), 5001u);
  EXPECT_EQ(pool.InUse(), 2u);
}

TEST(UidPool, ExhaustedRangeIsResourceExhaustedNamingTheConfigKey) {
  UidPool pool(5000, 1);
  absl::StatusOr<UidLease> held = pool.Acquire();
  ASSERT_TRUE(held.ok());

  absl::StatusOr<UidLease> more = pool.Acquire();

  ASSERT_FALSE(more.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(more.status())) << more.status();
  EXPECT_THAT(more.status().message(), HasSubstr("worker_uid_range"));
}

TEST(UidPool, DestroyedLeaseFreesItsUid) {
  UidPool pool(5000, 1);
  {
    absl::StatusOr<UidLease> held = pool.Acquire();
    ASSERT_TRUE(held.ok());
  }

  absl::StatusOr<UidLease> again = pool.Acquire();

  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->uid(), 5000u);
}

TEST(UidPool, ReleaseFreesOnceAndEmptiesTheLease) {
  UidPool pool(5000, 2);
  absl::StatusOr<UidLease> a = pool.Acquire();
  ASSERT_TRUE(a.ok());

  a->Release();
  a->Release();

  EXPECT_FALSE(a->held());
  EXPECT_EQ(a->uid(), 0u);
  EXPECT_EQ(pool.InUse(), 0u);
}

TEST(UidPool, MovedLeaseKeepsTheUidHeld) {
  UidPool pool(5000, 1);
  absl::StatusOr<UidLease> a = pool.Acquire();
  ASSERT_TRUE(a.ok());

  UidLease moved = std::move(*a);

  EXPECT_TRUE(moved.held());
  EXPECT_EQ(moved.uid(), 5000u);
  EXPECT_FALSE(pool.Acquire().ok());
}

TEST(UidPool, NextFitReusesAFreedUidLast) {
  UidPool pool(5000, 3);
  absl::StatusOr<UidLease> first = pool.Acquire();
  ASSERT_TRUE(first.ok());
  first->Release();  // 5000 free again, but the pool moves on

  absl::StatusOr<UidLease> second = pool.Acquire();
  absl::StatusOr<UidLease> third = pool.Acquire();
  absl::StatusOr<UidLease> wrapped = pool.Acquire();

  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(second->uid(), 5001u);
  EXPECT_EQ(third->uid(), 5002u);
  EXPECT_EQ(wrapped->uid(), 5000u);
}

TEST(UidPool, MarkedTakenUidIsNotHandedOut) {
  UidPool pool(5000, 2);
  UidLease adopted = pool.MarkTaken(5000);

  absl::StatusOr<UidLease> fresh = pool.Acquire();

  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->uid(), 5001u);
  EXPECT_TRUE(adopted.held());
  EXPECT_FALSE(pool.Acquire().ok()) << "both uids are held";
}

TEST(UidPool, UidMarkedTwiceStaysTakenUntilBothHoldersGo) {
  UidPool pool(5000, 1);
  UidLease one = pool.MarkTaken(5000);
  UidLease two = pool.MarkTaken(5000);

  one.Release();

  EXPECT_FALSE(pool.Acquire().ok());
  two.Release();
  EXPECT_TRUE(pool.Acquire().ok());
}

TEST(UidPool, UidOutsideTheRangeIsNotHeld) {
  UidPool pool(5000, 2);

  UidLease outside = pool.MarkTaken(4000);

  EXPECT_FALSE(outside.held());
  EXPECT_EQ(pool.InUse(), 0u);
}

TEST(UidPool, LeaseMayOutliveThePool) {
  auto pool = std::make_unique<UidPool>(5000, 1);
  absl::StatusOr<UidLease> lease = pool->Acquire();
  ASSERT_TRUE(lease.ok());

  pool.reset();
  lease->Release();

  EXPECT_FALSE(lease->held());
}

}  // namespace
}  // namespace supermachine::vm
