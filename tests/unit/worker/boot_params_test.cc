// File: boot_params_test.cc
// e820 map, RAM regions around the MMIO gap, zero page fields, PVH start_info.
#include "worker/arch/x86_64/boot_params.h"

#include <cstring>

#include "gtest/gtest.h"
#include "worker/arch/x86_64/gdt.h"
#include "worker/arch/x86_64/layout.h"

namespace supermachine::arch {
namespace {

template <typename T>
T At(const std::vector<uint8_t>& page, size_t off) {
  T v;
  std::memcpy(&v, page.data() + off, sizeof(T));
  return v;
}

TEST(RamRegions, SmallGuestIsOneRegionFromZero) {
  auto r = RamRegions(256ull << 20);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].size, 256ull << 20);
}

TEST(RamRegions, LargeGuestSkipsTheMmioGap) {
  auto r = RamRegions(4ull << 30);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].size, kMmioGapStart);
  EXPECT_EQ(r[1].guest_base, kMmioGapEnd);
  EXPECT_EQ(r[0].size + r[1].size, 4ull << 30);
}

TEST(E820, ReservesEbdaToOneMiBAndMapsTheRestAsRam) {
  auto mem = memory::GuestMemory::Create(RamRegions(64ull << 20));
  ASSERT_TRUE(mem.ok());
  std::vector<E820Entry> e = BuildE820(*mem);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0], (E820Entry{.addr = 0, .size = kEbdaStart, .type = kE820Ram}));
  EXPECT_EQ(e[1].type, kE820Reserved);
  EXPECT_EQ(e[2], (E820Entry{.addr = kHighMemStart, .size = (64ull << 20) - kHighMemStart,
                             .type = kE820Ram}));
}

TEST(ZeroPage, CarriesCommandLineLoaderAndE820) {
  auto page = BuildZeroPage({.cmdline_addr = kCmdlineAddr,
                             .cmdline_size = 42,
                             .e820 = {{.addr = 0, .size = 0x1000, .type = kE820Ram}}});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(At<uint32_t>(*page, zp::kCmdLinePtr), kCmdlineAddr);
  EXPECT_EQ(At<uint32_t>(*page, zp::kCmdlineSize), 42u);
  EXPECT_EQ((*page)[zp::kTypeOfLoader], 0xff);
  EXPECT_EQ((*page)[zp::kE820Entries], 1);
  EXPECT_EQ(At<uint64_t>(*page, zp::kE820Table + 8), 0x1000u);
  EXPECT_EQ(At<uint32_t>(*page, zp::kHeaderMagic), zp::kHdrSMagic);
}

TEST(ZeroPage, CopiesTheBzImageSetupHeader) {
  std::vector<uint8_t> hdr(0x202 + 0x40 - zp::kSetupHeader, 0);
  hdr[zp::kSetupSects - zp::kSetupHeader] = 27;
  auto page = BuildZeroPage({.setup_header = hdr, .cmdline_addr = kCmdlineAddr});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ((*page)[zp::kSetupSects], 27);
}

TEST(ZeroPage, RejectsTooManyE820Entries) {
  EXPECT_FALSE(BuildZeroPage({.e820 = std::vector<E820Entry>(200)}).ok());
}

TEST(PvhStartInfo, WritesMagicCmdlineAndMemmap) {
  auto mem = memory::GuestMemory::Create(RamRegions(64ull << 20));
  ASSERT_TRUE(mem.ok());
  std::vector<E820Entry> e = BuildE820(*mem);
  ASSERT_TRUE(WritePvhStartInfo(*mem, kCmdlineAddr, e).ok());
  EXPECT_EQ(*mem->ReadObj<uint32_t>(kPvhStartInfoAddr), kPvhStartInfoMagic);
  EXPECT_EQ(*mem->ReadObj<uint64_t>(kPvhStartInfoAddr + 24), kCmdlineAddr);
  EXPECT_EQ(*mem->ReadObj<uint64_t>(kPvhStartInfoAddr + 40), kPvhMemmapAddr);
  EXPECT_EQ(*mem->ReadObj<uint32_t>(kPvhStartInfoAddr + 48), e.size());
  EXPECT_EQ(*mem->ReadObj<uint64_t>(kPvhMemmapAddr + 48), kHighMemStart);
}

TEST(Gdt, FlatCodeSegmentDecodesToFourGiBLongModeSegment) {
  BootGdt gdt = MakeBootGdt(BootMode::kLong64);
  kvm_segment cs = SegmentFromGdt(gdt.entries[gdt.code_index], gdt.code_index);
  EXPECT_EQ(cs.selector, 0x10);
  EXPECT_EQ(cs.limit, 0xffffffffu);
  EXPECT_EQ(cs.l, 1);
  EXPECT_EQ(cs.present, 1);
}

TEST(Gdt, PvhCodeSegmentIs32Bit) {
  BootGdt gdt = MakeBootGdt(BootMode::kProtected32);
  kvm_segment cs = SegmentFromGdt(gdt.entries[gdt.code_index], gdt.code_index);
  EXPECT_EQ(cs.l, 0);
  EXPECT_EQ(cs.db, 1);
}

}  // namespace
}  // namespace supermachine::arch
