// File: vm_snapshot_test.cc
// Snapshot and restore of a whole Vm on the local /dev/kvm (PVM is enough): a tiny guest counts
// in memory and prints a dot every 2^16 steps; it is snapshotted through the control socket,
// restored into a new Vm, which keeps counting from the saved value, and the restored VM is
// snapshotted again (chained). Linux guests are the lab test's job (tests/lab/snapshot).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/worker/test_kernel.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/vsock/muxer.h"
#include "worker/snapshot/state_file.h"
#include "worker/vmm/exit_codes.h"
#include "worker/vmm/vm.h"

namespace supermachine::vmm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uint64_t kCounterAddr = 0x1100000;

// 32-bit (PVH entry) code at 0x1000000:
//   mov edi, kCounterAddr
// loop: inc dword [edi]; test dword [edi], 0xffff; jnz loop
//   mov dx, 0x3f8; mov al, '.'; out dx, al; jmp loop
std::vector<uint8_t> CounterGuest() {
  return {0xbf, 0x00, 0x00, 0x10, 0x01,              // mov edi, 0x01100000
          0xff, 0x07,                                // loop: inc dword [edi]
          0xf7, 0x07, 0xff, 0xff, 0x00, 0x00,        // test dword [edi], 0xffff
          0x75, 0xf6,                                // jnz loop
          0x66, 0xba, 0xf8, 0x03,                    // mov dx, 0x3f8
          0xb0, 0x2e,                                // mov al, '.'
          0xee,                                      // out dx, al
          0xeb, 0xed};                               // jmp loop
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint32_t CounterIn(const std::string& memory_file) {
  uint32_t v = 0;
  base::UniqueFd fd(open(memory_file.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(pread(fd.get(), &v, sizeof(v), kCounterAddr), 4);
  return v;
}

// Sends `lines` one at a time on the control socket, returns the replies.
std::vector<std::string> Control(const std::string& path, const std::vector<std::string>& lines) {
  base::UniqueFd fd;
  for (int i = 0; i < 500 && !fd.valid(); ++i) {  // The Vm creates the socket while building.
    base::UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      fd = std::move(s);
    } else {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  std::vector<std::string> replies;
  for (const std::string& line : lines) {
    const std::string out = line + "\n";
    EXPECT_EQ(write(fd.get(), out.data(), out.size()), static_cast<ssize_t>(out.size()));
    std::string reply;
    char c;
    while (read(fd.get(), &c, 1) == 1 && c != '\n') {
      reply.push_back(c);
    }
    replies.push_back(reply);
  }
  return replies;
}

void WaitForOutput(const std::string& serial, size_t bytes) {
  for (int i = 0; i < 1000 && ReadAll(serial).size() < bytes; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
}

class VmSnapshotTest : public ::testing::Test {
 protected:
  VmOptions Options(const std::string& serial, const std::string& control) {
    VmOptions o;
    o.config.kernel = kernel_;
    o.config.mem_mib = 64;
    o.config.rng = false;
    o.config.serial = {.kind = SerialKind::kFile, .path = serial};
    o.control_socket_path = control;
    return o;
  }

  // Runs `vm` until the control socket's "exit" after "snapshot `snap`"; returns the replies.
  std::vector<std::string> RunAndSnapshot(Vm& vm, const std::string& serial,
                                          const std::string& control, const std::string& snap) {
    VmEnd end;
    std::thread runner([&] { end = vm.Run(); });
    WaitForOutput(serial, 3);
    std::vector<std::string> replies = Control(control, {"pause", "resume", "snapshot " + snap,
                                                         "exit"});
    runner.join();
    EXPECT_EQ(end.exit_code, kExitStopped) << end.message;
    return replies;
  }

  void SetUp() override {
    kernel_ = dir_.Join("kernel");
    testing::WriteBytes(kernel_, testing::MakeElfKernel(CounterGuest(), 0x1000000, true));
  }

  test_support::TempDir dir_;
  std::string kernel_;
};

TEST_F(VmSnapshotTest, RestoredGuestContinuesCountingFromTheSnapshot) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  std::vector<std::string> replies =
      RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0], "OK paused");
  EXPECT_EQ(replies[1], "OK resumed");
  EXPECT_THAT(replies[2], StartsWith("OK snapshot " + dir_.Join("snap1")));
  EXPECT_EQ(replies[3], "OK exiting");
  const uint32_t saved = CounterIn(dir_.Join("snap1/memory"));
  ASSERT_GT(saved, 3u << 16);  // At least the three dots we waited for.

  absl::StatusOr<std::unique_ptr<Vm>> restored =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  replies = RunAndSnapshot(**restored, dir_.Join("serial2"), dir_.Join("ctl2"),
                           dir_.Join("snap2"));

  EXPECT_THAT(replies[2], StartsWith("OK snapshot"));
  const uint32_t later = CounterIn(dir_.Join("snap2/memory"));
  // The restored guest printed its own dots and counted on from the saved value (a guest
  // started afresh would need more than the whole run to get past it).
  // Three dots after resuming mid-interval take more than two full intervals.
  EXPECT_GT(later, saved + (2u << 16));
  EXPECT_THAT(ReadAll(dir_.Join("serial2")), StartsWith("..."));
}

TEST_F(VmSnapshotTest, ChainedRestoreOfARestoredSnapshotRuns) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  absl::StatusOr<std::unique_ptr<Vm>> second =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));
  ASSERT_TRUE(second.ok()) << second.status();
  RunAndSnapshot(**second, dir_.Join("serial2"), dir_.Join("ctl2"), dir_.Join("snap2"));
  const uint32_t second_saved = CounterIn(dir_.Join("snap2/memory"));

  absl::StatusOr<std::unique_ptr<Vm>> third =
      Vm::Restore(Options(dir_.Join("serial3"), dir_.Join("ctl3")), dir_.Join("snap2"));
  ASSERT_TRUE(third.ok()) << third.status();
  RunAndSnapshot(**third, dir_.Join("serial3"), dir_.Join("ctl3"), dir_.Join("snap3"));

  EXPECT_GT(CounterIn(dir_.Join("snap3/memory")), second_saved + (2u << 16));
}

TEST_F(VmSnapshotTest, SnapshotMemoryFileHoldsOnlyTouchedPages) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));

  struct stat st {};
  ASSERT_EQ(stat(dir_.Join("snap1/memory").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);
  // Kernel, boot structures, page tables, the counter: well under 1 MiB of 64.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20);
}

TEST_F(VmSnapshotTest, RestoreRefusesACorruptStateFile) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  std::string state = ReadAll(dir_.Join("snap1/state"));
  state[state.size() / 2] ^= 0x40;
  std::ofstream(dir_.Join("snap1/state"), std::ios::binary) << state;

  absl::StatusOr<std::unique_ptr<Vm>> restored =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));

  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(restored.status().message(), HasSubstr("checksum mismatch"));
}

TEST_F(VmSnapshotTest, RestoreRefusesAnotherVcpuCount) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  VmOptions o = Options(dir_.Join("serial2"), dir_.Join("ctl2"));
  o.restore_vcpus = 2;

  absl::StatusOr<std::unique_ptr<Vm>> restored = Vm::Restore(std::move(o), dir_.Join("snap1"));

  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(restored.status().message(), HasSubstr("snapshot has 1 vCPUs, 2 were requested"));
}

TEST_F(VmSnapshotTest, RestoreRefusesATruncatedMemoryFile) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  ASSERT_EQ(truncate(dir_.Join("snap1/memory").c_str(), 32 << 20), 0);

  absl::StatusOr<std::unique_ptr<Vm>> restored =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));

  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(restored.status().message(), HasSubstr("truncated"));
}

TEST_F(VmSnapshotTest, RestoreOfAVsockVmNeedsAHostSocketPath) {
  VmOptions o = Options(dir_.Join("serial1"), dir_.Join("ctl1"));
  o.config.vsock.path = dir_.Join("vsock1");
  absl::StatusOr<std::unique_ptr<Vm>> booted = Vm::Create(std::move(o));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));

  absl::StatusOr<std::unique_ptr<Vm>> without =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));
  VmOptions with_socket = Options(dir_.Join("serial3"), dir_.Join("ctl3"));
  with_socket.config.vsock.path = dir_.Join("vsock3");
  absl::StatusOr<std::unique_ptr<Vm>> with = Vm::Restore(std::move(with_socket), dir_.Join("snap1"));

  EXPECT_EQ(without.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(without.status().message(), HasSubstr("pass --vsock PATH"));
  EXPECT_TRUE(with.ok()) << with.status();
}

// Sockets of the snapshotted worker's connections can outlive the transport reset in the guest,
// so a restored worker's host ports continue after the ones its snapshot's worker used.
TEST_F(VmSnapshotTest, VsockHostPortsContinueFromTheSnapshotAcrossRestores) {
  constexpr uint32_t kFirst = devices::virtio::vsock::kFirstHostPort;
  VmOptions o = Options(dir_.Join("serial1"), dir_.Join("ctl1"));
  o.config.vsock.path = dir_.Join("vsock1");
  absl::StatusOr<std::unique_ptr<Vm>> booted = Vm::Create(std::move(o));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  auto NextHostPort = [](const std::string& snap) -> int64_t {
    auto state = snapshot::ReadStateFile(snap + "/state");
    EXPECT_TRUE(state.ok()) << state.status();
    if (state.ok()) {
      for (const auto& d : state->devices()) {
        if (d.has_vsock()) {
          return d.vsock().next_host_port();
        }
      }
    }
    return -1;
  };
  EXPECT_EQ(NextHostPort(dir_.Join("snap1")), kFirst);  // No connection was made.

  // Pretend the first worker used 77 ports: the restored one starts at the 78th and says so in
  // its own snapshot (no connection is made: the test guest has no vsock driver).
  auto RestoreAndSnapshotAgain = [&](const std::string& from, uint32_t saved_port,
                                     const std::string& tag) {
    auto state = snapshot::ReadStateFile(from + "/state");
    ASSERT_TRUE(state.ok()) << state.status();
    for (auto& d : *state->mutable_devices()) {
      if (d.has_vsock()) {
        d.mutable_vsock()->set_next_host_port(saved_port);
      }
    }
    ASSERT_TRUE(snapshot::WriteStateFile(from + "/state", *state).ok());
    VmOptions ro = Options(dir_.Join("serial" + tag), dir_.Join("ctl" + tag));
    ro.config.vsock.path = dir_.Join("vsock" + tag);
    absl::StatusOr<std::unique_ptr<Vm>> restored = Vm::Restore(std::move(ro), from);
    ASSERT_TRUE(restored.ok()) << restored.status();
    RunAndSnapshot(**restored, dir_.Join("serial" + tag), dir_.Join("ctl" + tag),
                   dir_.Join("snap" + tag));
  };
  RestoreAndSnapshotAgain(dir_.Join("snap1"), kFirst + 77, "2");
  EXPECT_EQ(NextHostPort(dir_.Join("snap2")), kFirst + 77);
  // A snapshot from before the field (0): the restored worker skips 2^24 ports.
  RestoreAndSnapshotAgain(dir_.Join("snap2"), 0, "3");
  EXPECT_EQ(NextHostPort(dir_.Join("snap3")), kFirst + (1u << 24));
}

TEST_F(VmSnapshotTest, ResumeWithoutPauseIsRefused) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  VmEnd end;
  std::thread runner([&] { end = (*booted)->Run(); });
  WaitForOutput(dir_.Join("serial1"), 1);

  std::vector<std::string> replies =
      Control(dir_.Join("ctl1"), {"resume", "snapshot", "bogus", "exit"});

  runner.join();
  EXPECT_EQ(replies[0], "ERR the VM is not paused");
  EXPECT_EQ(replies[1], "ERR usage: snapshot DIR");
  EXPECT_THAT(replies[2], StartsWith("ERR unknown command 'bogus'"));
  EXPECT_EQ(end.exit_code, kExitStopped);
}

TEST_F(VmSnapshotTest, TwoVcpuGuestRestoresWithItsWaitingApplicationProcessor) {
  VmOptions o = Options(dir_.Join("serial1"), dir_.Join("ctl1"));
  o.config.vcpus = 2;
  absl::StatusOr<std::unique_ptr<Vm>> booted = Vm::Create(std::move(o));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  const uint32_t saved = CounterIn(dir_.Join("snap1/memory"));
  absl::StatusOr<snapshot::v1::SnapshotState> state =
      snapshot::ReadStateFile(dir_.Join("snap1/state"));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->vcpus_size(), 2);

  absl::StatusOr<std::unique_ptr<Vm>> restored =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  RunAndSnapshot(**restored, dir_.Join("serial2"), dir_.Join("ctl2"), dir_.Join("snap2"));

  EXPECT_GT(CounterIn(dir_.Join("snap2/memory")), saved + (2u << 16));
}

// virtio-net (needs passt on the host): the snapshot records the device and its egress policy;
// a restore re-creates it under the saved policy with a fresh MAC, or under the caller's.
TEST_F(VmSnapshotTest, NetDeviceIsSavedAndRestoredWithItsPolicy) {
  auto with_net = [&](const std::string& n, const std::string& egress) {
    VmOptions o = Options(dir_.Join("serial" + n), dir_.Join("ctl" + n));
    o.config.net = {.enabled = true, .egress = egress};
    return o;
  };
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(with_net("1", "allowlist:10.0.2.2/32"));
  ASSERT_TRUE(booted.ok()) << booted.status();
  const std::string booted_stats = (*booted)->NetStatsLine();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  absl::StatusOr<snapshot::v1::SnapshotState> state =
      snapshot::ReadStateFile(dir_.Join("snap1/state"));
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->devices_size(), 1);
  ASSERT_TRUE(state->devices(0).has_net());
  EXPECT_EQ(state->devices(0).net().egress(), "allowlist:10.0.2.2/32");
  EXPECT_EQ(state->devices(0).transport().device_type(), 1u);

  // The caller's --net passt (no egress=) takes the saved policy; the MAC is a new one.
  absl::StatusOr<std::unique_ptr<Vm>> same = Vm::Restore(with_net("2", ""), dir_.Join("snap1"));
  ASSERT_TRUE(same.ok()) << same.status();
  const std::string same_stats = (*same)->NetStatsLine();
  EXPECT_THAT(same_stats, HasSubstr(" egress=allowlist:10.0.2.2/32 "));
  EXPECT_NE(same_stats.substr(0, 21), booted_stats.substr(0, 21)) << same_stats;
  // No --net at all: the same.
  absl::StatusOr<std::unique_ptr<Vm>> plain =
      Vm::Restore(Options(dir_.Join("serial3"), dir_.Join("ctl3")), dir_.Join("snap1"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT((*plain)->NetStatsLine(), HasSubstr(" egress=allowlist:10.0.2.2/32 "));
  // The caller's policy wins, and the restored guest runs on.
  absl::StatusOr<std::unique_ptr<Vm>> other =
      Vm::Restore(with_net("4", "denylist:192.0.2.0/24"), dir_.Join("snap1"));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_THAT((*other)->NetStatsLine(), HasSubstr(" egress=denylist:192.0.2.0/24 "));
  const uint32_t saved = CounterIn(dir_.Join("snap1/memory"));
  RunAndSnapshot(**other, dir_.Join("serial4"), dir_.Join("ctl4"), dir_.Join("snap2"));
  EXPECT_GT(CounterIn(dir_.Join("snap2/memory")), saved);
}

TEST_F(VmSnapshotTest, RestoreCannotAddANetDevice) {
  absl::StatusOr<std::unique_ptr<Vm>> booted =
      Vm::Create(Options(dir_.Join("serial1"), dir_.Join("ctl1")));
  ASSERT_TRUE(booted.ok()) << booted.status();
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  VmOptions o = Options(dir_.Join("serial2"), dir_.Join("ctl2"));
  o.config.net.enabled = true;
  absl::StatusOr<std::unique_ptr<Vm>> restored = Vm::Restore(std::move(o), dir_.Join("snap1"));
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(restored.status().message(), HasSubstr("no network device"));
}

TEST_F(VmSnapshotTest, BalloonIsSavedAndTheSnapshotDecidesOnRestore) {
  VmOptions o = Options(dir_.Join("serial1"), dir_.Join("ctl1"));
  o.config.balloon = true;
  absl::StatusOr<std::unique_ptr<Vm>> booted = Vm::Create(std::move(o));
  ASSERT_TRUE(booted.ok()) << booted.status();
  EXPECT_THAT((*booted)->kernel_cmdline(), HasSubstr("virtio_mmio.device=4K@0xd0000000:5"));
  RunAndSnapshot(**booted, dir_.Join("serial1"), dir_.Join("ctl1"), dir_.Join("snap1"));
  absl::StatusOr<snapshot::v1::SnapshotState> state =
      snapshot::ReadStateFile(dir_.Join("snap1/state"));
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->devices_size(), 1);
  ASSERT_TRUE(state->devices(0).has_balloon());
  EXPECT_EQ(state->devices(0).transport().device_type(), 5u);
  // Restored without --balloon: the snapshot's device comes back, and the guest runs on.
  absl::StatusOr<std::unique_ptr<Vm>> restored =
      Vm::Restore(Options(dir_.Join("serial2"), dir_.Join("ctl2")), dir_.Join("snap1"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_THAT((*restored)->BalloonStatsLine(), HasSubstr("reported_ranges=0"));
  const uint32_t saved = CounterIn(dir_.Join("snap1/memory"));
  RunAndSnapshot(**restored, dir_.Join("serial2"), dir_.Join("ctl2"), dir_.Join("snap2"));
  EXPECT_GT(CounterIn(dir_.Join("snap2/memory")), saved);

  // A snapshot without one (any 1.0/1.1 snapshot) restores without one, --balloon or not.
  absl::StatusOr<std::unique_ptr<Vm>> plain =
      Vm::Create(Options(dir_.Join("serial3"), dir_.Join("ctl3")));
  ASSERT_TRUE(plain.ok()) << plain.status();
  RunAndSnapshot(**plain, dir_.Join("serial3"), dir_.Join("ctl3"), dir_.Join("snap3"));
  VmOptions want = Options(dir_.Join("serial4"), dir_.Join("ctl4"));
  want.config.balloon = true;
  absl::StatusOr<std::unique_ptr<Vm>> none = Vm::Restore(std::move(want), dir_.Join("snap3"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ((*none)->BalloonStatsLine(), "");
}

}  // namespace
}  // namespace supermachine::vmm
