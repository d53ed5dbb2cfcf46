// File: daemon_lab_test.cc
// supermachined end to end on a real guest: a busybox guest with the agent and busybox httpd
// is booted and snapshotted directly (worker control socket), the snapshot is registered in
// the store, and the daemon (pool min 1) hands out clones of it. Checks: `smctl run -d`
// acquires and forwards a host port to the guest's httpd; Exec over gRPC; two clones have
// different machine-ids and /dev/urandom bytes and the host's wall clock; `smctl rm` ends the
// worker and the VM row (cause released). One sequence: every restore costs seconds here.
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/config/worker_sandbox.h"
#include "daemon/store/store.h"
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
using lab::ExecIn;
using lab::ExecOut;
using ::testing::HasSubstr;
using test_support::CommandResult;
using test_support::ProcessGone;

constexpr char kSnapshot[] = "web";

std::string Trim(const std::string& s) {
  return std::string(absl::StripAsciiWhitespace(s));
}

// The busybox httpd guest booted and snapshotted in `scratch`, registered in the store of
// <scratch>/state as a bake would.
absl::StatusOr<std::string> WebSnapshotIn(const std::string& kernel_dir,
                                          const test_support::ScratchDir& scratch) {
  return lab::MakeWebSnapshot({.kernel = kernel_dir + "/vmlinux",
                               .worker_bin = SM_WORKER_BIN,
                               .agent_bin = SM_GUEST_AGENT_BIN,
                               .work_dir = scratch.File("guest"),
                               .state_dir = scratch.File("state"),
                               .name = kSnapshot,
                               .mem_mib = 256});
}

TEST(DaemonLab, PoolAcquireExecClonesPortForwardRelease) {
  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty()) << "guest kernel not built: run kernel/build.sh";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: run via tests/lab/run";
  test_support::ScratchDir scratch;

  // 1. The snapshot (boot, wait for the agent and the httpd, snapshot), registered in the
  //    store as a bake would.
  absl::StatusOr<std::string> snap_dir = WebSnapshotIn(kernel_dir, scratch);
  ASSERT_TRUE(snap_dir.ok()) << snap_dir.status();
  const absl::Time snapshot_taken = absl::Now();

  // Let the guest's clock fall behind if nobody set it: the clones must show the host's time.
  absl::SleepFor(absl::Seconds(20) - (absl::Now() - snapshot_taken));

  // 3. The daemon with a pool of 1 for it.
  const std::string config = scratch.File("config.json");
  std::ofstream(config) << R"({"pools": {"web": {"min": 1, "max": 3, "acquire_timeout_s": 240}}})";
  auto daemon = test_support::DaemonProcess::Start(
      scratch.path(), {"--config", config, "--worker-binary", SM_WORKER_BIN});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  auto stub = v1::Supermachine::NewStub(
      grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials()));
  auto smctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {SM_SMCTL_PATH, "--socket", daemon->socket()});
    auto r = test_support::RunCommand(args, scratch.path());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : CommandResult{};
  };

  // 4. smctl run -d with a forwarded port.
  CommandResult run = smctl({"run", "-d", "-p", "0:8000", "--name", "one", kSnapshot});
  ASSERT_EQ(run.exit.code, 0) << run.err << daemon->Stderr();
  const std::string id1 = Trim(run.out);
  ASSERT_FALSE(id1.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(run.err, m, std::regex(R"(port: 127\.0\.0\.1:(\d+) -> guest 8000)")))
      << run.err;
  const int host_port = std::stoi(m[1]);

  // 5. Exec over gRPC.
  ExecOut hi = ExecIn(*stub, id1, {"echo", "hi"});
  EXPECT_EQ(hi.code, 0) << hi.err;
  EXPECT_EQ(hi.out, "hi\n");

  // 6. The port forward reaches the guest's httpd.
  auto page = test_support::HttpGet(host_port, "/index.html");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(*page, HasSubstr("hello-from-guest"));

  // 7. A second clone: its own identity and entropy, the host's clock.
  grpc::ClientContext actx;
  v1::AcquireRequest areq;
  areq.set_snapshot(kSnapshot);
  v1::AcquireResponse aresp;
  grpc::Status ast = stub->Acquire(&actx, areq, &aresp);
  ASSERT_TRUE(ast.ok()) << ast.error_message() << daemon->Stderr();
  const std::string id2 = aresp.vm().id();
  ASSERT_NE(id1, id2);
  ExecOut mid1 = ExecIn(*stub, id1, {"cat", "/etc/machine-id"});
  ExecOut mid2 = ExecIn(*stub, id2, {"cat", "/etc/machine-id"});
  EXPECT_EQ(Trim(mid1.out).size(), 32u) << mid1.out << mid1.err;
  EXPECT_NE(mid1.out, mid2.out);
  const std::vector<std::string> rnd = {"/bin/sh", "-c", "head -c 32 /dev/urandom | busybox od -An -tx1"};
  ExecOut r1 = ExecIn(*stub, id1, rnd);
  ExecOut r2 = ExecIn(*stub, id2, rnd);
  EXPECT_EQ(r1.code, 0) << r1.err;
  EXPECT_FALSE(Trim(r1.out).empty());
  EXPECT_NE(r1.out, r2.out);
  for (const std::string& id : {id1, id2}) {
    const int64_t before = absl::ToUnixSeconds(absl::Now());
    ExecOut date = ExecIn(*stub, id, {"busybox", "date", "+%s"});
    const int64_t after = absl::ToUnixSeconds(absl::Now());
    int64_t guest = 0;
    ASSERT_TRUE(absl::SimpleAtoi(Trim(date.out), &guest)) << date.out << date.err;
    EXPECT_GE(guest, before - 3) << "guest clock behind the host's (not set on restore?)";
    EXPECT_LE(guest, after + 3);
  }

  // 8. Release: the worker is gone and the row ended as released.
  const int pid1 = aresp.vm().worker_pid();  // id2's; id1's comes from ListVMs
  int pid_of_1 = 0;
  {
    grpc::ClientContext ctx;
    v1::ListVMsResponse vms;
    ASSERT_TRUE(stub->ListVMs(&ctx, v1::ListVMsRequest(), &vms).ok());
    for (const auto& v : vms.vms()) {
      if (v.id() == id1) {
        pid_of_1 = v.worker_pid();
        EXPECT_EQ(v.name(), "one");
      }
    }
  }
  ASSERT_GT(pid_of_1, 0);

  // 7b. The default sandbox (no worker_* in the config): the lab runs the daemon as root, so
  //     each worker is jailed, PID 1 of its own PID namespace below the keeper the daemon
  //     tracks, and runs as a uid of its own from the range reserved for 'supermachine' in
  //     /etc/subuid and /etc/subgid (deploy/setup.sh), or as uid 0 without capabilities when
  //     this host has none (docs/security.md "Worker sandbox").
  ASSERT_EQ(::geteuid(), 0u) << "the lab runs tests as root";
  EXPECT_THAT(daemon->Stderr(), HasSubstr("jail on (auto: the daemon runs as root)"));
  const std::optional<config::DaemonConfig::UidRange> reserved = config::ReservedSubidRange(
      test_support::ReadWholeFile("/etc/subuid"), test_support::ReadWholeFile("/etc/subgid"),
      config::kSubidOwner, std::nullopt);
  std::vector<uint32_t> worker_uids;
  for (const int keeper : {pid_of_1, pid1}) {
    SCOPED_TRACE(absl::StrCat("keeper ", keeper));
    int worker = 0;
    ASSERT_TRUE(absl::SimpleAtoi(
        Trim(test_support::ReadWholeFile(absl::StrCat("/proc/", keeper, "/task/", keeper,
                                                      "/children"))),
        &worker))
        << "the keeper must have exactly one child, the jailed worker";
    const std::string status = test_support::ReadWholeFile(absl::StrCat("/proc/", worker, "/status"));
    EXPECT_TRUE(std::regex_search(status, std::regex(R"(\nNSpid:\t\d+\t1\n)"))) << status;
    EXPECT_THAT(status, HasSubstr("\nCapEff:\t0000000000000000\n"));
    std::smatch uid;
    ASSERT_TRUE(std::regex_search(status, uid, std::regex(R"(\nUid:\t(\d+)\t)"))) << status;
    worker_uids.push_back(static_cast<uint32_t>(std::stoul(uid[1])));
    if (reserved.has_value()) {
      EXPECT_GE(worker_uids.back(), reserved->first);
      EXPECT_LT(uint64_t{worker_uids.back()}, uint64_t{reserved->first} + reserved->count);
    } else {
      EXPECT_EQ(worker_uids.back(), 0u) << "no reserved range: jailed as uid 0";
    }
  }
  if (reserved.has_value()) {
    EXPECT_NE(worker_uids[0], worker_uids[1]) << "one uid per VM";
  }
  CommandResult rm = smctl({"rm", id1});
  EXPECT_EQ(rm.exit.code, 0) << rm.err;
  EXPECT_TRUE(ProcessGone(pid_of_1));
  {
    grpc::ClientContext ctx;
    v1::ListVMsRequest all;
    all.set_all(true);
    v1::ListVMsResponse vms;
    ASSERT_TRUE(stub->ListVMs(&ctx, all, &vms).ok());
    bool found = false;
    for (const auto& v : vms.vms()) {
      if (v.id() == id1) {
        found = true;
        EXPECT_EQ(v.state(), v1::VM_STATE_ENDED);
        EXPECT_EQ(v.end_cause(), v1::END_CAUSE_RELEASED);
      }
    }
    EXPECT_TRUE(found);
  }
  auto gone = test_support::HttpGet(host_port, "/index.html");
  EXPECT_FALSE(gone.ok() && absl::StrContains(*gone, "hello-from-guest"));

  // 9. The daemon stops cleanly and takes its VMs with it (no re-adoption yet).
  ASSERT_TRUE(daemon->process().Signal(SIGTERM).ok());
  auto exit = daemon->process().WaitFor(absl::Seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << daemon->Stderr();
  EXPECT_TRUE(ProcessGone(pid1));
}

// Issue #11: "the daemon itself can run as a dedicated user with only /dev/kvm group access".
// supermachined as the system user 'supermachine' (deploy/setup.sh creates it) with kvm as its
// only group restores and serves VMs. The jail needs root, so it is off by default there and
// the workers run as that user (docs/security.md "Worker sandbox" weighs the two set-ups).
TEST(DaemonLab, ADedicatedUserWithOnlyKvmAccessServesVms) {
  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty()) << "guest kernel not built: run kernel/build.sh";
  ASSERT_EQ(::geteuid(), 0u) << "the lab runs tests as root";
  struct passwd* pw = ::getpwnam(config::kSubidOwner);
  ASSERT_NE(pw, nullptr) << "no user 'supermachine': run deploy/setup.sh";
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  struct group* kvm = ::getgrnam("kvm");
  ASSERT_NE(kvm, nullptr) << "no group 'kvm'";
  const gid_t kvm_gid = kvm->gr_gid;
  // What Debian's udev rule gives /dev/kvm (root:kvm 0660); the lab's devtmpfs has no udev.
  struct stat kvm_st {};
  ASSERT_EQ(::stat("/dev/kvm", &kvm_st), 0) << "no /dev/kvm: run via tests/lab/run";
  if (kvm_st.st_gid != kvm_gid || (kvm_st.st_mode & 0060) != 0060) {
    ASSERT_EQ(::chown("/dev/kvm", 0, kvm_gid), 0);
    ASSERT_EQ(::chmod("/dev/kvm", 0660), 0);
  }
  test_support::ScratchDir scratch;
  absl::StatusOr<std::string> snap_dir = WebSnapshotIn(kernel_dir, scratch);
  ASSERT_TRUE(snap_dir.ok()) << snap_dir.status();
  // The daemon's state (store, snapshot) belongs to its user, as setup by an operator would.
  std::error_code ec;
  ASSERT_EQ(::chown(scratch.path().c_str(), uid, gid), 0);
  for (auto it = fs::recursive_directory_iterator(scratch.path(), ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    ASSERT_EQ(::lchown(it->path().c_str(), uid, gid), 0) << it->path();
  }
  const std::string config = scratch.File("config.json");
  std::ofstream(config) << R"({"default_pool": {"min": 0, "max": 2, "acquire_timeout_s": 240}})";
  auto daemon = test_support::DaemonProcess::Start(
      scratch.path(), {"--config", config, "--worker-binary", SM_WORKER_BIN},
      {"/usr/bin/setpriv", absl::StrCat("--reuid=", uid), absl::StrCat("--regid=", gid),
       absl::StrCat("--groups=", kvm_gid), "--inh-caps=-all", "--bounding-set=-all"});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_THAT(daemon->Stderr(), HasSubstr("jail off (auto: the daemon does not run as root"));
  auto stub = v1::Supermachine::NewStub(
      grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials()));

  grpc::ClientContext actx;
  actx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::AcquireRequest areq;
  areq.set_snapshot(kSnapshot);
  v1::AcquireResponse aresp;
  grpc::Status ast = stub->Acquire(&actx, areq, &aresp);
  ASSERT_TRUE(ast.ok()) << ast.error_message() << daemon->Stderr();
  ExecOut hi = ExecIn(*stub, aresp.vm().id(), {"echo", "hi-from-a-user-daemon"});
  EXPECT_EQ(hi.code, 0) << hi.err;
  EXPECT_EQ(hi.out, "hi-from-a-user-daemon\n");

  const int worker = aresp.vm().worker_pid();
  const std::string status =
      test_support::ReadWholeFile(absl::StrCat("/proc/", worker, "/status"));
  EXPECT_THAT(status, HasSubstr(absl::StrCat("\nUid:\t", uid, "\t", uid, "\t", uid, "\t", uid,
                                             "\n")));
  EXPECT_THAT(status, HasSubstr(absl::StrCat("\nGroups:\t", kvm_gid, " \n")));
  EXPECT_THAT(status, HasSubstr("\nCapEff:\t0000000000000000\n"));

  grpc::ClientContext rctx;
  v1::ReleaseRequest rreq;
  rreq.set_vm_id(aresp.vm().id());
  v1::ReleaseResponse rresp;
  ASSERT_TRUE(stub->Release(&rctx, rreq, &rresp).ok());
  EXPECT_TRUE(ProcessGone(worker));
  ASSERT_TRUE(daemon->process().Signal(SIGTERM).ok());
  auto exit = daemon->process().WaitFor(absl::Seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << daemon->Stderr();
}

}  // namespace
}  // namespace supermachine
