// File: device_restore_test.cc
// SaveState → RestoreState round trips of the virtio-mmio transport and the serial UART: a
// fresh device given the saved state must look, register by register, like the one it came
// from (config generation, config-change interrupt bit, THR-empty pending included), and
// refuse states no driver could have produced.
#include <cstring>
#include <memory>
#include <optional>

#include "gtest/gtest.h"
#include "tests/unit/worker/fake_irq.h"
#include "tests/unit/worker/virtq_builder.h"
#include "worker/devices/legacy/serial.h"
#include "worker/devices/virtio/mmio.h"
#include "worker/devices/virtio/rng.h"

namespace supermachine::devices {
namespace {

using testing::CountingIrq;
using testing::VirtqBuilder;
using virtio::MmioState;
using virtio::MmioTransport;
namespace reg = virtio::reg;
namespace st = virtio::status;

std::unique_ptr<virtio::Rng> MakeRng() {
  return std::make_unique<virtio::Rng>([](absl::Span<uint8_t> out) {
    std::memset(out.data(), 0xab, out.size());
    return true;
  });
}

class TransportRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    a_ = std::make_unique<MmioTransport>(MakeRng(), &*mem_, &irq_a_);
    b_ = std::make_unique<MmioTransport>(MakeRng(), &*mem_, &irq_b_);
  }
  static uint32_t R(MmioTransport& t, uint64_t off) {
    uint32_t v = 0;
    t.Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  static void W(MmioTransport& t, uint64_t off, uint32_t v) {
    t.Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  // A driver's full bring-up of `t`, queue 0 ready.
  static void Activate(MmioTransport& t) {
    W(t, reg::kStatus, st::kAcknowledge);
    W(t, reg::kStatus, st::kAcknowledge | st::kDriver);
    W(t, reg::kDriverFeaturesSel, 1);
    W(t, reg::kDriverFeatures, 1);
    W(t, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
    W(t, reg::kQueueSel, 0);
    W(t, reg::kQueueNum, 16);
    W(t, reg::kQueueDescLow, VirtqBuilder::kDescTable);
    W(t, reg::kQueueDriverLow, VirtqBuilder::kAvail);
    W(t, reg::kQueueDeviceLow, VirtqBuilder::kUsed);
    W(t, reg::kQueueReady, 1);
    W(t, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  }
  std::optional<memory::GuestMemory> mem_;
  CountingIrq irq_a_;
  CountingIrq irq_b_;
  std::unique_ptr<MmioTransport> a_;
  std::unique_ptr<MmioTransport> b_;
};

TEST_F(TransportRestoreTest, RoundTripReproducesEveryRegisterAndRingPosition) {
  Activate(*a_);
  // A config write bumps the generation; a config-change bit and odd selectors complete it.
  const uint8_t cfg[1] = {0};
  a_->Write(reg::kConfig, cfg);
  a_->Write(reg::kConfig, cfg);
  MmioState saved = a_->SaveState();
  saved.interrupt_status = virtio::kInterruptConfigChange | virtio::kInterruptUsedBuffer;
  saved.queues[0].next_avail = 7;
  saved.queues[0].next_used = 5;
  saved.device_features_sel = 1;
  saved.queue_sel = 0;
  ASSERT_TRUE(b_->RestoreState(saved).ok());

  const MmioState got = b_->SaveState();
  EXPECT_EQ(got.device_status, saved.device_status);
  EXPECT_EQ(got.acked_features, saved.acked_features);
  EXPECT_EQ(got.config_generation, 2u);
  EXPECT_EQ(got.interrupt_status, saved.interrupt_status);
  ASSERT_EQ(got.queues.size(), 1u);
  EXPECT_EQ(got.queues[0].next_avail, 7);
  EXPECT_EQ(got.queues[0].next_used, 5);
  EXPECT_EQ(got.queues[0].desc_table, VirtqBuilder::kDescTable);
  EXPECT_TRUE(got.queues[0].ready);
  // Through the registers, as the guest will see it.
  EXPECT_EQ(R(*b_, reg::kConfigGeneration), 2u);
  EXPECT_EQ(R(*b_, reg::kInterruptStatus),
            virtio::kInterruptConfigChange | virtio::kInterruptUsedBuffer);
  EXPECT_EQ(R(*b_, reg::kDeviceFeatures), 1u);  // Selector 1: VERSION_1's word.
  EXPECT_EQ(R(*b_, reg::kQueueReady), 1u);
  // The pending interrupt is asserted again in the new VM.
  EXPECT_EQ(irq_b_.count, 1);
}

TEST_F(TransportRestoreTest, RestoredQueueContinuesFromTheSavedPosition) {
  Activate(*a_);
  VirtqBuilder vq(*mem_, 16);
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8, .write = true}});
  W(*a_, reg::kQueueNotify, 0);
  ASSERT_EQ(vq.UsedIdx(), 1);
  W(*a_, reg::kInterruptAck, virtio::kInterruptUsedBuffer);
  ASSERT_TRUE(b_->RestoreState(a_->SaveState()).ok());
  // One more request after the restore: the new device serves it alone (a device that
  // restarted at ring position 0 would serve the old one again: used index 3).
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8, .write = true}});
  W(*b_, reg::kQueueNotify, 0);
  EXPECT_EQ(vq.UsedIdx(), 2);
  EXPECT_EQ(irq_b_.count, 1);
}

TEST_F(TransportRestoreTest, NoInterruptPendingRaisesNothing) {
  Activate(*a_);
  ASSERT_TRUE(b_->RestoreState(a_->SaveState()).ok());
  EXPECT_EQ(irq_b_.count, 0);
}

TEST_F(TransportRestoreTest, UntouchedTransportRestoresAsUntouched) {
  ASSERT_TRUE(b_->RestoreState(a_->SaveState()).ok());
  EXPECT_EQ(R(*b_, reg::kStatus), 0u);
  EXPECT_EQ(R(*b_, reg::kQueueReady), 0u);
}

TEST_F(TransportRestoreTest, RefusesStatesNoDriverCouldProduce) {
  Activate(*a_);
  const MmioState good = a_->SaveState();
  const uint32_t gen_before = R(*b_, reg::kConfigGeneration);

  MmioState unoffered = good;
  unoffered.acked_features |= 1ull << 28;
  EXPECT_EQ(b_->RestoreState(unoffered).code(), absl::StatusCode::kInvalidArgument);

  MmioState legacy = good;
  legacy.acked_features = 0;
  EXPECT_EQ(b_->RestoreState(legacy).code(), absl::StatusCode::kInvalidArgument);

  MmioState ok_without_features = good;
  ok_without_features.device_status = st::kAcknowledge | st::kDriver | st::kDriverOk;
  EXPECT_EQ(b_->RestoreState(ok_without_features).code(), absl::StatusCode::kInvalidArgument);

  MmioState outside = good;
  outside.queues[0].desc_table = 1ull << 32;
  absl::Status s = b_->RestoreState(outside);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("queue 0"), absl::string_view::npos) << s;

  MmioState bad_size = good;
  bad_size.queues[0].size = 12;  // Not a power of two.
  EXPECT_EQ(b_->RestoreState(bad_size).code(), absl::StatusCode::kInvalidArgument);

  MmioState bad_max = good;
  bad_max.queues[0].max_size = 1024;
  EXPECT_EQ(b_->RestoreState(bad_max).code(), absl::StatusCode::kInvalidArgument);

  MmioState extra_queue = good;
  extra_queue.queues.push_back(good.queues[0]);
  EXPECT_EQ(b_->RestoreState(extra_queue).code(), absl::StatusCode::kInvalidArgument);

  MmioState bad_irq = good;
  bad_irq.interrupt_status = 0x80;
  EXPECT_EQ(b_->RestoreState(bad_irq).code(), absl::StatusCode::kInvalidArgument);

  // Every refusal left the transport untouched.
  EXPECT_EQ(R(*b_, reg::kStatus), 0u);
  EXPECT_EQ(R(*b_, reg::kConfigGeneration), gen_before);
  EXPECT_EQ(irq_b_.count, 0);
}

class StringOutput : public SerialOutput {
 public:
  void Write(uint8_t b) override { text.push_back(static_cast<char>(b)); }
  std::string text;
};

TEST(SerialRestore, RoundTripKeepsRegistersInputAndPendingThrEmpty) {
  CountingIrq irq_a;
  CountingIrq irq_b;
  StringOutput out;
  Serial a(&irq_a, &out);
  a.Write(3, 0x80);  // DLAB
  a.Write(0, 0x01);  // 115200 baud
  a.Write(1, 0x00);
  a.Write(3, 0x03);
  a.Write(4, 0x0b);
  a.Write(7, 0x5a);
  a.Write(1, 0x02);  // THR-empty interrupt enabled: raised at once, not yet read.
  const uint8_t in[] = {'h', 'i'};
  ASSERT_EQ(a.EnqueueInput(in), 2u);
  const SerialState saved = a.SaveState();
  EXPECT_TRUE(saved.thr_empty_pending);
  EXPECT_EQ(saved.interrupt_identification & 0x0f, 0x02);

  Serial b(&irq_b, &out);
  ASSERT_TRUE(b.RestoreState(saved).ok());
  EXPECT_EQ(irq_b.count, 1);  // The pending interrupt is asserted again.
  for (uint8_t off : {1, 3, 4, 5, 6, 7}) {
    EXPECT_EQ(b.Read(off), a.Read(off)) << "register " << static_cast<int>(off);
  }
  // IIR: THR-empty pending, acknowledged by the read, then none — on both.
  EXPECT_EQ(b.Read(2), a.Read(2));
  EXPECT_EQ(b.Read(2) & 0x0f, 0x01);
  EXPECT_EQ(a.Read(2) & 0x0f, 0x01);
  EXPECT_EQ(b.Read(0), 'h');
  EXPECT_EQ(b.Read(0), 'i');
  b.Write(3, 0x83);
  EXPECT_EQ(b.Read(0), 0x01);  // The divisor came back too.
}

TEST(SerialRestore, NothingPendingRaisesNothing) {
  CountingIrq irq;
  StringOutput out;
  Serial a(&irq, &out);
  Serial b(&irq, &out);
  ASSERT_TRUE(b.RestoreState(a.SaveState()).ok());
  EXPECT_EQ(irq.count, 0);
  EXPECT_EQ(b.Read(2) & 0x0f, 0x01);
}

TEST(SerialRestore, RefusesMoreInputThanTheFifoHolds) {
  CountingIrq irq;
  StringOutput out;
  Serial b(&irq, &out);
  SerialState s;
  s.in_buffer.assign(Serial::kInputFifo + 1, 'x');
  EXPECT_EQ(b.RestoreState(s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.Read(5) & 0x01, 0);  // Still empty.
}

}  // namespace
}  // namespace supermachine::devices
