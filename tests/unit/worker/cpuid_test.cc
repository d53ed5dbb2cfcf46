// File: cpuid_test.cc
// CPUID normalisation on a synthetic supported list.
#include "worker/arch/x86_64/cpuid.h"

#include "gtest/gtest.h"

namespace supermachine::arch {
namespace {

kvm::CpuidList ListWith(std::vector<kvm_cpuid_entry2> entries) {
  kvm::CpuidList list;
  list.set_size(static_cast<uint32_t>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    list.at(static_cast<uint32_t>(i)) = entries[i];
  }
  return list;
}

TEST(Cpuid, Leaf1CarriesApicIdAndHypervisorBit) {
  kvm::CpuidList c = ListWith({{.function = 1, .ebx = 0xff000800}});
  NormalizeCpuid({.vcpu_id = 3, .vcpu_count = 4}, &c);
  EXPECT_EQ(c.at(0).ebx >> 24, 3u);
  EXPECT_EQ((c.at(0).ebx >> 16) & 0xff, 4u);
  EXPECT_EQ(c.at(0).ebx & 0xffff, 0x0800u);
  EXPECT_TRUE(c.at(0).ecx & (1u << 31));
}

TEST(Cpuid, TscDeadlineIsSetOnlyWhenKvmHasIt) {
  kvm::CpuidList with = ListWith({{.function = 1}});
  kvm::CpuidList without = ListWith({{.function = 1}});
  NormalizeCpuid({.tsc_deadline = true}, &with);
  NormalizeCpuid({.tsc_deadline = false}, &without);
  EXPECT_TRUE(with.at(0).ecx & (1u << 24));
  EXPECT_FALSE(without.at(0).ecx & (1u << 24));
}

TEST(Cpuid, BrandStringLeavesAreFilledWhenGiven) {
  kvm::CpuidList c = ListWith({{.function = 0x80000003}});
  CpuidOptions options;
  options.brand[4] = 0x41424344;
  NormalizeCpuid(options, &c);
  EXPECT_EQ(c.at(0).eax, 0x41424344u);
}

TEST(Cpuid, PmuLeafIsHidden) {
  kvm::CpuidList c = ListWith({{.function = 0xa, .eax = 0x07300404}});
  NormalizeCpuid({}, &c);
  EXPECT_EQ(c.at(0).eax, 0u);
}

TEST(Cpuid, ExtendedTopologyGivesX2ApicIdAndCoreCount) {
  kvm::CpuidList c = ListWith({{.function = 0xb, .index = 1}});
  NormalizeCpuid({.vcpu_id = 5, .vcpu_count = 8}, &c);
  EXPECT_EQ(c.at(0).edx, 5u);
  EXPECT_EQ(c.at(0).ebx, 8u);
  EXPECT_EQ(c.at(0).eax, 3u);
}

}  // namespace
}  // namespace supermachine::arch
