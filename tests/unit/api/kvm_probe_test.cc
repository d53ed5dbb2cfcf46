// File: kvm_probe_test.cc
#include "daemon/api/kvm_probe.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::api {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

class KvmProbeTest : public ::testing::Test {
 protected:
  KvmProbePaths Paths() const {
    return {.dev_kvm = dir_.Join("kvm"), .cpuinfo = dir_.Join("cpuinfo"),
            .pvm_module = dir_.Join("kvm_pvm")};
  }
  test_support::TempDir dir_;
};

TEST_F(KvmProbeTest, HardwareWhenDeviceAndVmxFlag) {
  Write(dir_.Join("kvm"), "");
  Write(dir_.Join("cpuinfo"), "processor : 0\nflags : fpu vme vmx sse\n");
  KvmProbe probe = ProbeKvm(Paths());
  EXPECT_EQ(probe.kind, "hardware");
  EXPECT_THAT(probe.problems, IsEmpty());
}

TEST_F(KvmProbeTest, HardwareWithSvmFlag) {
  Write(dir_.Join("kvm"), "");
  Write(dir_.Join("cpuinfo"), "flags : fpu svm\n");
  EXPECT_EQ(ProbeKvm(Paths()).kind, "hardware");
}

TEST_F(KvmProbeTest, FlagSubstringIsNotVirtualization) {
  Write(dir_.Join("kvm"), "");
  Write(dir_.Join("cpuinfo"), "flags : fpu vmxfoo svmbar\n");
  KvmProbe probe = ProbeKvm(Paths());
  EXPECT_EQ(probe.kind, "absent");
  EXPECT_THAT(probe.problems, SizeIs(1));
  EXPECT_THAT(probe.problems[0], HasSubstr("no vmx/svm flag"));
}

TEST_F(KvmProbeTest, PvmWhenModuleLoadedEvenWithoutCpuFlags) {
  Write(dir_.Join("kvm"), "");
  Write(dir_.Join("cpuinfo"), "flags : fpu\n");
  std::filesystem::create_directory(dir_.Join("kvm_pvm"));
  KvmProbe probe = ProbeKvm(Paths());
  EXPECT_EQ(probe.kind, "pvm");
  EXPECT_THAT(probe.problems, SizeIs(1));
  EXPECT_THAT(probe.problems[0], HasSubstr("stock guest kernels do not boot"));
}

TEST_F(KvmProbeTest, AbsentWithoutDeviceSaysHowToLoadKvm) {
  Write(dir_.Join("cpuinfo"), "flags : vmx\n");
  KvmProbe probe = ProbeKvm(Paths());
  EXPECT_EQ(probe.kind, "absent");
  EXPECT_THAT(probe.problems, SizeIs(1));
  EXPECT_THAT(probe.problems[0], HasSubstr("modprobe kvm_intel"));
}

}  // namespace
}  // namespace supermachine::api
