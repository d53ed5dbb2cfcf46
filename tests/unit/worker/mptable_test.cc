// File: mptable_test.cc
// MP table bytes: signatures, checksums, one processor entry per vCPU.
#include "worker/arch/x86_64/mptable.h"

#include <cstring>
#include <numeric>

#include "gtest/gtest.h"
#include "worker/arch/x86_64/layout.h"

namespace supermachine::arch {
namespace {

uint8_t Sum(const std::vector<uint8_t>& v, size_t from, size_t len) {
  return static_cast<uint8_t>(std::accumulate(v.begin() + static_cast<long>(from),
                                              v.begin() + static_cast<long>(from + len), 0));
}

TEST(MpTable, FloatingPointerHasSignatureAndZeroChecksum) {
  auto t = BuildMpTable(1);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(std::memcmp(t->data(), "_MP_", 4), 0);
  EXPECT_EQ(Sum(*t, 0, 16), 0);
}

TEST(MpTable, PointerAddressesTheConfigTableRightAfterIt) {
  auto t = BuildMpTable(1);
  ASSERT_TRUE(t.ok());
  uint32_t physptr;
  std::memcpy(&physptr, t->data() + 4, 4);
  EXPECT_EQ(physptr, kMpTableAddr + 16);
  EXPECT_EQ(std::memcmp(t->data() + 16, "PCMP", 4), 0);
}

TEST(MpTable, ConfigTableChecksumIsZero) {
  auto t = BuildMpTable(4);
  ASSERT_TRUE(t.ok());
  uint16_t len;
  std::memcpy(&len, t->data() + 16 + 4, 2);
  EXPECT_EQ(len + 16u, t->size());
  EXPECT_EQ(Sum(*t, 16, len), 0);
}

TEST(MpTable, ListsOneEnabledProcessorPerVcpuWithBootFlagOnFirst) {
  auto t = BuildMpTable(4);
  ASSERT_TRUE(t.ok());
  const size_t first = 16 + 44;
  EXPECT_EQ((*t)[first], 0);           // Processor entry.
  EXPECT_EQ((*t)[first + 3], 1 | 2);   // Enabled | BSP.
  EXPECT_EQ((*t)[first + 20 + 1], 1);  // Second CPU: APIC id 1.
  EXPECT_EQ((*t)[first + 20 + 3], 1);  // Enabled, not BSP.
  EXPECT_EQ((*t)[first + size_t{4} * 20], 1);  // Then the bus entry.
}

TEST(MpTable, FitsBelow640KiBForTheMaximumVcpus) {
  auto t = BuildMpTable(kMaxVcpus);
  ASSERT_TRUE(t.ok());
  EXPECT_LE(kMpTableAddr + t->size(), 0xa0000u);
}

TEST(MpTable, RejectsZeroAndTooManyVcpus) {
  EXPECT_FALSE(BuildMpTable(0).ok());
  EXPECT_FALSE(BuildMpTable(kMaxVcpus + 1).ok());
}

}  // namespace
}  // namespace supermachine::arch
