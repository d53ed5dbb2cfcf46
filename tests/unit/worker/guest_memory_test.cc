// File: guest_memory_test.cc
// GuestMemory: bounds checks on every access.
#include "worker/memory/guest_memory.h"

#include "gtest/gtest.h"

namespace supermachine::memory {
namespace {

TEST(GuestMemory, ReadsBackWhatWasWritten) {
  auto mem = GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok()) << mem.status();
  ASSERT_TRUE(mem->WriteObj<uint32_t>(0x1234, 0xdeadbeef).ok());
  EXPECT_EQ(*mem->ReadObj<uint32_t>(0x1234), 0xdeadbeefu);
}

TEST(GuestMemory, RejectsAccessStraddlingTheEnd) {
  auto mem = GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ(mem->ReadObj<uint32_t>((1 << 20) - 2).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(GuestMemory, RejectsRangeThatWrapsAround) {
  auto mem = GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  EXPECT_FALSE(mem->IsValidRange(0x100, ~0ull));
  EXPECT_FALSE(mem->HostSlice(~0ull - 4, 16).ok());
}

TEST(GuestMemory, RejectsRangeSpanningTheGapBetweenRegions) {
  auto mem = GuestMemory::Create(
      {{.guest_base = 0, .size = 1 << 20}, {.guest_base = 2 << 20, .size = 1 << 20}});
  ASSERT_TRUE(mem.ok());
  EXPECT_TRUE(mem->IsValidRange(2 << 20, 16));
  EXPECT_FALSE(mem->IsValidRange((1 << 20) - 8, 16));
  EXPECT_FALSE(mem->IsValidRange(1 << 20, 1));
}

TEST(GuestMemory, RejectsOverlappingRegions) {
  auto mem = GuestMemory::Create(
      {{.guest_base = 0, .size = 2 << 20}, {.guest_base = 1 << 20, .size = 1 << 20}});
  EXPECT_EQ(mem.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace supermachine::memory
