// File: mmio_test.cc
// virtio-mmio v2 transport register semantics, driven as the Linux driver does.
#include "worker/devices/virtio/mmio.h"

#include <cstring>

#include "gtest/gtest.h"
#include "tests/unit/worker/fake_irq.h"
#include "tests/unit/worker/virtq_builder.h"
#include "worker/devices/virtio/rng.h"

namespace supermachine::devices::virtio {
namespace {

using testing::CountingIrq;
using testing::VirtqBuilder;

class MmioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    t_ = std::make_unique<MmioTransport>(
        std::make_unique<Rng>([](absl::Span<uint8_t> out) {
          std::memset(out.data(), 0xab, out.size());
          return true;
        }),
        &*mem_, &irq_);
  }
  uint32_t R(uint64_t off) {
    uint32_t v = 0;
    t_->Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void W(uint64_t off, uint32_t v) {
    t_->Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  // ACKNOWLEDGE | DRIVER, features VERSION_1, FEATURES_OK.
  void Negotiate() {
    W(reg::kStatus, status::kAcknowledge);
    W(reg::kStatus, status::kAcknowledge | status::kDriver);
    W(reg::kDriverFeaturesSel, 1);
    W(reg::kDriverFeatures, 1);  // Bit 32: VERSION_1.
    W(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  }
  void SetupQueue() {
    W(reg::kQueueSel, 0);
    W(reg::kQueueNum, 16);
    W(reg::kQueueDescLow, VirtqBuilder::kDescTable);
    W(reg::kQueueDriverLow, VirtqBuilder::kAvail);
    W(reg::kQueueDeviceLow, VirtqBuilder::kUsed);
    W(reg::kQueueReady, 1);
  }
  std::optional<memory::GuestMemory> mem_;
  CountingIrq irq_;
  std::unique_ptr<MmioTransport> t_;
};

TEST_F(MmioTest, IdentifiesAsVersion2RngDevice) {
  EXPECT_EQ(R(reg::kMagic), kMmioMagic);
  EXPECT_EQ(R(reg::kVersion), 2u);
  EXPECT_EQ(R(reg::kDeviceId), kDeviceTypeRng);
}

TEST_F(MmioTest, OffersVersion1InTheHighFeatureWord) {
  W(reg::kDeviceFeaturesSel, 1);
  EXPECT_EQ(R(reg::kDeviceFeatures), 1u);
}

TEST_F(MmioTest, AcceptsFeaturesOkForOfferedFeatures) {
  Negotiate();
  EXPECT_TRUE(R(reg::kStatus) & status::kFeaturesOk);
}

TEST_F(MmioTest, RefusesFeaturesOkWithoutVersion1) {
  W(reg::kStatus, status::kAcknowledge);
  W(reg::kStatus, status::kAcknowledge | status::kDriver);
  W(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  EXPECT_FALSE(R(reg::kStatus) & status::kFeaturesOk);
}

TEST_F(MmioTest, RefusesFeaturesOkForUnofferedFeature) {
  W(reg::kStatus, status::kAcknowledge);
  W(reg::kStatus, status::kAcknowledge | status::kDriver);
  W(reg::kDriverFeaturesSel, 0);
  W(reg::kDriverFeatures, 1u << 28);  // VIRTIO_RING_F_INDIRECT_DESC: never offered.
  W(reg::kDriverFeaturesSel, 1);
  W(reg::kDriverFeatures, 1);
  W(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  EXPECT_FALSE(R(reg::kStatus) & status::kFeaturesOk);
}

TEST_F(MmioTest, IgnoresFeatureWritesAfterFeaturesOk) {
  Negotiate();
  W(reg::kDriverFeaturesSel, 0);
  W(reg::kDriverFeatures, 0xffffffff);
  EXPECT_EQ(t_->SaveState().acked_features, 1ull << 32);
}

TEST_F(MmioTest, QueueSetupBeforeFeaturesOkIsIgnored) {
  SetupQueue();
  EXPECT_EQ(R(reg::kQueueReady), 0u);
}

TEST_F(MmioTest, QueueBecomesReadyWithValidRings) {
  Negotiate();
  SetupQueue();
  EXPECT_EQ(R(reg::kQueueReady), 1u);
  EXPECT_EQ(t_->SaveState().queues[0].desc_table, VirtqBuilder::kDescTable);
}

TEST_F(MmioTest, QueueWithRingsOutsideMemoryIsNotReadyAndAsksForReset) {
  Negotiate();
  W(reg::kQueueSel, 0);
  W(reg::kQueueNum, 16);
  W(reg::kQueueDescLow, 0);
  W(reg::kQueueDescHigh, 1);  // 4 GiB: outside the 1 MiB guest.
  W(reg::kQueueReady, 1);
  EXPECT_EQ(R(reg::kQueueReady), 0u);
  EXPECT_TRUE(R(reg::kStatus) & status::kNeedsReset);
}

TEST_F(MmioTest, QueueNumMaxIsZeroForMissingQueue) {
  W(reg::kQueueSel, 7);
  EXPECT_EQ(R(reg::kQueueNumMax), 0u);
}

TEST_F(MmioTest, NotifyProcessesQueueAndRaisesInterrupt) {
  Negotiate();
  SetupQueue();
  W(reg::kStatus, R(reg::kStatus) | status::kDriverOk);
  VirtqBuilder vq(*mem_, 16);
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8, .write = true}});
  W(reg::kQueueNotify, 0);
  EXPECT_EQ(vq.UsedIdx(), 1);
  EXPECT_EQ(irq_.count, 1);
  EXPECT_EQ(R(reg::kInterruptStatus), kInterruptUsedBuffer);
}

TEST_F(MmioTest, InterruptAckClearsStatusBits) {
  Negotiate();
  SetupQueue();
  W(reg::kStatus, R(reg::kStatus) | status::kDriverOk);
  VirtqBuilder vq(*mem_, 16);
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8, .write = true}});
  W(reg::kQueueNotify, 0);
  W(reg::kInterruptAck, kInterruptUsedBuffer);
  EXPECT_EQ(R(reg::kInterruptStatus), 0u);
}

TEST_F(MmioTest, NotifyBeforeDriverOkDoesNothing) {
  Negotiate();
  SetupQueue();
  VirtqBuilder vq(*mem_, 16);
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8, .write = true}});
  W(reg::kQueueNotify, 0);
  EXPECT_EQ(vq.UsedIdx(), 0);
}

TEST_F(MmioTest, StatusZeroResetsDeviceAndQueues) {
  Negotiate();
  SetupQueue();
  W(reg::kStatus, 0);
  EXPECT_EQ(R(reg::kStatus), 0u);
  EXPECT_EQ(R(reg::kQueueReady), 0u);
  EXPECT_EQ(t_->SaveState().acked_features, 0u);
}

TEST_F(MmioTest, NonWordRegisterAccessReadsZero) {
  uint8_t b = 0xff;
  t_->Read(reg::kMagic, absl::Span<uint8_t>(&b, 1));
  EXPECT_EQ(b, 0);
}

}  // namespace
}  // namespace supermachine::devices::virtio
