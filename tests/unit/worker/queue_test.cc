// File: queue_test.cc
// Split virtqueue: chain walking and its bounds against a hostile driver.
#include "worker/devices/virtio/queue.h"

#include "gtest/gtest.h"
#include "tests/unit/worker/virtq_builder.h"

namespace supermachine::devices::virtio {
namespace {

using testing::VirtqBuilder;

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    vq_.emplace(*mem_, 16);
    queue_ = Queue(vq_->State());
  }
  std::optional<memory::GuestMemory> mem_;
  std::optional<VirtqBuilder> vq_;
  Queue queue_;
};

TEST_F(QueueTest, PopReturnsNothingWhenDriverPublishedNothing) {
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok());
  EXPECT_FALSE(chain->has_value());
}

TEST_F(QueueTest, WalksAChainInOrder) {
  vq_->AddChain({{.addr = 0x10000, .len = 16}, {.addr = 0x11000, .len = 512, .write = true}});
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  ASSERT_TRUE((*chain)->error.ok());
  ASSERT_EQ((*chain)->descriptors.size(), 2u);
  EXPECT_EQ((*chain)->descriptors[1].addr, 0x11000u);
  EXPECT_TRUE((*chain)->descriptors[1].write_only);
}

TEST_F(QueueTest, RejectsALoopingChain) {
  vq_->SetDesc(0, 0x10000, 16, /*flags=NEXT*/ 1, 1);
  vq_->SetDesc(1, 0x10000, 16, 1, 0);  // Back to 0.
  vq_->Publish(0);
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_FALSE((*chain)->error.ok());
  EXPECT_EQ((*chain)->head, 0);
}

TEST_F(QueueTest, RejectsNextIndexBeyondQueueSize) {
  vq_->SetDesc(0, 0x10000, 16, 1, 200);
  vq_->Publish(0);
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_FALSE((*chain)->error.ok());
}

TEST_F(QueueTest, RejectsBufferOutsideGuestMemory) {
  vq_->AddChain({{.addr = (1 << 20) - 8, .len = 16}});
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_FALSE((*chain)->error.ok());
}

TEST_F(QueueTest, RejectsHugeTotalLength) {
  // 16 descriptors of 0xffff0000 bytes each would be "valid" only in a 64 GiB guest; even one
  // is outside this memory, so use in-range ones whose sum exceeds the chain cap instead.
  auto big = memory::GuestMemory::Create({{.guest_base = 0, .size = 48ull << 20}});
  ASSERT_TRUE(big.ok());
  VirtqBuilder vq(*big, 16);
  Queue q(vq.State());
  vq.AddChain({{.addr = 0x100000, .len = 40u << 20}, {.addr = 0x100000, .len = 40u << 20}});
  auto chain = q.Pop(*big);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_FALSE((*chain)->error.ok());
}

TEST_F(QueueTest, RejectsIndirectDescriptorsWeNeverOffered) {
  vq_->SetDesc(0, 0x10000, 32, /*INDIRECT*/ 4, 0);
  vq_->Publish(0);
  auto chain = queue_.Pop(*mem_);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_FALSE((*chain)->error.ok());
}

TEST_F(QueueTest, AvailIndexJumpingPastQueueSizeIsAnError) {
  vq_->SetAvailIdx(100);
  EXPECT_FALSE(queue_.Pop(*mem_).ok());
}

TEST_F(QueueTest, PushUsedPublishesIdAndLength) {
  ASSERT_TRUE(queue_.PushUsed(*mem_, 3, 77).ok());
  EXPECT_EQ(vq_->UsedIdx(), 1);
  EXPECT_EQ(vq_->UsedId(0), 3u);
  EXPECT_EQ(vq_->UsedLen(0), 77u);
}

TEST_F(QueueTest, ValidateRejectsNonPowerOfTwoSize) {
  queue_.state().size = 12;
  EXPECT_FALSE(queue_.Validate(*mem_).ok());
}

TEST_F(QueueTest, ValidateRejectsRingsOutsideMemory) {
  queue_.state().used_ring = (1 << 20) - 4;
  EXPECT_FALSE(queue_.Validate(*mem_).ok());
}

}  // namespace
}  // namespace supermachine::devices::virtio
