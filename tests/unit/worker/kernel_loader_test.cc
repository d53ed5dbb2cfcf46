// File: kernel_loader_test.cc
// ELF/bzImage detection and loading, and refusal of what we cannot boot.
#include "worker/arch/x86_64/kernel_loader.h"

#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/arch/x86_64/boot_params.h"

namespace supermachine::arch {
namespace {

namespace fs = std::filesystem;
using testing::AppendObjectSymbol;
using testing::MakeBzImage;
using testing::MakeElfKernel;
using testing::PrintOkAndResetCode;
using testing::WriteBytes;

class KernelLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("sm-kernel-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    auto m = memory::GuestMemory::Create(RamRegions(32ull << 20));
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
  }
  void TearDown() override { fs::remove(path_); }
  std::string path_;
  std::optional<memory::GuestMemory> mem_;
};

TEST_F(KernelLoaderTest, LoadsElfSegmentAtItsPhysicalAddress) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 0x200000, false));
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->entry_kind, EntryKind::kLinux64);
  EXPECT_EQ(k->entry, 0x200000u);
  EXPECT_EQ(*mem_->ReadObj<uint8_t>(0x200000), 0x66);
}

TEST_F(KernelLoaderTest, UsesThePvhNoteEntryWhenPresent) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 0x200000, true));
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->entry_kind, EntryKind::kPvh);
}

TEST_F(KernelLoaderTest, ReadsTheCommandLineLimitFromBootCommandLineSymbol) {
  std::vector<uint8_t> elf = MakeElfKernel(PrintOkAndResetCode(), 0x200000, true);
  AppendObjectSymbol(elf, "boot_command_line", 4096);
  WriteBytes(path_, elf);
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->cmdline_limit, 4095u);  // without the NUL, as bzImage's cmdline_size
}

TEST_F(KernelLoaderTest, StrippedElfHasUnknownCommandLineLimit) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 0x200000, true));
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->cmdline_limit, 0u);
}

TEST_F(KernelLoaderTest, IgnoresAnImplausibleBootCommandLineSize) {
  std::vector<uint8_t> elf = MakeElfKernel(PrintOkAndResetCode(), 0x200000, true);
  AppendObjectSymbol(elf, "boot_command_line", 8);
  WriteBytes(path_, elf);
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->cmdline_limit, 0u);
}

TEST_F(KernelLoaderTest, IgnoresThePvhNoteWhenNotPreferred) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 0x200000, true));
  auto k = LoadKernel(path_, *mem_, /*prefer_pvh=*/false);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->entry_kind, EntryKind::kLinux64);
}

TEST_F(KernelLoaderTest, RejectsSegmentBeyondGuestMemory) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 64ull << 20, false));
  auto k = LoadKernel(path_, *mem_);
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("more memory"), absl::string_view::npos);
}

TEST_F(KernelLoaderTest, RejectsSegmentOverBootStructures) {
  WriteBytes(path_, MakeElfKernel(PrintOkAndResetCode(), 0x8000, false));
  EXPECT_FALSE(LoadKernel(path_, *mem_).ok());
}

TEST_F(KernelLoaderTest, LoadsBzImageAtOneMiBWithEntryAt0x200) {
  WriteBytes(path_, MakeBzImage(0x020f, 0x1, {1, 2, 3, 4}));
  auto k = LoadKernel(path_, *mem_);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->entry, 0x100200u);
  EXPECT_EQ(*mem_->ReadObj<uint8_t>(0x100003), 4);
  EXPECT_EQ(k->cmdline_limit, 2047u);
  EXPECT_EQ(k->setup_header.size(), 0x264u - 0x1f1u);
}

TEST_F(KernelLoaderTest, RejectsBzImageWithout64BitEntry) {
  WriteBytes(path_, MakeBzImage(0x020f, 0x0, {1}));
  auto k = LoadKernel(path_, *mem_);
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("XLF_KERNEL_64"), absl::string_view::npos);
}

TEST_F(KernelLoaderTest, ProbeRejectsAFileThatIsNoKernel) {
  WriteBytes(path_, std::vector<uint8_t>(4096, 'x'));
  EXPECT_EQ(ProbeKernel(path_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KernelLoaderTest, ProbeRejectsATruncatedElf) {
  auto elf = MakeElfKernel(PrintOkAndResetCode(), 0x200000, false);
  elf.resize(40);
  WriteBytes(path_, elf);
  EXPECT_FALSE(ProbeKernel(path_).ok());
}

TEST_F(KernelLoaderTest, ProbeReportsAMissingFileAsNotFound) {
  EXPECT_EQ(ProbeKernel("/nonexistent/vmlinux").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace supermachine::arch
