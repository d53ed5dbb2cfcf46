// File: daemon_crash_lab_test.cc
// supermachined's crash safety and steady state on a real guest (issue 9), one sequence (each
// restore costs seconds under emulation):
//  1. pool of 3: three Acquires are pool hits, the 4th restores (the response and the
//     Prometheus histogram, scraped over HTTP and parsed, agree);
//  2. `kill -9` of the daemon while an Acquire is in flight: the workers outlive it; the
//     restarted daemon re-adopts the 4 handed-out VMs (same pids, ListVMs, name, Exec, the port
//     forward on the same host port), stops the pooled and half-restored ones (rows ended
//     `released`), leaves no worker that is not a VM of its store, and the snapshot is intact;
//  3. bad requests get their status codes (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED at
//     the pool max), grpc.health.v1 answers SERVING;
//  4. acquire/release cycles (up to 200, bounded to ~5 minutes) leave the daemon's open fds and
//     the worker count where they were;
//  5. SIGTERM: the daemon stops and takes every worker with it;
//  6. with keep_vms_on_stop, SIGTERM leaves the handed-out VM running (pooled ones stop) and
//     the next start re-adopts it: same worker, guest state, name and port forward.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "daemon/store/store.h"
#include "daemon/vm/process_table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/supermachine.grpc.pb.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/support/grpc_health.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/lab/daemon/web_snapshot.h"

namespace supermachine {
namespace {

namespace fs = std::filesystem;
using lab::ExecIn;
using lab::ExecOut;
using ::testing::HasSubstr;

constexpr char kSnapshot[] = "web";
constexpr uint32_t kGuestHttpPort = lab::kWebGuestPort;
// Generous: a restore under emulation on a loaded machine takes seconds to tens of seconds.
constexpr absl::Duration kPoolFill = absl::Minutes(10);
constexpr absl::Duration kChurnBudget = absl::Minutes(5);
constexpr int kChurnTarget = 200;
constexpr int kChurnMinimum = 10;
// One more than the 4 held + 3 pooled of step 1, so that when the in-flight Acquire of step 2
// is a pool hit (the pool refilled while step 1 ran), the refill it triggers is allowed and
// there is always a restore in flight to kill the daemon under.
constexpr size_t kPoolMax = 8;

struct AcquireResult {
  grpc::Status status;
  v1::AcquireResponse resp;
};

AcquireResult Acquire(v1::Supermachine::Stub& stub, const std::string& snapshot,
                      const std::string& name = "", uint32_t guest_port = 0) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::AcquireRequest req;
  req.set_snapshot(snapshot);
  req.set_no_bake(true);
  req.set_name(name);
  if (guest_port != 0) {
    v1::PortForward* p = req.add_ports();
    p->set_guest_port(guest_port);
  }
  AcquireResult r;
  r.status = stub.Acquire(&ctx, req, &r.resp);
  return r;
}

grpc::Status Release(v1::Supermachine::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  v1::ReleaseRequest req;
  req.set_vm_id(id);
  v1::ReleaseResponse resp;
  return stub.Release(&ctx, req, &resp);
}

std::vector<v1::VM> ListVms(v1::Supermachine::Stub& stub, bool all) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::ListVMsRequest req;
  req.set_all(all);
  v1::ListVMsResponse resp;
  grpc::Status st = stub.ListVMs(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return {resp.vms().begin(), resp.vms().end()};
}

// Prometheus text format: "name{labels} value" per sample line. Every sample must parse.
using Samples = std::map<std::string, double>;
absl::StatusOr<Samples> Scrape(int port) {
  absl::StatusOr<std::string> http = test_support::HttpGet(port, "/metrics");
  if (!http.ok()) {
    return http.status();
  }
  size_t body = http->find("\r\n\r\n");
  if (body == std::string::npos || !absl::StartsWith(*http, "HTTP/1.")) {
    return absl::InternalError("not an HTTP response: " + http->substr(0, 200));
  }
  Samples out;
  for (absl::string_view line : absl::StrSplit(http->substr(body + 4), '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) {
      continue;
    }
    size_t sp = line.rfind(' ');
    double v = 0;
    if (sp == absl::string_view::npos || !absl::SimpleAtod(line.substr(sp + 1), &v)) {
      return absl::InternalError(absl::StrCat("unparsable sample line: ", line));
    }
    out[std::string(line.substr(0, sp))] = v;
  }
  return out;
}

double Sample(const Samples& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? -1 : it->second;
}

double PoolReady(int metrics_port) {
  absl::StatusOr<Samples> s = Scrape(metrics_port);
  return s.ok() ? Sample(*s, R"(supermachine_pool_vms{snapshot="web",state="ready"})") : -1;
}

bool WaitPoolReady(int metrics_port, double n) {
  const absl::Time end = absl::Now() + kPoolFill;
  while (absl::Now() < end) {
    if (PoolReady(metrics_port) == n) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  return false;
}

// Live worker processes of the daemon's VM directory (zombies excluded: dead is dead).
// One pid per live VM of `vm_dir`: the process the daemon tracks. A jailed worker (the
// default for a root daemon) is two processes with the same argv, its PID namespace keeper and,
// as the keeper's only child, the VMM; the keeper is the VM's pid (reconcile.cc does the same).
std::set<int> LiveWorkers(const std::string& vm_dir) {
  vm::ProcFs procs;
  std::set<int> found;
  const std::string want = fs::path(vm_dir).lexically_normal().string();
  for (int pid : procs.Pids()) {
    const std::string dir = vm::WorkerVmDirOf(procs.Argv(pid));
    if (!dir.empty() && fs::path(dir).lexically_normal().string() == want &&
        procs.StartTime(pid).has_value()) {
      found.insert(pid);
    }
  }
  std::set<int> out;
  for (int pid : found) {
    const std::optional<int> parent = procs.ParentPid(pid);
    if (!parent.has_value() || found.count(*parent) == 0) {
      out.insert(pid);
    }
  }
  return out;
}

bool Alive(int pid) { return vm::ProcFs().StartTime(pid).has_value(); }

size_t OpenFds(int pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// path → size, for every file of the snapshot.
std::map<std::string, uintmax_t> Inventory(const std::string& dir) {
  std::map<std::string, uintmax_t> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[e.path().string()] = e.file_size();
    }
  }
  return out;
}

TEST(DaemonCrashLab, PoolHitsKillNineReadoptionChurnAndStatusCodes) {
  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  ASSERT_FALSE(kernel_dir.empty()) << "guest kernel not built: run kernel/build.sh";
  ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: run via tests/lab/run";
  test_support::ScratchDir scratch;

  // The snapshot: a busybox guest serving a page on 8000, booted and snapshotted directly,
  // registered in the store as a bake would.
  absl::StatusOr<std::string> made = lab::MakeWebSnapshot({.kernel = kernel_dir + "/vmlinux",
                                                           .worker_bin = SM_WORKER_BIN,
                                                           .agent_bin = SM_GUEST_AGENT_BIN,
                                                           .work_dir = scratch.File("guest"),
                                                           .state_dir = scratch.File("state"),
                                                           .name = kSnapshot,
                                                           .mem_mib = 128});
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string snap_dir = *made;
  const std::map<std::string, uintmax_t> snapshot_files = Inventory(snap_dir);
  ASSERT_FALSE(snapshot_files.empty());
  const std::string vm_dir = scratch.File("state/vms");

  const std::string config = scratch.File("config.json");
  std::ofstream(config) << R"({"pools": {"web": {"min": 3, "max": )" << kPoolMax
                        << R"(, "acquire_timeout_s": 300}}})";
  const std::vector<std::string> args = {"--config", config, "--worker-binary", SM_WORKER_BIN};
  std::optional<test_support::DaemonProcess> daemon;
  {
    auto d = test_support::DaemonProcess::Start(scratch.path(), args);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon.emplace(std::move(*d));
  }
  auto channel = grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials());
  auto stub = v1::Supermachine::NewStub(channel);
  {
    absl::StatusOr<int> health = test_support::HealthCheck(daemon->socket());
    ASSERT_TRUE(health.ok()) << health.status();
    EXPECT_EQ(*health, test_support::kHealthServing);
  }

  // 1. Pool of 3: three hits, then a restore.
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), 3)) << daemon->Stderr();
  std::vector<v1::VM> held;
  for (int i = 0; i < 4; ++i) {
    AcquireResult a = i == 0 ? Acquire(*stub, kSnapshot, "keep", kGuestHttpPort)
                             : Acquire(*stub, kSnapshot);
    ASSERT_TRUE(a.status.ok()) << a.status.error_message() << daemon->Stderr();
    EXPECT_EQ(a.resp.pool_hit(), i < 3) << "acquire #" << i + 1;
    held.push_back(a.resp.vm());
  }
  {
    absl::StatusOr<Samples> m = Scrape(daemon->metrics_port());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(Sample(*m, R"(supermachine_acquire_seconds_count{pool_hit="true"})"), 3);
    EXPECT_EQ(Sample(*m, R"(supermachine_acquire_seconds_count{pool_hit="false"})"), 1);
    EXPECT_EQ(Sample(*m, "supermachine_vms_running"), 4);
  }
  ASSERT_EQ(held[0].ports_size(), 1);
  const int host_port = static_cast<int>(held[0].ports(0).host_port());
  {
    ExecOut hi = ExecIn(*stub, held[0].id(), {"echo", "hi"});
    EXPECT_EQ(hi.code, 0) << hi.err;
    EXPECT_EQ(hi.out, "hi\n");
    auto page = test_support::HttpGet(host_port, "/index.html");
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_THAT(*page, HasSubstr("hello-from-guest"));
  }
  std::set<std::string> held_ids;
  std::map<std::string, int> held_pids;
  for (const v1::VM& v : held) {
    held_ids.insert(v.id());
    held_pids[v.id()] = static_cast<int>(v.worker_pid());
  }
  std::set<int> pooled_before;  // workers of pooled VMs, to be stopped by the restart
  for (const v1::VM& v : ListVms(*stub, false)) {
    if (held_ids.count(v.id()) == 0) {
      pooled_before.insert(static_cast<int>(v.worker_pid()));
    }
  }

  // 2. kill -9 while an Acquire is in flight (the 5th: the pool is empty, it restores).
  // Normally it is still restoring when the daemon dies; if it won the race (or a refill made it
  // a pool hit), the acquire succeeded and that VM is one more to keep.
  AcquireResult inflight_result;
  std::thread inflight([&] {
    auto own = v1::Supermachine::NewStub(channel);
    inflight_result = Acquire(*own, kSnapshot);
  });
  {
    // Kill once a restore is journaled as starting (the in-flight one or the pool's refill).
    auto store = store::Store::Open(scratch.File("state/store.db"),
                                    [] { return absl::ToUnixMillis(absl::Now()); });
    ASSERT_TRUE(store.ok()) << store.status();
    const absl::Time end = absl::Now() + absl::Minutes(2);
    bool starting = false;
    while (!starting && absl::Now() < end) {
      // Often: a restore is journaled "starting" for as little as a few milliseconds on
      // hardware KVM.
      absl::SleepFor(absl::Milliseconds(5));
      auto rows = store->ListVms(false);
      for (const auto& r : rows.ok() ? *rows : std::vector<store::VmRecord>{}) {
        starting = starting || r.state == "starting";
      }
    }
    EXPECT_TRUE(starting) << "no restore seen in flight";
  }
  ASSERT_TRUE(daemon->process().Signal(SIGKILL).ok());
  ASSERT_TRUE(daemon->process().WaitFor(absl::Seconds(30)).ok());
  inflight.join();
  if (inflight_result.status.ok()) {
    const v1::VM& v = inflight_result.resp.vm();
    std::printf("[ note ] the in-flight acquire finished before the kill (%s)\n", v.id().c_str());
    held.push_back(v);
    held_ids.insert(v.id());
    held_pids[v.id()] = static_cast<int>(v.worker_pid());
    pooled_before.erase(static_cast<int>(v.worker_pid()));
  }
  const std::string first_stderr = daemon->Stderr();
  for (const auto& [id, pid] : held_pids) {
    EXPECT_TRUE(Alive(pid)) << "worker of " << id << " died with the daemon";
  }

  daemon.reset();
  {
    auto d = test_support::DaemonProcess::Start(scratch.path(), args);
    ASSERT_TRUE(d.ok()) << d.status() << "\nfirst daemon:\n" << first_stderr;
    daemon.emplace(std::move(*d));
  }
  channel = grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials());
  stub = v1::Supermachine::NewStub(channel);
  EXPECT_THAT(daemon->Stderr(), HasSubstr("VMs reconciled"));
  // The handed-out VMs are back: same workers, name, port forward; Exec works.
  {
    std::map<std::string, v1::VM> now;
    for (const v1::VM& v : ListVms(*stub, false)) {
      now[v.id()] = v;
    }
    for (const auto& [id, pid] : held_pids) {
      ASSERT_EQ(now.count(id), 1u) << "VM " << id << " not re-adopted\n" << daemon->Stderr();
      EXPECT_EQ(now[id].worker_pid(), static_cast<uint32_t>(pid));
      EXPECT_EQ(now[id].state(), v1::VM_STATE_RUNNING);
    }
    EXPECT_EQ(now[held[0].id()].name(), "keep");
    ASSERT_EQ(now[held[0].id()].ports_size(), 1);
    EXPECT_EQ(now[held[0].id()].ports(0).host_port(), static_cast<uint32_t>(host_port));
  }
  for (const v1::VM& v : held) {
    ExecOut back = ExecIn(*stub, v.id(), {"echo", "back"});
    EXPECT_EQ(back.code, 0) << v.id() << ": " << back.err << daemon->Stderr();
    EXPECT_EQ(back.out, "back\n");
  }
  {
    ExecOut by_name = ExecIn(*stub, "keep", {"cat", "/tmp/www/index.html"});
    EXPECT_EQ(by_name.out, "hello-from-guest\n") << by_name.err;
    auto page = test_support::HttpGet(host_port, "/index.html");
    ASSERT_TRUE(page.ok()) << page.status() << daemon->Stderr();
    EXPECT_THAT(*page, HasSubstr("hello-from-guest"));
  }
  for (int pid : pooled_before) {
    EXPECT_FALSE(Alive(pid)) << "pooled worker " << pid << " outlived the restart";
  }
  // No orphans: once the pool is full again, every live worker is a VM of the store. The pool
  // refills to min 3 within the max (fewer if the held VMs leave no room).
  const size_t pool_after = std::min<size_t>(3, kPoolMax - held.size());
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), static_cast<double>(pool_after)))
      << daemon->Stderr();
  {
    std::set<int> journaled;
    for (const v1::VM& v : ListVms(*stub, false)) {
      journaled.insert(static_cast<int>(v.worker_pid()));
    }
    const std::set<int> live = LiveWorkers(vm_dir);
    EXPECT_EQ(live, journaled);
    EXPECT_EQ(live.size(), held.size() + pool_after) << "handed out + pooled";
    size_t released = 0;
    for (const v1::VM& v : ListVms(*stub, true)) {
      EXPECT_NE(v.state(), v1::VM_STATE_STARTING) << v.id() << " left half-restored";
      if (v.state() == v1::VM_STATE_ENDED && v.end_cause() == v1::END_CAUSE_RELEASED) {
        ++released;
      }
    }
    // The pooled VMs the restart stopped (and the restore the kill interrupted, if any).
    EXPECT_GE(released, pooled_before.size());
  }
  EXPECT_EQ(Inventory(snap_dir), snapshot_files) << "the snapshot changed";

  // 3. Status codes. Keep "keep"; release the others, then fill the pool's max.
  for (size_t i = 1; i < held.size(); ++i) {
    grpc::Status st = Release(*stub, held[i].id());
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(Alive(held_pids[held[i].id()]));
  }
  EXPECT_EQ(Release(*stub, "0123456789ab").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ExecIn(*stub, "0123456789ab", {"true"}).status, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Acquire(*stub, "no-such-snapshot").status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Acquire(*stub, "").status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Acquire(*stub, kSnapshot, "", 70000).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext ctx;
    v1::InspectSnapshotRequest req;
    req.set_name(std::string(300, 'x'));
    v1::Snapshot resp;
    EXPECT_EQ(stub->InspectSnapshot(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    std::vector<std::string> filled;
    for (size_t i = 0; i + 1 < kPoolMax; ++i) {  // + "keep" = max
      AcquireResult a = Acquire(*stub, kSnapshot);
      ASSERT_TRUE(a.status.ok()) << a.status.error_message() << daemon->Stderr();
      filled.push_back(a.resp.vm().id());
    }
    AcquireResult over = Acquire(*stub, kSnapshot);
    EXPECT_EQ(over.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << over.status.error_message();
    EXPECT_THAT(over.status.error_message(), HasSubstr("pool max"));
    for (const std::string& id : filled) {
      EXPECT_TRUE(Release(*stub, id).ok());
    }
  }

  // 4. Acquire/release cycles: no fd or process growth.
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), 3)) << daemon->Stderr();
  const int dpid = daemon->process().pid();
  const size_t fds_before = OpenFds(dpid);
  const size_t workers_before = LiveWorkers(vm_dir).size();
  EXPECT_EQ(workers_before, 4u) << "keep + 3 pooled";
  int cycles = 0;
  // A restored guest that resets by itself ("guest reset (triple fault") is a known flake of
  // the emulated lab (docs/snapshot.md, "Known limits"; about 1 in 800 restores, also seen at
  // cold boot). Hundreds of restores in one run would make that a coin toss, so a few such
  // failed Acquires are counted and the churn goes on: the daemon must survive them without
  // leaking, which step 4 checks all the same. Any other failure, or more than a few, fails.
  constexpr int kMaxGuestResets = 3;
  int guest_resets = 0;
  const absl::Time churn_start = absl::Now();
  while (cycles < kChurnTarget && absl::Now() - churn_start < kChurnBudget) {
    AcquireResult a = Acquire(*stub, kSnapshot);
    if (!a.status.ok() &&
        absl::StrContains(a.status.error_message(), "guest reset (triple fault") &&
        guest_resets < kMaxGuestResets) {
      ++guest_resets;
      std::printf("[ churn ] cycle %d: a restored guest reset by itself (emulated-lab flake %d "
                  "of at most %d): %s\n",
                  cycles, guest_resets, kMaxGuestResets, a.status.error_message().c_str());
      continue;
    }
    ASSERT_TRUE(a.status.ok()) << "cycle " << cycles << ": " << a.status.error_message();
    ASSERT_TRUE(Release(*stub, a.resp.vm().id()).ok()) << "cycle " << cycles;
    ++cycles;
  }
  const absl::Duration churn = absl::Now() - churn_start;
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), 3)) << daemon->Stderr();
  const size_t fds_after = OpenFds(dpid);
  const size_t workers_after = LiveWorkers(vm_dir).size();
  std::printf("[ churn ] %d acquire/release cycles in %s (%d guest resets); daemon fds %zu -> "
              "%zu; workers %zu -> %zu\n",
              cycles, absl::FormatDuration(churn).c_str(), guest_resets, fds_before, fds_after,
              workers_before, workers_after);
  EXPECT_GE(cycles, kChurnMinimum);
  EXPECT_EQ(workers_after, workers_before);
  // A few fds of slack for lazily opened gRPC/civetweb internals; a leak per cycle is far more.
  EXPECT_LE(fds_after, fds_before + 4);
  {
    absl::StatusOr<int> health = test_support::HealthCheck(daemon->socket());
    ASSERT_TRUE(health.ok()) << health.status();
    EXPECT_EQ(*health, test_support::kHealthServing);
  }

  // 5. A clean stop takes every worker with it.
  ASSERT_TRUE(daemon->process().Signal(SIGTERM).ok());
  auto exit = daemon->process().WaitFor(absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << daemon->Stderr();
  EXPECT_TRUE(LiveWorkers(vm_dir).empty());

  // 6. keep_vms_on_stop: a clean stop leaves the handed-out VM running (its guest state, name
  // and port forward with it) and stops the pooled one; the next start re-adopts it.
  const std::string keep_config = scratch.File("keep.json");
  std::ofstream(keep_config) << R"({"keep_vms_on_stop": true, "pools": {"web": {"min": 1, )"
                             << R"("max": 4, "acquire_timeout_s": 300}}})";
  const std::vector<std::string> keep_args = {"--config", keep_config, "--worker-binary",
                                              SM_WORKER_BIN};
  auto restart = [&] {
    daemon.reset();
    auto d = test_support::DaemonProcess::Start(scratch.path(), keep_args);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon.emplace(std::move(*d));
    channel =
        grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials());
    stub = v1::Supermachine::NewStub(channel);
  };
  restart();
  ASSERT_TRUE(daemon.has_value());
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), 1)) << daemon->Stderr();
  AcquireResult kept = Acquire(*stub, kSnapshot, "kept", kGuestHttpPort);
  ASSERT_TRUE(kept.status.ok()) << kept.status.error_message() << daemon->Stderr();
  ASSERT_EQ(kept.resp.vm().ports_size(), 1);
  const int kept_pid = static_cast<int>(kept.resp.vm().worker_pid());
  const int kept_port = static_cast<int>(kept.resp.vm().ports(0).host_port());
  {
    ExecOut mark = ExecIn(*stub, "kept", {"sh", "-c", "echo before-stop >/tmp/kept-marker"});
    EXPECT_EQ(mark.code, 0) << mark.err;
  }
  ASSERT_TRUE(WaitPoolReady(daemon->metrics_port(), 1)) << "the refill\n" << daemon->Stderr();
  ASSERT_EQ(LiveWorkers(vm_dir).size(), 2u) << "the kept VM and the pooled one";
  ASSERT_TRUE(daemon->process().Signal(SIGTERM).ok());
  exit = daemon->process().WaitFor(absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << daemon->Stderr();
  EXPECT_THAT(daemon->Stderr(), HasSubstr("keep running for the next start"));
  EXPECT_EQ(LiveWorkers(vm_dir), std::set<int>{kept_pid}) << "only the handed-out VM stays";

  restart();
  ASSERT_TRUE(daemon.has_value());
  EXPECT_THAT(daemon->Stderr(), HasSubstr("VMs reconciled"));
  {
    std::vector<v1::VM> now = ListVms(*stub, false);
    auto it = std::find_if(now.begin(), now.end(),
                           [](const v1::VM& v) { return v.name() == "kept"; });
    ASSERT_NE(it, now.end()) << "the kept VM was not re-adopted\n" << daemon->Stderr();
    EXPECT_EQ(it->worker_pid(), static_cast<uint32_t>(kept_pid));
    ASSERT_EQ(it->ports_size(), 1);
    EXPECT_EQ(it->ports(0).host_port(), static_cast<uint32_t>(kept_port));
  }
  {
    ExecOut back = ExecIn(*stub, "kept", {"cat", "/tmp/kept-marker"});
    EXPECT_EQ(back.out, "before-stop\n") << back.err << daemon->Stderr();
    auto page = test_support::HttpGet(kept_port, "/index.html");
    ASSERT_TRUE(page.ok()) << page.status() << daemon->Stderr();
    EXPECT_THAT(*page, HasSubstr("hello-from-guest"));
  }
  // Released VMs go as ever; with none handed out a clean stop leaves nothing behind.
  EXPECT_TRUE(Release(*stub, "kept").ok());
  EXPECT_FALSE(Alive(kept_pid));
  ASSERT_TRUE(daemon->process().Signal(SIGTERM).ok());
  exit = daemon->process().WaitFor(absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->success()) << exit->ToString() << daemon->Stderr();
  EXPECT_TRUE(LiveWorkers(vm_dir).empty());
}

}  // namespace
}  // namespace supermachine
