// File: tests/lab/support/guest_test.h
// The fixture of lab tests that boot a guest per test (worker, snapshot, agentinit): each test
// fails, never skips, when the guest kernel is not built or there is no /dev/kvm, and gets a
// fresh scratch directory of its own, removed after it. Header-only: it uses SM_SOURCE_DIR,
// which every lab test target defines.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/lab/support/kernel_dir.h"

namespace supermachine::lab {

// The whole file; "" when it cannot be read (a guest's log may not exist yet).
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GuestTest : public ::testing::Test {
 protected:
  // Scratch directories are <$TMPDIR or /tmp>/<prefix>-<pid>-<test name>.
  explicit GuestTest(std::string prefix) : prefix_(std::move(prefix)) {}

  // The guest kernel dir of this source tree (or $SM_KERNEL_DIR), "" when not built.
  static const std::string& KernelDir() {
    static const std::string dir = ::supermachine::lab::KernelDir(SM_SOURCE_DIR);
    return dir;
  }

  void SetUp() override {
    ASSERT_FALSE(KernelDir().empty())
        << "guest kernel not built: run kernel/build.sh (kernel/README.md) or set SM_KERNEL_DIR";
    ASSERT_TRUE(std::filesystem::exists("/dev/kvm"))
        << "no /dev/kvm: this test must run via tests/lab/run";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const char* tmp = std::getenv("TMPDIR");
    dir_ = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
           absl::StrCat(prefix_, "-", ::getpid(), "-", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;  // this test's scratch directory

 private:
  std::string prefix_;
};

}  // namespace supermachine::lab
