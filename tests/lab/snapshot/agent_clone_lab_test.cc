// File: agent_clone_lab_test.cc
// Snapshot and restore of a guest running the real guest agent (issue #7's lab tests); runs
// inside the KVM lab (tests/lab/run). One guest boots with a workload that counts in memory
// and serves TCP (busybox nc), plus a read-write data disk; it is snapshotted once and every
// test restores clones of that snapshot, each with its own copy of the data disk (a reflink
// or copy_file_range copy, as the pool will make them), and tells each clone's agent it was
// restored (fresh entropy, wall clock, machine-id, generation), as the daemon will.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lab/agent/agent_vm.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr uint32_t kMemMib = 256;
constexpr uint32_t kListenPort = 7000;
constexpr uint64_t kDataDiskBytes = 1 << 20;
constexpr char kAgentVersion[] = "lab-agent-1";
constexpr int kManyClones = 20;

absl::Time In(absl::Duration d) { return absl::Now() + d; }

// The guest agent to boot: $SM_GUEST_AGENT (e.g. one built from another tree) or this build's.
std::string AgentBin() {
  const char* env = getenv("SM_GUEST_AGENT");
  return env != nullptr && *env != '\0' ? env : SM_GUEST_AGENT_BIN;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 32 bytes from the host's CSPRNG: what the daemon sends each clone.
std::string Entropy() {
  std::string out(32, '\0');
  base::UniqueFd fd(open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(read(fd.get(), out.data(), out.size()), 32);
  return out;
}

// A per-clone copy of `src`: a reflink where the file system shares extents (XFS, btrfs),
// else copy_file_range (in-kernel copy, no user-space buffer). Never a user-space cp.
absl::Status CloneFile(const std::string& src, const std::string& dst) {
  base::UniqueFd in(open(src.c_str(), O_RDONLY | O_CLOEXEC));
  base::UniqueFd out(open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!in.valid() || !out.valid()) {
    return absl::InternalError(absl::StrCat("open ", src, " / ", dst, ": ", strerror(errno)));
  }
  if (ioctl(out.get(), FICLONE, in.get()) == 0) {
    return absl::OkStatus();
  }
  struct stat st {};
  fstat(in.get(), &st);
  off_t left = st.st_size;
  while (left > 0) {
    const ssize_t n = copy_file_range(in.get(), nullptr, out.get(), nullptr,
                                      static_cast<size_t>(left), 0);
    if (n <= 0) {
      return absl::InternalError(absl::StrCat("copy_file_range ", src, ": ", strerror(errno)));
    }
    left -= n;
  }
  return absl::OkStatus();
}

// Private (not shared with another process) resident bytes of `pid`, from smaps_rollup.
struct Rss {
  uint64_t private_bytes = 0;  // Private_Clean + Private_Dirty
  uint64_t pss_bytes = 0;
};
Rss ReadRss(pid_t pid) {
  Rss r;
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (!(ls >> key >> kb)) {
      continue;
    }
    if (key == "Private_Clean:" || key == "Private_Dirty:") {
      r.private_bytes += kb << 10;
    } else if (key == "Pss:") {
      r.pss_bytes = kb << 10;
    }
  }
  return r;
}

// The workload: a counter in memory (a shell variable, mirrored to /run/counter by rename so
// the host never reads a half-written file) and a persistent TCP echo server on kListenPort.
const std::vector<std::string>& Workload() {
  static const std::vector<std::string> argv = {
      "/bin/sh", "-c",
      absl::StrCat("/bin/busybox nc -ll -p ", kListenPort,
                   " -e /bin/cat & i=0; while :; do i=$((i+1)); echo $i > /run/counter.new; "
                   "/bin/busybox mv /run/counter.new /run/counter; sleep 0.2; done")};
  return argv;
}

struct Shared {
  std::string work_dir;
  std::string snap;
  std::string data_disk;
  std::string kernel;
  long counter_before_snapshot = 0;
  std::string error;
};
Shared* shared = nullptr;

class AgentCloneLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared = new Shared();
    Shared& s = *shared;
    s.work_dir = absl::StrCat(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", "/sm-clone-lab-",
                              getpid());
    fs::create_directories(s.work_dir);
    s.snap = s.work_dir + "/snap";
    s.data_disk = s.work_dir + "/data.img";
    const std::string kernel_dir = lab::KernelDir(SM_SOURCE_DIR);
    if (kernel_dir.empty()) {
      s.error = "guest kernel not built: run kernel/build.sh or set SM_KERNEL_DIR";
      return;
    }
    if (!fs::exists("/dev/kvm")) {
      s.error = "no /dev/kvm: this test must run via tests/lab/run";
      return;
    }
    s.kernel = kernel_dir + "/vmlinux";
    {
      std::ofstream(s.data_disk).close();
      fs::resize_file(s.data_disk, kDataDiskBytes);
    }
    lab::AgentVmOptions o = Options("origin");
    o.kernel = s.kernel;
    o.workload_argv = Workload();
    o.extra_args = {"--disk", s.data_disk + ",rw,id=data", "--agent-version", kAgentVersion};
    auto vm = lab::AgentVm::Boot(o);
    if (!vm.ok()) {
      s.error = "boot: " + vm.status().ToString();
      return;
    }
    // Let the counter run and the listener come up before the snapshot.
    const absl::Time deadline = In(absl::Seconds(120));
    while (absl::Now() < deadline) {
      auto c = (*vm)->client().ReadFile("/run/counter", 64, In(absl::Seconds(30)));
      long n = 0;
      if (c.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*c), &n) && n >= 3 &&
          (*vm)->client().Connect(kListenPort, In(absl::Seconds(30))).ok()) {
        s.counter_before_snapshot = n;
        break;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (s.counter_before_snapshot == 0) {
      s.error = "the workload did not start counting and listening\n" + (*vm)->Diagnostics();
      return;
    }
    if (absl::Status st = (*vm)->Snapshot(s.snap); !st.ok()) {
      s.error = "snapshot: " + st.ToString() + "\n" + (*vm)->Diagnostics();
      return;
    }
    // The origin is not needed any more; stopping it leaves the CPUs to the clones.
    (void)(*vm)->Shutdown(absl::Seconds(60));
  }

  static void TearDownTestSuite() {
    fs::remove_all(shared->work_dir);
    delete shared;
    shared = nullptr;
  }

  void SetUp() override { ASSERT_EQ(shared->error, "") << "no snapshot to restore"; }

  static lab::AgentVmOptions Options(const std::string& name) {
    return {.work_dir = shared->work_dir,
            .name = name,
            .worker_bin = SM_WORKER_BIN,
            .agent_bin = AgentBin(),
            .vcpus = 1,
            .mem_mib = kMemMib,
            .boot_timeout = absl::Seconds(600)};
  }

  // Restores clone `name` from `snap` with its own copy of the data disk; returns the copy's
  // path in *disk.
  static absl::StatusOr<std::unique_ptr<lab::AgentVm>> Restore(const std::string& name,
                                                                const std::string& snap,
                                                                std::string* disk) {
    *disk = absl::StrCat(shared->work_dir, "/", name, ".data.img");
    if (absl::Status st = CloneFile(shared->data_disk, *disk); !st.ok()) {
      return st;
    }
    lab::AgentVmOptions o = Options(name);
    // The delta and busybox layers are read-only: the clones share them.
    o.extra_args = {"--disk", shared->work_dir + "/delta.sqfs,ro,id=delta",
                    "--disk", shared->work_dir + "/busybox.sqfs,ro,id=busybox",
                    "--disk", *disk + ",rw,id=data",
                    "--agent-version", kAgentVersion};
    return lab::AgentVm::Restore(o, snap);
  }

  static std::string Run(const lab::AgentVm& vm, std::vector<std::string> argv) {
    auto r = vm.client().RunCommand({.argv = std::move(argv)}, "", In(absl::Seconds(180)));
    EXPECT_TRUE(r.ok()) << r.status() << vm.Diagnostics();
    if (!r.ok()) {
      return "";
    }
    EXPECT_EQ(r->exit.code, 0) << r->stderr_data;
    return r->stdout_data;
  }

  static long Counter(const lab::AgentVm& vm) {
    auto c = vm.client().ReadFile("/run/counter", 64, In(absl::Seconds(60)));
    long n = -1;
    EXPECT_TRUE(c.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*c), &n))
        << c.status() << " '" << (c.ok() ? *c : "") << "'";
    return n;
  }

  static std::string MachineId(int i) { return absl::StrFormat("%032x", 0xc10e0000 + i); }
};

// Writes `text` at offset 0 of the guest's data disk (found by its virtio serial "data").
std::vector<std::string> WriteDataDisk(const std::string& text) {
  return {"/bin/sh", "-c",
          absl::StrCat("for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = data ] && "
                       "printf '%s' '", text, "' | dd of=/dev/${d##*/} conv=fsync 2>/dev/null "
                       "&& exit 0; done; echo no data disk >&2; exit 1")};
}

TEST_F(AgentCloneLab, TwoClonesGetFreshEntropyClockIdentityAndGenerationAndKeepRunning) {
  std::vector<std::unique_ptr<lab::AgentVm>> clones;
  std::vector<std::string> disks(2);
  for (int i = 0; i < 2; ++i) {
    auto vm = Restore(absl::StrCat("pair", i), shared->snap, &disks[i]);
    ASSERT_TRUE(vm.ok()) << vm.status();
    auto gen = (*vm)->client().Restored({.entropy = Entropy(),
                                         .wall_clock = absl::Now(),
                                         .vm_id = absl::StrCat("pair", i),
                                         .machine_id = MachineId(i),
                                         .generation = static_cast<uint64_t>(10 + i)},
                                        In(absl::Seconds(120)));
    ASSERT_TRUE(gen.ok()) << gen.status() << (*vm)->Diagnostics();
    EXPECT_EQ(*gen, static_cast<uint64_t>(10 + i));
    clones.push_back(std::move(*vm));
  }
  std::set<std::string> randoms;
  for (int i = 0; i < 2; ++i) {
    const lab::AgentVm& vm = *clones[i];
    SCOPED_TRACE(absl::StrCat("clone ", i));
    randoms.insert(Run(vm, {"/bin/sh", "-c", "head -c 64 /dev/urandom | sha256sum"}));
    EXPECT_EQ(absl::StripAsciiWhitespace(Run(vm, {"cat", "/etc/machine-id"})), MachineId(i));
    EXPECT_EQ(absl::StripAsciiWhitespace(Run(vm, {"cat", "/run/supermachine/generation"})),
              absl::StrCat(10 + i));
    // The guest clock is the host's (to a few seconds), though the snapshot sat on disk.
    long guest_now = 0;
    const int64_t host_before = absl::ToUnixSeconds(absl::Now());
    ASSERT_TRUE(absl::SimpleAtoi(
        absl::StripAsciiWhitespace(Run(vm, {"/bin/busybox", "date", "+%s"})), &guest_now));
    const int64_t host_after = absl::ToUnixSeconds(absl::Now());
    EXPECT_GE(guest_now, host_before - 2);
    EXPECT_LE(guest_now, host_after + 2);

    // The counter goes on from where the snapshot caught it (never restarts) and keeps going.
    const long first = Counter(vm);
    EXPECT_GE(first, shared->counter_before_snapshot);
    absl::SleepFor(absl::Seconds(1));
    EXPECT_GT(Counter(vm), first);

    // The listener that was open in the snapshot accepts a new connection and echoes.
    auto conn = vm.client().Connect(kListenPort, In(absl::Seconds(60)));
    ASSERT_TRUE(conn.ok()) << conn.status();
    const std::string hello = absl::StrCat("hello clone ", i, "\n");
    ASSERT_EQ(write(conn->get(), hello.data(), hello.size()),
              static_cast<ssize_t>(hello.size()));
    std::string echoed;
    char buf[64];
    while (echoed.size() < hello.size()) {
      const ssize_t n = read(conn->get(), buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      echoed.append(buf, static_cast<size_t>(n));
    }
    EXPECT_EQ(echoed, hello);
  }
  EXPECT_EQ(randoms.size(), 2u) << "two clones produced the same /dev/urandom output";
}

TEST_F(AgentCloneLab, TwentyClonesAtOnceShareMemoryAndKeepTheirOwnDisks) {
  std::vector<std::unique_ptr<lab::AgentVm>> clones(kManyClones);
  std::vector<std::string> disks(kManyClones);
  // All workers start before any is waited for: AgentVm::Restore waits for its agent, so
  // start them from threads.
  std::vector<std::thread> starters;
  std::vector<absl::Status> errors(kManyClones);
  const absl::Time start = absl::Now();
  for (int i = 0; i < kManyClones; ++i) {
    starters.emplace_back([i, &clones, &disks, &errors] {
      auto vm = Restore(absl::StrCat("many", i), shared->snap, &disks[i]);
      if (!vm.ok()) {
        errors[i] = vm.status();
        return;
      }
      auto gen = (*vm)->client().Restored({.entropy = Entropy(),
                                           .wall_clock = absl::Now(),
                                           .vm_id = absl::StrCat("many", i),
                                           .machine_id = MachineId(100 + i),
                                           .generation = 1},
                                          In(absl::Seconds(300)));
      errors[i] = gen.status();
      clones[i] = std::move(*vm);
    });
  }
  for (auto& t : starters) {
    t.join();
  }
  std::cerr << "[ info ] " << kManyClones << " clones restored and told in "
            << absl::FormatDuration(absl::Now() - start) << "\n";
  for (int i = 0; i < kManyClones; ++i) {
    ASSERT_TRUE(errors[i].ok()) << "clone " << i << ": " << errors[i]
                                << (clones[i] ? clones[i]->Diagnostics() : "");
  }
  // Every clone answers and writes its own name to its own disk.
  std::set<std::string> randoms;
  for (int i = 0; i < kManyClones; ++i) {
    SCOPED_TRACE(absl::StrCat("clone ", i));
    const auto ping = clones[i]->client().Ping(In(absl::Seconds(60)));
    ASSERT_TRUE(ping.ok()) << ping.status() << clones[i]->Diagnostics();
    Run(*clones[i], WriteDataDisk(absl::StrCat("clone-", i, ";")));
    randoms.insert(Run(*clones[i], {"/bin/sh", "-c", "head -c 64 /dev/urandom | sha256sum"}));
  }
  EXPECT_EQ(randoms.size(), static_cast<size_t>(kManyClones)) << "clones share RNG output";
  for (int i = 0; i < kManyClones; ++i) {
    const std::string head = Slurp(disks[i]).substr(0, 16);
    EXPECT_EQ(head.substr(0, head.find(';') + 1), absl::StrCat("clone-", i, ";"))
        << "clone " << i << "'s disk copy";
  }
  // The original disk saw none of it.
  EXPECT_EQ(Slurp(shared->data_disk), std::string(kDataDiskBytes, '\0'));

  // Memory: pages nobody wrote stay shared through the snapshot file's page cache.
  uint64_t private_sum = 0;
  uint64_t pss_sum = 0;
  for (int i = 0; i < kManyClones; ++i) {
    const Rss r = ReadRss(clones[i]->worker_pid());
    private_sum += r.private_bytes;
    pss_sum += r.pss_bytes;
  }
  const uint64_t guest_ram = static_cast<uint64_t>(kMemMib) << 20;
  std::cerr << absl::StrFormat(
      "[ info ] %d clones of a %u MiB guest: private RSS %.1f MiB total (%.2f MiB each), "
      "PSS %.1f MiB total\n",
      kManyClones, kMemMib, private_sum / 1048576.0, private_sum / 1048576.0 / kManyClones,
      pss_sum / 1048576.0);
  // "Far below 20× guest RAM": below 1× guest RAM for all twenty together.
  EXPECT_LT(private_sum, guest_ram);
  for (auto& vm : clones) {
    (void)vm->Shutdown(absl::Seconds(60));
  }
}

TEST_F(AgentCloneLab, ChainedSnapshotOfARestoredCloneRestoresAndContinues) {
  std::string disk1;
  std::string disk2;
  auto first = Restore("chain1", shared->snap, &disk1);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)
                  ->client()
                  .Restored({.entropy = Entropy(), .wall_clock = absl::Now(), .vm_id = "chain1",
                             .machine_id = MachineId(200), .generation = 1},
                            In(absl::Seconds(120)))
                  .ok());
  Run(**first, WriteDataDisk("chain-one;"));
  const long before = Counter(**first);
  const std::string snap2 = shared->work_dir + "/snap2";
  ASSERT_TRUE((*first)->Snapshot(snap2).ok()) << (*first)->Diagnostics();
  (void)(*first)->Shutdown(absl::Seconds(60));

  // The second generation starts from the first clone's disk as it was at its snapshot.
  lab::AgentVmOptions o = Options("chain2");
  disk2 = shared->work_dir + "/chain2.data.img";
  ASSERT_TRUE(CloneFile(disk1, disk2).ok());
  o.extra_args = {"--disk", shared->work_dir + "/delta.sqfs,ro,id=delta",
                  "--disk", shared->work_dir + "/busybox.sqfs,ro,id=busybox",
                  "--disk", disk2 + ",rw,id=data"};
  auto second = lab::AgentVm::Restore(o, snap2);
  ASSERT_TRUE(second.ok()) << second.status();
  auto gen = (*second)->client().Restored({.entropy = Entropy(), .wall_clock = absl::Now(),
                                           .vm_id = "chain2", .machine_id = MachineId(201),
                                           .generation = 2},
                                          In(absl::Seconds(120)));
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_GE(Counter(**second), before);
  EXPECT_EQ(absl::StripAsciiWhitespace(Run(**second, {"cat", "/etc/machine-id"})),
            MachineId(201));
  EXPECT_EQ(Run(**second, {"/bin/sh", "-c",
                           "for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = data ] && "
                           "head -c 10 /dev/${d##*/}; done"}),
            "chain-one;");
  (void)(*second)->Shutdown(absl::Seconds(60));
}

// Broken snapshots of the real guest: each refused with exit 2 and a message naming the
// problem, before any guest runs. The broken copies reuse the real files where they can.
class BrokenSnapshot : public AgentCloneLab {
 protected:
  struct Result {
    std::string exit;
    std::string err;
  };
  static Result RunWorker(const std::vector<std::string>& extra) {
    const std::string err_path = shared->work_dir + "/broken.err";
    base::UniqueFd err(open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    std::vector<std::string> argv = {SM_WORKER_BIN, "--serial", "none", "--vsock",
                                     shared->work_dir + "/broken.sock"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = base::ChildProcess::Spawn({.argv = argv, .stderr_fd = err.get()});
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) {
      return {};
    }
    auto st = child->WaitFor(absl::Seconds(120));
    if (!st.ok()) {
      (void)child->Terminate(absl::Seconds(5));
      return {"still running", Slurp(err_path)};
    }
    return {st->ToString(), Slurp(err_path)};
  }
  // A snapshot dir whose state is `state` and whose memory is the real one (a symlink).
  static std::string Variant(const std::string& name, const std::string& state) {
    const std::string dir = shared->work_dir + "/" + name;
    fs::create_directories(dir);
    std::ofstream(dir + "/state", std::ios::binary) << state;
    fs::remove(dir + "/memory");
    fs::create_symlink(shared->snap + "/memory", dir + "/memory");
    return dir;
  }
};

TEST_F(BrokenSnapshot, CorruptStateFileIsRefusedAsCorrupt) {
  std::string state = Slurp(shared->snap + "/state");
  ASSERT_GT(state.size(), 200u);
  state[state.size() / 2] ^= 0x40;
  Result r = RunWorker({"--restore", Variant("corrupt", state)});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  EXPECT_THAT(r.err, HasSubstr("checksum mismatch"));
}

TEST_F(BrokenSnapshot, TruncatedStateFileIsRefused) {
  const std::string state = Slurp(shared->snap + "/state");
  Result r = RunWorker({"--restore", Variant("short", state.substr(0, state.size() - 100))});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  EXPECT_THAT(r.err, HasSubstr("truncated"));
}

TEST_F(BrokenSnapshot, OtherFormatVersionIsRefusedNamingBoth) {
  std::string state = Slurp(shared->snap + "/state");
  state[8] = 2;  // Format major, little-endian at offset 8 (docs/snapshot.md).
  Result r = RunWorker({"--restore", Variant("v2", state)});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  // The minor version is the writer's (it moves with additive fields); the major is ours.
  EXPECT_THAT(r.err, HasSubstr("snapshot format 2."));
  EXPECT_THAT(r.err, HasSubstr("this worker reads 1."));
}

TEST_F(BrokenSnapshot, TruncatedMemoryFileIsRefused) {
  const std::string dir = shared->work_dir + "/shortmem";
  fs::create_directories(dir);
  fs::copy_file(shared->snap + "/state", dir + "/state", fs::copy_options::overwrite_existing);
  std::ofstream(dir + "/memory").close();
  fs::resize_file(dir + "/memory", fs::file_size(shared->snap + "/memory") / 2);
  Result r = RunWorker({"--restore", dir});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  EXPECT_THAT(r.err, HasSubstr("truncated"));
}

TEST_F(BrokenSnapshot, OtherVcpuCountIsRefused) {
  Result r = RunWorker({"--restore", shared->snap, "--vcpus", "2"});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  EXPECT_THAT(r.err, HasSubstr("snapshot has 1 vCPUs, 2 were requested"));
}

TEST_F(BrokenSnapshot, OtherAgentVersionIsRefused) {
  Result r = RunWorker({"--restore", shared->snap, "--agent-version", "lab-agent-2"});
  EXPECT_EQ(r.exit, "exited 2") << r.err;
  EXPECT_THAT(r.err, HasSubstr("agent version lab-agent-1, lab-agent-2 was asked for"));
}

}  // namespace
}  // namespace supermachine::agent
