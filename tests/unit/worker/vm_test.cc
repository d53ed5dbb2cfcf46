// File: vm_test.cc
// The Vm end to end with tiny hand-written guests on the local /dev/kvm. These guests need no
// Linux, so they run even on PVM hosts where real kernels cannot boot (docs/design/kvm-notes.md);
// booting Linux is covered by tests/lab/worker.
#include "worker/vmm/vm.h"

#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/vmm/exit_codes.h"

namespace supermachine::vmm {
namespace {

namespace fs = std::filesystem;

int CountEntries(const char* dir) {
  int n = 0;
  DIR* d = opendir(dir);
  while (d != nullptr && readdir(d) != nullptr) {
    ++n;
  }
  if (d != nullptr) {
    closedir(d);
  }
  return n;
}

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists("/dev/kvm")) << "these tests need /dev/kvm (PVM is enough)";
    dir_ = fs::temp_directory_path() /
           ("sm-vm-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    kernel_ = (dir_ / "kernel").string();
    serial_ = (dir_ / "serial.out").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  VmOptions Options(const std::vector<uint8_t>& code, bool pvh, uint32_t vcpus = 1) {
    testing::WriteBytes(kernel_, testing::MakeElfKernel(code, 0x1000000, pvh));
    VmOptions o;
    o.config.kernel = kernel_;
    o.config.mem_mib = 64;
    o.config.vcpus = vcpus;
    o.config.serial = {.kind = SerialKind::kFile, .path = serial_};
    return o;
  }
  std::string Serial() {
    std::ifstream in(serial_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
  std::string kernel_;
  std::string serial_;
};

TEST_F(VmTest, LongModeGuestPrintsOnSerialAndResetsThroughI8042) {
  auto vm = Vm::Create(Options(testing::PrintOkAndResetCode(), /*pvh=*/false));
  ASSERT_TRUE(vm.ok()) << vm.status();
  VmEnd end = (*vm)->Run();
  EXPECT_EQ(end.exit_code, kExitI8042Reset) << end.message;
  EXPECT_EQ(Serial(), "OK\n");
}

TEST_F(VmTest, PvhGuestStartsIn32BitModeAndRuns) {
  auto vm = Vm::Create(Options(testing::PrintOkAndResetCode(), /*pvh=*/true));
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_NE((*vm)->boot_summary().find("PVH"), std::string::npos);
  VmEnd end = (*vm)->Run();
  EXPECT_EQ(end.exit_code, kExitI8042Reset) << end.message;
  EXPECT_EQ(Serial(), "OK\n");
}

TEST_F(VmTest, EightVcpusAreCreatedAndTheBootVcpuRuns) {
  auto vm = Vm::Create(Options(testing::PrintOkAndResetCode(), false, 8));
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ((*vm)->Run().exit_code, kExitI8042Reset);
}

TEST_F(VmTest, RequestStopEndsASpinningGuest) {
  // jmp $: spins forever.
  auto vm = Vm::Create(Options({0xeb, 0xfe}, false, 2));
  ASSERT_TRUE(vm.ok()) << vm.status();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (*vm)->RequestStop();
  });
  VmEnd end = (*vm)->Run();
  stopper.join();
  EXPECT_EQ(end.exit_code, kExitStopped) << end.message;
}

TEST_F(VmTest, AGuestFaultWithNoIdtEndsAsGuestReset) {
  // ud2 with an empty IDT: #UD → #DF → triple fault.
  auto vm = Vm::Create(Options({0x0f, 0x0b}, false));
  ASSERT_TRUE(vm.ok()) << vm.status();
  VmEnd end = (*vm)->Run();
  EXPECT_TRUE(end.exit_code == kExitGuestReset || end.exit_code == kExitVmmError)
      << end.message;
}

TEST_F(VmTest, DevicesAppearOnTheKernelCommandLine) {
  VmOptions o = Options(testing::PrintOkAndResetCode(), false);
  std::string disk = (dir_ / "d.img").string();
  std::ofstream(disk) << std::string(4096, 'x');
  o.config.disks.push_back({.path = disk, .read_only = true});
  auto vm = Vm::Create(std::move(o));
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_NE((*vm)->kernel_cmdline().find("virtio_mmio.device=4K@0xd0000000:5"),
            std::string::npos);
  EXPECT_NE((*vm)->kernel_cmdline().find("virtio_mmio.device=4K@0xd0001000:6"),
            std::string::npos);
}

TEST_F(VmTest, UnreadableDiskFailsBeforeAnyVcpuExists) {
  VmOptions o = Options(testing::PrintOkAndResetCode(), false);
  o.config.disks.push_back({.path = (dir_ / "missing.img").string()});
  auto vm = Vm::Create(std::move(o));
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(VmTest, LeavesNoFdsOrThreadsBehind) {
  VmOptions o = Options(testing::PrintOkAndResetCode(), false, 4);
  std::string disk = (dir_ / "d.img").string();
  std::ofstream(disk) << std::string(4096, 'x');
  o.config.disks.push_back({.path = disk});
  const int fds_before = CountEntries("/proc/self/fd");
  const int threads_before = CountEntries("/proc/self/task");
  {
    auto vm = Vm::Create(std::move(o));
    ASSERT_TRUE(vm.ok()) << vm.status();
    (*vm)->Run();
  }
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds_before);
  EXPECT_EQ(CountEntries("/proc/self/task"), threads_before);
}

}  // namespace
}  // namespace supermachine::vmm
