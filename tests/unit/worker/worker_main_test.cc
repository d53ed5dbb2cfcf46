// File: worker_main_test.cc
// The supermachine-worker binary: bad input fails with exit 2 and a specific message before any
// vCPU runs; a tiny guest runs through the real main (flags and JSON config).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using supermachine::base::ChildProcess;

struct WorkerRun {
  int code = -1;
  std::string out;
  std::string err;
};

class WorkerMain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sm-worker-main-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    kernel_ = (dir_ / "vmlinux").string();
    supermachine::testing::WriteBytes(
        kernel_, supermachine::testing::MakeElfKernel(
                     supermachine::testing::PrintOkAndResetCode(), 0x1000000, true));
  }
  void TearDown() override { fs::remove_all(dir_); }

  WorkerRun Worker(std::vector<std::string> args) {
    args.insert(args.begin(), SM_WORKER_BIN);
    supermachine::base::UniqueFd out(
        open((dir_ / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    supermachine::base::UniqueFd err(
        open((dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto child = ChildProcess::Spawn({.argv = args, .stdout_fd = out.get(), .stderr_fd = err.get()});
    EXPECT_TRUE(child.ok()) << child.status();
    auto st = child->WaitFor(absl::Seconds(60));
    EXPECT_TRUE(st.ok());
    WorkerRun r;
    r.code = st.ok() && !st->signaled ? st->code : -1;
    r.out = Read(dir_ / "out");
    r.err = Read(dir_ / "err");
    return r;
  }
  static std::string Read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
  std::string kernel_;
};

TEST_F(WorkerMain, MissingKernelExits2NamingThePath) {
  WorkerRun r = Worker({"--kernel", (dir_ / "nope").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("kernel '" + (dir_ / "nope").string() + "': No such file"));
}

TEST_F(WorkerMain, UnsupportedKernelFormatExits2) {
  std::ofstream(dir_ / "junk") << std::string(8192, 'j');
  WorkerRun r = Worker({"--kernel", (dir_ / "junk").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("neither an ELF vmlinux nor a bzImage"));
}

TEST_F(WorkerMain, TooLittleMemoryExits2) {
  WorkerRun r = Worker({"--kernel", kernel_, "--mem-mib", "16"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("memory 16 MiB is too small"));
}

TEST_F(WorkerMain, MoreMemoryThanTheHostExits2) {
  WorkerRun r = Worker({"--kernel", kernel_, "--mem-mib", "100000000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("is too large: the host has"));
}

TEST_F(WorkerMain, UnreadableDiskExits2NamingTheDisk) {
  WorkerRun r = Worker({"--kernel", kernel_, "--disk", (dir_ / "missing.img").string() + ",ro"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing.img' (read-only): No such file or directory"));
}

TEST_F(WorkerMain, TooManyVcpusExits2) {
  WorkerRun r = Worker({"--kernel", kernel_, "--vcpus", "1000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("1000 vCPUs"));
}

TEST_F(WorkerMain, TooManyDevicesForTheCommandLineExits2) {
  std::ofstream(dir_ / "d.img") << std::string(4096, 'd');
  std::vector<std::string> args = {"--kernel", kernel_};
  for (int i = 0; i < 64; ++i) {
    args.push_back("--disk");
    args.push_back((dir_ / "d.img").string() + ",ro");
  }
  WorkerRun r = Worker(args);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("65 virtio devices"));
}

TEST_F(WorkerMain, UnknownFlagExits2) {
  WorkerRun r = Worker({"--kernel", kernel_, "--frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("frobnicate"));
}

TEST_F(WorkerMain, TinyGuestRunsAndItsResetExits4) {
  WorkerRun r = Worker({"--kernel", kernel_, "--mem-mib", "64"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_EQ(r.out, "OK\n");
  EXPECT_THAT(r.err, HasSubstr("guest reset (i8042 port 0x64)"));
}

TEST_F(WorkerMain, JsonConfigIsUsed) {
  std::ofstream(dir_ / "vm.json") << R"({"kernel": ")" << kernel_
                                   << R"(", "mem_mib": 64, "vcpus": 2, "serial": "file:)"
                                   << (dir_ / "console").string() << R"("})";
  WorkerRun r = Worker({"--config", (dir_ / "vm.json").string()});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_EQ(Read(dir_ / "console"), "OK\n");
}

TEST_F(WorkerMain, SigtermStopsARunningGuestWithExit6) {
  supermachine::testing::WriteBytes(
      kernel_, supermachine::testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, false));  // jmp $
  supermachine::base::UniqueFd err(
      open((dir_ / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto child = ChildProcess::Spawn({.argv = {SM_WORKER_BIN, "--kernel", kernel_, "--mem-mib",
                                             "64", "--vcpus", "2", "--serial", "none"},
                                    .stderr_fd = err.get()});
  ASSERT_TRUE(child.ok()) << child.status();
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(child->Signal(SIGTERM).ok());
  auto st = child->WaitFor(absl::Seconds(20));
  ASSERT_TRUE(st.ok()) << "worker ignored SIGTERM";
  EXPECT_EQ(st->ToString(), "exited 6");
  EXPECT_THAT(Read(dir_ / "err"), HasSubstr("stopped by signal 15"));
}

TEST_F(WorkerMain, VsockPathHeldByAFileExits2) {
  std::ofstream(dir_ / "taken") << "x";
  WorkerRun r = Worker({"--kernel", kernel_, "--vsock", (dir_ / "taken").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("is not a socket"));
}

// The VM's event loop watches the vsock device's host sockets: a CONNECT while no guest
// driver is up is answered (closed) at once, and the socket is removed when the worker ends.
TEST_F(WorkerMain, VsockListensWhileRunningAndRefusesConnectWithoutDriver) {
  supermachine::testing::WriteBytes(
      kernel_, supermachine::testing::MakeElfKernel({0xeb, 0xfe}, 0x1000000, false));  // jmp $
  const std::string sock = (dir_ / "v.sock").string();
  auto child = ChildProcess::Spawn({.argv = {SM_WORKER_BIN, "--kernel", kernel_, "--mem-mib",
                                             "64", "--serial", "none", "--vsock", sock}});
  ASSERT_TRUE(child.ok()) << child.status();
  supermachine::base::UniqueFd fd;
  for (int i = 0; i < 100 && !fd.valid(); ++i) {
    supermachine::base::UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      fd = std::move(s);
    } else {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  ASSERT_TRUE(fd.valid()) << "worker never listened on " << sock;
  ASSERT_EQ(write(fd.get(), "CONNECT 5000\n", 13), 13);
  pollfd p{.fd = fd.get(), .events = POLLIN, .revents = 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "no answer to CONNECT";
  char c;
  EXPECT_EQ(read(fd.get(), &c, 1), 0);  // Closed: no driver, no "OK".
  ASSERT_TRUE(child->Signal(SIGTERM).ok());
  auto st = child->WaitFor(absl::Seconds(20));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->ToString(), "exited 6");
  EXPECT_FALSE(fs::exists(sock));
}

TEST_F(WorkerMain, HelpExits0) {
  WorkerRun r = Worker({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--kernel"));
}

}  // namespace
