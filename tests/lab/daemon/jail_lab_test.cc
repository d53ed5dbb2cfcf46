// File: jail_lab_test.cc
// The worker sandbox (docs/security.md "Worker sandbox") around a real guest: supermachined
// with `worker_jail`, a `worker_uid_range` and a cgroup parent restores two VMs of a snapshot of
// a busybox guest, and they work as unjailed ones do (exec, a forwarded port to the httpd)
// while each worker runs as PID 1 of its own PID namespace, in its own mount/net/IPC/UTS
// namespaces, as its own uid from the range (one uid per VM) with no capabilities,
// no_new_privs, the seccomp filter, and inside its own cgroup with the documented limits.
// Release ends each worker and its keeper and removes its cgroup. One boot (the snapshot),
// two restores.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/lab/daemon/web_snapshot.h"
#include "tests/support/process_gone.h"

namespace supermachine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test_support::ReadWholeFile;
using test_support::WaitProcessGone;

constexpr char kSnapshot[] = "web";
constexpr uint32_t kFirstUid = 64120;
constexpr uint32_t kUidCount = 4;
constexpr uint32_t kMemMib = 256;
// The cgroup parent the daemon gets: made here, in the lab's own cgroup2 mount.
constexpr char kCgroupParent[] = "/sys/fs/cgroup/supermachine-lab";

// "Key:\tvalue" lines of /proc/PID/status.
std::map<std::string, std::string> Status(int pid) {
  std::map<std::string, std::string> out;
  for (absl::string_view line :
       absl::StrSplit(ReadWholeFile(absl::StrCat("/proc/", pid, "/status")), '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    out[std::string(kv.first)] = std::string(absl::StripAsciiWhitespace(kv.second));
  }
  return out;
}

std::string NsOf(const std::string& pid, const std::string& ns) {
  std::error_code ec;
  return fs::read_symlink(absl::StrCat("/proc/", pid, "/ns/", ns), ec).string();
}

// Enables the memory, cpu and pids controllers for the children of `dir`'s cgroup.
void EnableControllers(const std::string& dir) {
  std::ofstream(dir + "/cgroup.subtree_control") << "+memory +cpu +pids";
}

TEST(JailLab, JailedWorkersWithTheirOwnUidsAndCgroupsServeExecAndPortsAndEndCleanly) {
  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty()) << "guest kernel not built: run kernel/build.sh";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: run via tests/lab/run";
  ASSERT_EQ(::geteuid(), 0u) << "the jail needs root (the lab runs tests as root)";
  ASSERT_TRUE(fs::exists("/sys/fs/cgroup/cgroup.controllers")) << "no cgroup2 at /sys/fs/cgroup";
  test_support::ScratchDir scratch;

  absl::StatusOr<std::string> snap_dir = lab::MakeWebSnapshot({.kernel = kernel_dir + "/vmlinux",
                                                               .worker_bin = SM_WORKER_BIN,
                                                               .agent_bin = SM_GUEST_AGENT_BIN,
                                                               .work_dir = scratch.File("guest"),
                                                               .state_dir = scratch.File("state"),
                                                               .name = kSnapshot,
                                                               .mem_mib = kMemMib});
  ASSERT_TRUE(snap_dir.ok()) << snap_dir.status();

  EnableControllers("/sys/fs/cgroup");
  std::error_code ec;
  fs::create_directories(kCgroupParent, ec);
  ASSERT_FALSE(ec) << kCgroupParent << ": " << ec.message();
  EnableControllers(kCgroupParent);
  ASSERT_THAT(ReadWholeFile(absl::StrCat(kCgroupParent, "/cgroup.subtree_control")),
              HasSubstr("memory"));

  const std::string config = scratch.File("config.json");
  std::ofstream(config) << absl::StrCat(
      R"({"worker_jail": true, "worker_uid_range": {"first": )", kFirstUid, R"(, "count": )",
      kUidCount, R"(},)",
      R"( "worker_cgroup_parent": ")", kCgroupParent,
      R"(", "default_pool": {"min": 0, "max": 2, "acquire_timeout_s": 300}})");
  auto daemon = test_support::DaemonProcess::Start(
      scratch.path(), {"--config", config, "--worker-binary", SM_WORKER_BIN});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = v1::Supermachine::NewStub(
      grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials()));

  auto acquire = [&](bool with_port) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    v1::AcquireRequest req;
    req.set_snapshot(kSnapshot);
    if (with_port) {
      req.add_ports()->set_guest_port(lab::kWebGuestPort);
    }
    v1::AcquireResponse resp;
    grpc::Status st = stub->Acquire(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << daemon->Stderr();
    return resp.vm();
  };
  const v1::VM vm = acquire(/*with_port=*/true);
  ASSERT_FALSE(vm.id().empty());
  ASSERT_EQ(vm.ports_size(), 1);
  const v1::VM other = acquire(/*with_port=*/false);
  ASSERT_FALSE(other.id().empty());

  // The VMs work as unjailed ones: exec, and the forwarded port reaches the httpd.
  for (const v1::VM* v : {&vm, &other}) {
    lab::ExecOut hi = lab::ExecIn(*stub, v->id(), {"echo", "hi-from-jail"});
    EXPECT_EQ(hi.code, 0) << hi.err;
    EXPECT_EQ(hi.out, "hi-from-jail\n");
  }
  absl::StatusOr<std::string> page =
      test_support::HttpGet(static_cast<int>(vm.ports(0).host_port()), "/index.html");
  ASSERT_TRUE(page.ok()) << page.status() << "\n" << daemon->Stderr();
  EXPECT_THAT(*page, HasSubstr("hello-from-guest"));

  struct Jailed {
    int keeper = 0;
    int worker = 0;
    uint32_t uid = 0;
    std::string cgroup;
  };
  // The daemon tracks the keeper; the worker is its only child, PID 1 of a new PID namespace.
  auto check = [&](const v1::VM& v) {
    Jailed j{.keeper = v.worker_pid(), .cgroup = absl::StrCat(kCgroupParent, "/sm-", v.id())};
    SCOPED_TRACE(absl::StrCat("VM ", v.id(), " keeper ", j.keeper));
    EXPECT_GT(j.keeper, 0);
    const std::string children =
        ReadWholeFile(absl::StrCat("/proc/", j.keeper, "/task/", j.keeper, "/children"));
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(children), &j.worker))
        << "the keeper has not exactly one child: '" << children << "'";
    std::map<std::string, std::string> st = Status(j.worker);
    EXPECT_THAT(st["NSpid"], ::testing::EndsWith("\t1")) << "PID 1 of its namespace";
    std::vector<std::string> uids = absl::StrSplit(st["Uid"], '\t');
    EXPECT_TRUE(uids.size() == 4 && absl::SimpleAtoi(uids[0], &j.uid)) << st["Uid"];
    EXPECT_GE(j.uid, kFirstUid);
    EXPECT_LT(j.uid, kFirstUid + kUidCount);
    EXPECT_EQ(st["Uid"], absl::StrCat(j.uid, "\t", j.uid, "\t", j.uid, "\t", j.uid));
    EXPECT_EQ(st["Gid"], absl::StrCat(j.uid, "\t", j.uid, "\t", j.uid, "\t", j.uid))
        << "gid: the uid's number";
    EXPECT_EQ(st["Groups"], "") << "no supplementary groups kept";
    EXPECT_EQ(st["CapEff"], "0000000000000000");
    EXPECT_EQ(st["CapPrm"], "0000000000000000");
    EXPECT_EQ(st["CapBnd"], "0000000000000000");
    EXPECT_EQ(st["NoNewPrivs"], "1");
    EXPECT_EQ(st["Seccomp"], "2") << "the seccomp filter is installed";
    for (const char* ns : {"mnt", "pid", "net", "ipc", "uts"}) {
      EXPECT_NE(NsOf(absl::StrCat(j.worker), ns), NsOf("self", ns)) << ns << " namespace shared";
    }
    // Its root is the jail's tmpfs, not the host's. (The VM's own directory is bind-mounted at
    // its host path, so the scratch dir's path exists there; its siblings must not.)
    const std::string root = absl::StrCat("/proc/", j.worker, "/root");
    for (const std::string& host_path : {std::string("/etc/passwd"), std::string("/usr/bin"),
                                         scratch.File("guest"), scratch.File("config.json")}) {
      EXPECT_TRUE(fs::exists(host_path)) << host_path;
      EXPECT_FALSE(fs::exists(root + host_path)) << "the jailed worker sees " << host_path;
    }
    // Its cgroup, with the documented limits.
    EXPECT_THAT(ReadWholeFile(absl::StrCat("/proc/", j.worker, "/cgroup")),
                HasSubstr(absl::StrCat("/supermachine-lab/sm-", v.id())));
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadWholeFile(j.cgroup + "/memory.max")),
              absl::StrCat((uint64_t{kMemMib} + 128) << 20));
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadWholeFile(j.cgroup + "/memory.swap.max")), "0");
    return j;
  };
  const Jailed a = check(vm);
  const Jailed b = check(other);
  EXPECT_NE(a.uid, b.uid) << "one uid per VM";

  // Release: worker, keeper and cgroup go.
  for (const auto& [v, j] : {std::pair{&vm, a}, std::pair{&other, b}}) {
    grpc::ClientContext rctx;
    rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
    v1::ReleaseRequest rreq;
    rreq.set_vm_id(v->id());
    v1::ReleaseResponse rresp;
    grpc::Status rst = stub->Release(&rctx, rreq, &rresp);
    ASSERT_TRUE(rst.ok()) << rst.error_message();
    EXPECT_TRUE(WaitProcessGone(j.worker, absl::Seconds(30)))
        << "worker " << j.worker << " outlived release";
    EXPECT_TRUE(WaitProcessGone(j.keeper, absl::Seconds(30)))
        << "keeper " << j.keeper << " outlived release";
    EXPECT_FALSE(fs::exists(j.cgroup)) << j.cgroup << " left behind";
  }

  (void)daemon->process().Signal(SIGTERM);
  (void)daemon->process().WaitFor(absl::Seconds(60));
  fs::remove(kCgroupParent, ec);
}

}  // namespace
}  // namespace supermachine
