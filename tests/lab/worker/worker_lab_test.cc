// File: worker_lab_test.cc
// Boots real guests with supermachine-worker; runs inside the KVM lab (tests/lab/run), all
// checks in one lab run. Each test builds a squashfs root (mksquashfs) holding a static init,
// boots the project's kernel (kernel/build.sh cache) and checks the serial console, the exit
// code and the bytes the guest wrote to a read-write disk.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lab/support/guest_test.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::lab::ReadFile;
using supermachine::base::ChildProcess;
using supermachine::base::ExitStatus;
using ::testing::HasSubstr;

class WorkerLab : public supermachine::lab::GuestTest {
 protected:
  WorkerLab() : GuestTest("sm-worker-lab") {}

  // A squashfs root with `init` as /init, the mount points, and /payload.txt.
  std::string MakeRoot(const std::string& init, const std::string& payload) {
    fs::path root = dir_ / "root";
    for (const char* d : {"dev", "proc", "sys", "tmp", "run"}) {
      fs::create_directories(root / d);
    }
    fs::copy_file(init, root / "init");
    std::ofstream(root / "payload.txt") << payload;
    fs::path image = dir_ / "root.sqfs";
    auto child = ChildProcess::Spawn({.argv = {"mksquashfs", root.string(), image.string(),
                                               "-quiet", "-noappend", "-all-root"},
                                      .stdout_fd = -1});
    EXPECT_TRUE(child.ok()) << child.status();
    auto st = child->Wait();
    EXPECT_TRUE(st.ok() && st->success()) << "mksquashfs failed";
    return image.string();
  }

  std::string MakeDisk(const std::string& name, uint64_t bytes) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary).close();
    fs::resize_file(p, bytes);
    return p.string();
  }

  struct Result {
    ExitStatus exit;
    std::string serial;
    std::string stderr_text;
  };

  // Runs the worker to completion (killed after `timeout`).
  Result Boot(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(240)) {
    fs::path serial = dir_ / "serial.log";
    fs::path err = dir_ / "stderr.log";
    supermachine::base::UniqueFd err_fd(
        open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    std::vector<std::string> argv = {SM_WORKER_BIN, "--serial", "file:" + serial.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = ChildProcess::Spawn({.argv = argv, .stderr_fd = err_fd.get()});
    EXPECT_TRUE(child.ok()) << child.status();
    Result r;
    auto st = child->WaitFor(timeout);
    if (!st.ok()) {
      ADD_FAILURE() << "worker did not finish within " << timeout << "; serial tail:\n"
                    << ReadFile(serial);
      st = child->Terminate(absl::Seconds(5));
    }
    r.exit = st.ok() ? *st : ExitStatus{.signaled = true, .signal = SIGKILL};
    r.serial = ReadFile(serial);
    r.stderr_text = ReadFile(err);
    return r;
  }

  std::string Cmdline(const std::string& extra) {
    return absl::StrCat(
        "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init ",
        extra);
  }
};

TEST_F(WorkerLab, BootsVmlinuxPvhToGuestAgentMarker) {
  std::string root = MakeRoot(SM_GUEST_AGENT_BIN, "x");
  Result r = Boot({"--kernel", KernelDir() + "/vmlinux", "--disk", root + ",ro", "--cmdline",
                   Cmdline("quiet")});
  EXPECT_THAT(r.serial, HasSubstr("supermachine-guest-agent: init ok")) << r.stderr_text;
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
  EXPECT_THAT(r.stderr_text, HasSubstr("guest reset (triple fault"));
}

TEST_F(WorkerLab, BootsBzImageToGuestAgentMarker) {
  std::string root = MakeRoot(SM_GUEST_AGENT_BIN, "x");
  Result r = Boot({"--kernel", KernelDir() + "/bzImage", "--disk", root + ",ro", "--cmdline",
                   Cmdline("quiet")});
  EXPECT_THAT(r.serial, HasSubstr("supermachine-guest-agent: init ok")) << r.stderr_text;
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
}

TEST_F(WorkerLab, ReadsSquashfsWritesRwDiskAndServesEntropy) {
  std::string root = MakeRoot(SM_BOOT_CHECK_INIT_BIN, "hello-from-squashfs\n");
  std::string rw = MakeDisk("rw.img", 1 << 20);
  Result r = Boot({"--kernel", KernelDir() + "/vmlinux", "--disk", root + ",ro", "--disk", rw,
                   "--cmdline", Cmdline("smcheck=basic,rng")});
  EXPECT_THAT(r.serial, HasSubstr("sm-check: init marker")) << r.stderr_text;
  EXPECT_THAT(r.serial, HasSubstr("sm-check: payload=hello-from-squashfs"));
  EXPECT_THAT(r.serial, HasSubstr("sm-check: rng_current=virtio_rng.0"));
  EXPECT_THAT(r.serial, HasSubstr("sm-check: rng_bytes=32"));
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text << r.serial;
  EXPECT_EQ(ReadFile(rw).substr(0, 25), "SMOK:hello-from-squashfs\n");
}

TEST_F(WorkerLab, GuestSeesFourCpusOnline) {
  std::string root = MakeRoot(SM_BOOT_CHECK_INIT_BIN, "x");
  Result r = Boot({"--kernel", KernelDir() + "/vmlinux", "--vcpus", "4", "--disk", root + ",ro",
                   "--cmdline", Cmdline("quiet smcheck=cpus")});
  EXPECT_THAT(r.serial, HasSubstr("sm-check: cpus_online=4")) << r.stderr_text << r.serial;
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text;
}

uint64_t Fnv1aFile(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  uint64_t h = 0xcbf29ce484222325ull;
  size_t left = bytes;
  while (left > 0 && in.read(buf.data(), static_cast<std::streamsize>(std::min(left, buf.size())))) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h = (h ^ static_cast<uint8_t>(buf[static_cast<size_t>(i)])) * 0x100000001b3ull;
    }
    left -= static_cast<size_t>(in.gcount());
  }
  return h;
}

TEST_F(WorkerLab, SixtyFourMibRoundTripThroughVirtioBlk) {
  std::string root = MakeRoot(SM_BOOT_CHECK_INIT_BIN, "x");
  std::string rw = MakeDisk("data.img", 80u << 20);
  Result r = Boot({"--kernel", KernelDir() + "/vmlinux", "--vcpus", "2", "--disk", root + ",ro",
                   "--disk", rw, "--cmdline", Cmdline("quiet smcheck=disk64")},
                  absl::Seconds(600));
  char host_fnv[32];
  std::snprintf(host_fnv, sizeof(host_fnv), "%016llx",
                static_cast<unsigned long long>(Fnv1aFile(rw, 64u << 20)));
  EXPECT_THAT(r.serial, HasSubstr(absl::StrCat("disk64 written_fnv=", host_fnv,
                                               " read_fnv=", host_fnv)))
      << r.stderr_text << r.serial;
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text;
}

TEST_F(WorkerLab, SigtermStopsTheVmCleanly) {
  std::string root = MakeRoot(SM_BOOT_CHECK_INIT_BIN, "x");
  fs::path serial = dir_ / "serial.log";
  auto child = ChildProcess::Spawn(
      {.argv = {SM_WORKER_BIN, "--serial", "file:" + serial.string(), "--kernel",
                KernelDir() + "/vmlinux", "--disk", root + ",ro", "--cmdline",
                Cmdline("quiet smcheck=hang")}});
  ASSERT_TRUE(child.ok()) << child.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(240);
  while (ReadFile(serial).find("sm-check: hanging") == std::string::npos &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(ReadFile(serial), HasSubstr("sm-check: hanging"));
  ASSERT_TRUE(child->Signal(SIGTERM).ok());
  auto st = child->WaitFor(absl::Seconds(30));
  ASSERT_TRUE(st.ok()) << "worker ignored SIGTERM";
  EXPECT_EQ(st->ToString(), "exited 6");  // kExitStopped
}

// One disk per image layer: images with 64 layers must boot. x86's stock 2048-byte command
// line holds only ~50 virtio_mmio.device= entries; our kernel raises it (kernel/build.sh) and
// the worker reads the limit from vmlinux's boot_command_line symbol.
TEST_F(WorkerLab, SixtyFourDisksShareInterruptsAndAllAppear) {
  std::string root = MakeRoot(SM_BOOT_CHECK_INIT_BIN, "x");
  std::vector<std::string> args = {"--kernel", KernelDir() + "/vmlinux", "--disk", root + ",ro"};
  for (int i = 0; i < 63; ++i) {
    args.push_back("--disk");
    args.push_back(MakeDisk(absl::StrCat("d", i, ".img"), 1 << 20) + ",ro");
  }
  args.push_back("--cmdline");
  args.push_back(Cmdline("smcheck=cpus"));
  Result r = Boot(args);
  // 64 disks + rng = 65 devices on 19 IOAPIC pins: most share an interrupt. The 64th disk is
  // vdbl (vda..vdz, vdaa..vdaz, vdba..vdbl).
  EXPECT_THAT(r.serial, HasSubstr("[vdbl]")) << r.stderr_text << r.serial;
  EXPECT_THAT(r.serial, HasSubstr("sm-check: done"));
  EXPECT_EQ(r.exit.ToString(), "exited 0") << r.stderr_text;
}

}  // namespace
