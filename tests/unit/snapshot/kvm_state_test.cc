// File: kvm_state_test.cc
// Every piece of vCPU and VM state survives save → restore into a fresh VM → save, on the
// local /dev/kvm. A KVM without one of the ioctls (e.g. a PVM host) fails here naming the
// ioctl: snapshots cannot work there, and the test must not pretend otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <memory>
#include <string>

#include "worker/arch/x86_64/cpuid.h"
#include "worker/kvm/kvm.h"
#include "worker/kvm/vcpu_fd.h"
#include "worker/kvm/vm_fd.h"
#include "worker/snapshot/vcpu_state.h"
#include "worker/snapshot/vm_state.h"

namespace supermachine::snapshot {
namespace {

constexpr uint32_t kMsrIa32Tsc = 0x10;

struct TestVm {
  std::unique_ptr<kvm::VmFd> vm;
  std::unique_ptr<kvm::VcpuFd> vcpu;
  kvm::CpuidList cpuid;
};

// A VM with irqchip and PIT, and one vCPU with our normalized CPUID, as the worker builds it.
TestVm MakeVm(const kvm::Kvm& kvm) {
  TestVm t;
  absl::StatusOr<base::UniqueFd> vm_fd = kvm.CreateVm();
  EXPECT_TRUE(vm_fd.ok()) << vm_fd.status();
  t.vm = std::make_unique<kvm::VmFd>(std::move(*vm_fd));
  EXPECT_TRUE(t.vm->SetTssAddress(0xfffbd000).ok());
  EXPECT_TRUE(t.vm->CreateIrqchip().ok());
  EXPECT_TRUE(t.vm->CreatePit2().ok());
  absl::StatusOr<base::UniqueFd> vcpu_fd = t.vm->CreateVcpu(0);
  EXPECT_TRUE(vcpu_fd.ok()) << vcpu_fd.status();
  absl::StatusOr<int> mmap_size = kvm.VcpuMmapSize();
  EXPECT_TRUE(mmap_size.ok());
  absl::StatusOr<kvm::VcpuFd> vcpu = kvm::VcpuFd::Create(std::move(*vcpu_fd), 0, *mmap_size);
  EXPECT_TRUE(vcpu.ok()) << vcpu.status();
  t.vcpu = std::make_unique<kvm::VcpuFd>(std::move(*vcpu));
  absl::StatusOr<kvm::CpuidList> supported = kvm.SupportedCpuid();
  EXPECT_TRUE(supported.ok());
  t.cpuid = supported->Clone();
  arch::NormalizeCpuid({.vcpu_id = 0, .vcpu_count = 1}, &t.cpuid);
  EXPECT_TRUE(t.vcpu->SetCpuid(t.cpuid).ok());
  return t;
}

class KvmStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<kvm::Kvm> kvm = kvm::Kvm::Open();
    ASSERT_TRUE(kvm.ok()) << kvm.status();
    kvm_ = std::make_unique<kvm::Kvm>(std::move(*kvm));
    source_ = MakeVm(*kvm_);
    ASSERT_NE(source_.vcpu, nullptr);
    absl::StatusOr<std::vector<uint32_t>> msrs = SaveableMsrs(*kvm_, *source_.vcpu);
    ASSERT_TRUE(msrs.ok()) << msrs.status();
    options_.msrs = *msrs;
    const int xsave2 = source_.vm->CheckExtension(KVM_CAP_XSAVE2);
    options_.xsave2_size = xsave2 > 0 ? static_cast<size_t>(xsave2) : 0;
  }

  std::unique_ptr<kvm::Kvm> kvm_;
  TestVm source_;
  VcpuSaveOptions options_;
};

TEST_F(KvmStateTest, SaveableMsrsAreAReadableSubsetOfTheIndexList) {
  absl::StatusOr<std::vector<uint32_t>> all = kvm_->MsrIndexList();
  ASSERT_TRUE(all.ok()) << all.status();

  absl::StatusOr<std::vector<kvm_msr_entry>> read = source_.vcpu->GetMsrs(options_.msrs);

  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), options_.msrs.size());
  EXPECT_LE(options_.msrs.size(), all->size());
  EXPECT_THAT(options_.msrs, ::testing::Contains(kMsrIa32Tsc));
}

TEST_F(KvmStateTest, VcpuStateSurvivesRestoreIntoAFreshVm) {
  // Distinctive values, so a restore that silently did nothing cannot pass.
  kvm_regs regs = *source_.vcpu->GetRegs();
  regs.rip = 0x123456;
  regs.rax = 0xdeadbeef;
  regs.rflags = 0x2;
  ASSERT_TRUE(source_.vcpu->SetRegs(regs).ok());
  kvm_lapic_state lapic = *source_.vcpu->GetLapic();
  lapic.regs[0x80] = 0x30;  // Task priority register.
  ASSERT_TRUE(source_.vcpu->SetLapic(lapic).ok());
  absl::StatusOr<v1::VcpuState> saved = SaveVcpu(*source_.vcpu, options_);
  ASSERT_TRUE(saved.ok()) << saved.status();
  TestVm target = MakeVm(*kvm_);

  absl::Status restored = RestoreVcpu(*target.vcpu, *saved);

  ASSERT_TRUE(restored.ok()) << restored;
  absl::StatusOr<v1::VcpuState> again = SaveVcpu(*target.vcpu, options_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->regs(), saved->regs());
  EXPECT_EQ(again->sregs(), saved->sregs());
  EXPECT_EQ(again->xsave(), saved->xsave());
  EXPECT_EQ(again->xcrs(), saved->xcrs());
  EXPECT_EQ(again->debugregs(), saved->debugregs());
  EXPECT_EQ(again->lapic(), saved->lapic());
  EXPECT_EQ(again->vcpu_events(), saved->vcpu_events());
  EXPECT_EQ(again->mp_state(), saved->mp_state());
  EXPECT_EQ(again->cpuid_size(), saved->cpuid_size());
  EXPECT_EQ(again->tsc_khz(), saved->tsc_khz());
  EXPECT_EQ(target.vcpu->GetRegs()->rip, 0x123456u);
  ASSERT_EQ(again->msrs_size(), saved->msrs_size());
  for (int i = 0; i < saved->msrs_size(); ++i) {
    if (saved->msrs(i).index() == kMsrIa32Tsc) {
      EXPECT_GE(again->msrs(i).data(), saved->msrs(i).data());  // Kept ticking.
    } else {
      EXPECT_EQ(again->msrs(i).data(), saved->msrs(i).data())
          << "MSR 0x" << std::hex << saved->msrs(i).index();
    }
  }
}

TEST_F(KvmStateTest, VmStateSurvivesRestoreIntoAFreshVm) {
  absl::StatusOr<v1::VmState> saved = SaveVmState(*source_.vm);
  ASSERT_TRUE(saved.ok()) << saved.status();
  TestVm target = MakeVm(*kvm_);

  absl::Status restored = RestoreVmState(*target.vm, *saved);

  ASSERT_TRUE(restored.ok()) << restored;
  absl::StatusOr<v1::VmState> again = SaveVmState(*target.vm);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->pic_master(), saved->pic_master());
  EXPECT_EQ(again->pic_slave(), saved->pic_slave());
  EXPECT_EQ(again->ioapic(), saved->ioapic());
  kvm_clock_data before{};
  kvm_clock_data after{};
  std::memcpy(&before, saved->clock().data(), sizeof(before));
  std::memcpy(&after, again->clock().data(), sizeof(after));
  EXPECT_GE(after.clock, before.clock);
}

TEST_F(KvmStateTest, RestoreRejectsABlobOfTheWrongSize) {
  absl::StatusOr<v1::VcpuState> saved = SaveVcpu(*source_.vcpu, options_);
  ASSERT_TRUE(saved.ok()) << saved.status();
  saved->set_sregs("short");

  absl::Status restored = RestoreVcpu(*source_.vcpu, *saved);

  EXPECT_EQ(restored.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(restored.message(), ::testing::HasSubstr("sregs"));
}

}  // namespace
}  // namespace supermachine::snapshot
