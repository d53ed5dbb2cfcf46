// File: rng_test.cc
// virtio-rng fills writable buffers, bounded per request.
#include "worker/devices/virtio/rng.h"

#include <cstring>

#include "gtest/gtest.h"
#include "tests/unit/worker/virtq_builder.h"

namespace supermachine::devices::virtio {
namespace {

using testing::VirtqBuilder;

Rng::Source Fill(uint8_t byte) {
  return [byte](absl::Span<uint8_t> out) {
    std::memset(out.data(), byte, out.size());
    return true;
  };
}

TEST(Rng, FillsAWritableBuffer) {
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  VirtqBuilder vq(*mem, 16);
  Queue q(vq.State());
  Rng rng(Fill(0x5a));
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 64, .write = true}});
  ASSERT_TRUE(rng.ProcessQueue(0, q, *mem).ok());
  EXPECT_EQ(vq.UsedLen(0), 64u);
  EXPECT_EQ(*mem->ReadObj<uint8_t>(VirtqBuilder::kData + 63), 0x5a);
}

TEST(Rng, ServesAtMostTheBoundPerRequest) {
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = 4 << 20}});
  ASSERT_TRUE(mem.ok());
  VirtqBuilder vq(*mem, 16);
  Queue q(vq.State());
  Rng rng(Fill(1));
  vq.AddChain({{.addr = 0x100000, .len = 1 << 20, .write = true}});
  ASSERT_TRUE(rng.ProcessQueue(0, q, *mem).ok());
  EXPECT_EQ(vq.UsedLen(0), Rng::kMaxBytesPerRequest);
  EXPECT_EQ(*mem->ReadObj<uint8_t>(0x100000 + Rng::kMaxBytesPerRequest), 0);
}

TEST(Rng, LeavesDeviceReadableBuffersAlone) {
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  VirtqBuilder vq(*mem, 16);
  Queue q(vq.State());
  Rng rng(Fill(0x77));
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 64, .write = false}});
  ASSERT_TRUE(rng.ProcessQueue(0, q, *mem).ok());
  EXPECT_EQ(vq.UsedLen(0), 0u);
  EXPECT_EQ(*mem->ReadObj<uint8_t>(VirtqBuilder::kData), 0);
}

TEST(Rng, HostGetrandomSourceProducesBytes) {
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  VirtqBuilder vq(*mem, 16);
  Queue q(vq.State());
  Rng rng;
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 4096, .write = true}});
  ASSERT_TRUE(rng.ProcessQueue(0, q, *mem).ok());
  EXPECT_EQ(rng.state().bytes_served, 4096u);
}

}  // namespace
}  // namespace supermachine::devices::virtio
