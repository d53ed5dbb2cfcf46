// File: cmdline_test.cc
// Kernel command line assembly and the device-slot layout.
#include "worker/vmm/cmdline.h"

#include "gtest/gtest.h"
#include "worker/arch/x86_64/layout.h"

namespace supermachine::vmm {
namespace {

TEST(Cmdline, AppendsOneVirtioMmioEntryPerDevice) {
  auto line = BuildKernelCmdline("console=ttyS0", {VirtioSlot(0), VirtioSlot(1)}, 0);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(*line,
            "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 "
            "virtio_mmio.device=4K@0xd0001000:6");
}

TEST(Cmdline, RejectsALineLongerThanTheKernelLimitNamingTheDeviceCount) {
  std::vector<MmioDeviceSlot> many;
  for (uint32_t i = 0; i < 65; ++i) {
    many.push_back(VirtioSlot(i));
  }
  auto line = BuildKernelCmdline("console=ttyS0", many, kDefaultCmdlineLimit);
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(line.status().message().find("65 virtio devices"), absl::string_view::npos);
}

TEST(Cmdline, RejectsEmbeddedNul) {
  EXPECT_FALSE(BuildKernelCmdline(absl::string_view("a\0b", 3), {}, 0).ok());
}

TEST(VirtioSlot, InterruptsWrapAroundAfterTheLastIoapicPin) {
  EXPECT_EQ(VirtioSlot(18).irq, arch::kLastVirtioIrq);
  EXPECT_EQ(VirtioSlot(19).irq, arch::kFirstVirtioIrq);
  EXPECT_EQ(VirtioSlot(19).base, arch::kVirtioMmioBase + 19 * arch::kVirtioMmioSize);
}

TEST(VirtioSlot, MaximumDeviceCountStaysInsideTheMmioGap) {
  MmioDeviceSlot last = VirtioSlot(arch::kMaxVirtioDevices - 1);
  EXPECT_LT(last.base + arch::kVirtioMmioSize, arch::kIoapicAddr);
}

}  // namespace
}  // namespace supermachine::vmm
