// File: device_state_test.cc
// Device state conversions round-trip, and a transport state that does not fit the re-created
// device is refused before any queue is built from it.
#include "worker/snapshot/device_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace supermachine::snapshot {
namespace {

using ::testing::HasSubstr;

devices::virtio::MmioState SampleTransport() {
  devices::virtio::MmioState state;
  state.device_status = 0xf;
  state.acked_features = 1ull << 32;
  state.queue_sel = 0;
  state.interrupt_status = 1;
  state.config_generation = 3;
  devices::virtio::QueueState q;
  q.size = 128;
  q.ready = true;
  q.desc_table = 0x10000;
  q.avail_ring = 0x11000;
  q.used_ring = 0x12000;
  q.next_avail = 77;
  q.next_used = 76;
  state.queues.push_back(q);
  return state;
}

TEST(TransportState, RoundTrips) {
  v1::VirtioTransportState proto = TransportToProto(SampleTransport(), 4, (1ull << 32) | 1);

  absl::StatusOr<devices::virtio::MmioState> back =
      TransportFromProto(proto, 4, (1ull << 32) | 1, 1);

  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->device_status, 0xfu);
  EXPECT_EQ(back->acked_features, 1ull << 32);
  EXPECT_EQ(back->interrupt_status, 1u);
  EXPECT_EQ(back->config_generation, 3u);
  ASSERT_EQ(back->queues.size(), 1u);
  EXPECT_EQ(back->queues[0].size, 128);
  EXPECT_TRUE(back->queues[0].ready);
  EXPECT_EQ(back->queues[0].used_ring, 0x12000u);
  EXPECT_EQ(back->queues[0].next_avail, 77);
  EXPECT_EQ(back->queues[0].next_used, 76);
}

TEST(TransportState, RejectsAckedFeaturesTheDeviceNoLongerOffers) {
  v1::VirtioTransportState proto = TransportToProto(SampleTransport(), 4, 1ull << 32);

  absl::StatusOr<devices::virtio::MmioState> back = TransportFromProto(proto, 4, 1, 1);

  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr("acked features"));
}

TEST(TransportState, RejectsOtherDeviceType) {
  v1::VirtioTransportState proto = TransportToProto(SampleTransport(), 4, 1ull << 32);

  absl::StatusOr<devices::virtio::MmioState> back = TransportFromProto(proto, 2, 1ull << 32, 1);

  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
}

TEST(TransportState, RejectsQueueSizeNotPowerOfTwo) {
  v1::VirtioTransportState proto = TransportToProto(SampleTransport(), 4, 1ull << 32);
  proto.mutable_queues(0)->set_size(100);

  absl::StatusOr<devices::virtio::MmioState> back = TransportFromProto(proto, 4, 1ull << 32, 1);

  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr("queue size 100"));
}

TEST(SerialStateProto, RoundTripsRegistersAndInput) {
  devices::SerialState state;
  state.line_control = 0x83;
  state.scratch = 0x5a;
  state.in_buffer = {'h', 'i'};

  absl::StatusOr<devices::SerialState> back = SerialFromProto(SerialToProto(state));

  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->line_control, 0x83);
  EXPECT_EQ(back->scratch, 0x5a);
  EXPECT_EQ(std::string(back->in_buffer.begin(), back->in_buffer.end()), "hi");
}

TEST(SerialStateProto, RejectsRegisterWiderThanAByte) {
  v1::SerialState proto;
  proto.set_line_control(0x1ff);

  EXPECT_EQ(SerialFromProto(proto).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace supermachine::snapshot
