// File: compat_test.cc
// Restore preconditions: vCPU count, CPU vendor and features, internal consistency.
#include "worker/snapshot/compat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "worker/snapshot/cpu_identity.h"

namespace supermachine::snapshot {
namespace {

using ::testing::HasSubstr;

v1::CpuIdentity Cpu(const std::string& vendor, uint32_t leaf7_ebx) {
  v1::CpuIdentity cpu;
  cpu.set_vendor(vendor);
  v1::FeatureWord* w = cpu.add_features();
  w->set_function(7);
  w->set_index(0);
  w->set_register_(1);
  w->set_bits(leaf7_ebx);
  return cpu;
}

v1::SnapshotState State(uint32_t vcpus, const v1::CpuIdentity& cpu) {
  v1::SnapshotState state;
  state.set_vcpu_count(vcpus);
  for (uint32_t i = 0; i < vcpus; ++i) {
    state.add_vcpus()->set_id(i);
  }
  state.mutable_memory()->add_regions()->set_size(1 << 20);
  *state.mutable_cpu() = cpu;
  return state;
}

TEST(CheckRestorable, AcceptsSameCpuAndDefaultVcpuCount) {
  v1::SnapshotState state = State(2, Cpu("GenuineIntel", 0b1011));

  EXPECT_TRUE(CheckRestorable(state, {.host_cpu = Cpu("GenuineIntel", 0b1011)}).ok());
}

TEST(CheckRestorable, AcceptsHostWithMoreFeatures) {
  v1::SnapshotState state = State(1, Cpu("GenuineIntel", 0b0011));

  EXPECT_TRUE(CheckRestorable(state, {.host_cpu = Cpu("GenuineIntel", 0b1111)}).ok());
}

TEST(CheckRestorable, RejectsDifferentVcpuCount) {
  v1::SnapshotState state = State(2, Cpu("GenuineIntel", 0));

  absl::Status st =
      CheckRestorable(state, {.host_cpu = Cpu("GenuineIntel", 0), .vcpu_count = 4});

  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("snapshot has 2 vCPUs, 4 were requested"));
}

TEST(CheckRestorable, RejectsOtherVendor) {
  v1::SnapshotState state = State(1, Cpu("GenuineIntel", 0));

  absl::Status st = CheckRestorable(state, {.host_cpu = Cpu("AuthenticAMD", 0)});

  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("'GenuineIntel' CPU, this host is 'AuthenticAMD'"));
}

TEST(CheckRestorable, NamesMissingFeatureBits) {
  v1::SnapshotState state = State(1, Cpu("GenuineIntel", 0b1100));

  absl::Status st = CheckRestorable(state, {.host_cpu = Cpu("GenuineIntel", 0b0100)});

  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("leaf 0x7.0 ebx bits 0x00000008"));
}

TEST(CheckRestorable, RejectsStateWithoutOneEntryPerVcpu) {
  v1::SnapshotState state = State(2, Cpu("GenuineIntel", 0));
  state.set_vcpu_count(3);

  absl::Status st = CheckRestorable(state, {.host_cpu = Cpu("GenuineIntel", 0)});

  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
}

TEST(CpuIdentityFromCpuid, DecodesVendorFamilyAndModel) {
  kvm::CpuidList cpuid;
  cpuid.set_size(2);
  cpuid.at(0) = kvm_cpuid_entry2{};
  cpuid.at(0).function = 0;
  cpuid.at(0).ebx = 0x756e6547;  // "Genu"
  cpuid.at(0).edx = 0x49656e69;  // "ineI"
  cpuid.at(0).ecx = 0x6c65746e;  // "ntel"
  cpuid.at(1) = kvm_cpuid_entry2{};
  cpuid.at(1).function = 1;
  cpuid.at(1).eax = 0x000906ea;  // Family 6, model 0x9e, stepping 10.

  v1::CpuIdentity id = CpuIdentityFromCpuid(cpuid);

  EXPECT_EQ(id.vendor(), "GenuineIntel");
  EXPECT_EQ(id.family(), 6u);
  EXPECT_EQ(id.model(), 0x9eu);
  EXPECT_EQ(id.stepping(), 10u);
}

TEST(CheckCpuCompatible, IgnoresBitsKvmFlipsAtRunTime) {
  v1::CpuIdentity saved = Cpu("GenuineIntel", 0);
  v1::FeatureWord* w = saved.add_features();
  w->set_function(1);
  w->set_register_(2);
  w->set_bits(1u << 27);  // OSXSAVE: set once the guest enabled CR4.OSXSAVE.

  EXPECT_TRUE(CheckCpuCompatible(saved, Cpu("GenuineIntel", 0)).ok());
}

TEST(CheckRestorable, GuestIdentityMustMatchWhatTheCallerNames) {
  v1::SnapshotState state = State(1, Cpu("GenuineIntel", 0));
  state.mutable_guest()->set_kernel_sha256(std::string(64, 'a'));
  state.mutable_guest()->set_agent_version("1.0");
  const v1::CpuIdentity host = Cpu("GenuineIntel", 0);

  EXPECT_TRUE(CheckRestorable(state, {.host_cpu = host}).ok());
  EXPECT_TRUE(CheckRestorable(state, {.host_cpu = host,
                                      .guest = {.kernel_sha256 = std::string(64, 'a'),
                                                .agent_version = "1.0"}})
                  .ok());
  absl::Status kernel = CheckRestorable(
      state, {.host_cpu = host, .guest = {.kernel_sha256 = std::string(64, 'b')}});
  EXPECT_EQ(kernel.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(kernel.message(), HasSubstr("kernel sha256 " + std::string(64, 'a')));
  absl::Status agent =
      CheckRestorable(state, {.host_cpu = host, .guest = {.agent_version = "2.0"}});
  EXPECT_EQ(agent.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(agent.message(), HasSubstr("agent version 1.0, 2.0 was asked for"));

  state.mutable_guest()->clear_agent_version();
  absl::Status none =
      CheckRestorable(state, {.host_cpu = host, .guest = {.agent_version = "2.0"}});
  EXPECT_THAT(none.message(), HasSubstr("agent version none recorded"));
}

}  // namespace
}  // namespace supermachine::snapshot
