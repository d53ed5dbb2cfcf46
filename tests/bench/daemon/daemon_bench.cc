// File: daemon_bench.cc
// Daemon benchmark (issue 9; tests/bench/daemon/README.md). A real supermachined serves a pool
// of the daemon lab tests' busybox httpd snapshot (tests/lab/daemon/web_snapshot.h); in the same
// run it measures
//  - Acquire latency of pool hits (client side, p50/p99);
//  - Acquire (pool hit, port forward) → first HTTP response on the forwarded port, against
//    `crun run` of the same busybox tree and httpd command → first HTTP response, and against
//    QEMU microvm cold boots (tests/lab/peer/qemu_microvm.py) of the same kernel;
//  - acquires/s with pool refill under N concurrent acquire/release loops.
// A benchmark: prints numbers and ratios against its peers, asserts none.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "proto/supermachine.grpc.pb.h"
#include "tests/bench/support/proc_memory.h"
#include "tests/bench/support/summary.h"
#include "tests/integration/daemon/daemon_process.h"
#include "tests/lab/agent/agent_vm.h"
#include "tests/lab/daemon/web_snapshot.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace supermachine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSnapshot[] = "web";
// The same workload as the snapshot's (web_snapshot.cc), for the crun peer.
constexpr char kHttpdScript[] =
    "mkdir -p /tmp/www && echo hello-from-guest > /tmp/www/index.html && "
    "exec /bin/busybox httpd -f -p %d -h /tmp/www";

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "daemon_bench: %s\n", msg.c_str());
  std::exit(1);
}

using bench::Summarize;

// ---- the daemon side ----

struct Acquired {
  grpc::Status status;
  v1::AcquireResponse resp;
};

Acquired Acquire(v1::Supermachine::Stub& stub, uint32_t guest_port) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::AcquireRequest req;
  req.set_snapshot(kSnapshot);
  req.set_no_bake(true);
  if (guest_port != 0) {
    req.add_ports()->set_guest_port(guest_port);
  }
  Acquired a;
  a.status = stub.Acquire(&ctx, req, &a.resp);
  return a;
}

void Release(v1::Supermachine::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  v1::ReleaseRequest req;
  req.set_vm_id(id);
  v1::ReleaseResponse resp;
  grpc::Status st = stub.Release(&ctx, req, &resp);
  if (!st.ok()) {
    Die("Release " + id + ": " + st.error_message());
  }
}

// The pool's ready count from /metrics (-1 when the scrape fails).
double PoolReady(int metrics_port) {
  absl::StatusOr<std::string> http = test_support::HttpGet(metrics_port, "/metrics");
  if (!http.ok()) {
    return -1;
  }
  const std::string key = R"(supermachine_pool_vms{snapshot="web",state="ready"} )";
  for (absl::string_view line : absl::StrSplit(*http, '\n')) {
    double v = 0;
    if (absl::StartsWith(line, key) && absl::SimpleAtod(line.substr(key.size()), &v)) {
      return v;
    }
  }
  return -1;
}

// Waits (untimed) until the pool holds at least `n` ready VMs; generous, guests are emulated.
void WaitPoolReady(int metrics_port, double n) {
  const absl::Time end = absl::Now() + absl::Minutes(10);
  while (PoolReady(metrics_port) < n) {
    if (absl::Now() > end) {
      Die(absl::StrCat("the pool did not reach ", n, " ready VMs in 10 minutes"));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// One GET of /index.html on 127.0.0.1:<port>: true once the first response byte arrives within
// `wait`. A forward (or a server) that is not up yet refuses, closes without a byte, or stays
// silent; `why` says which.
bool FirstByte(int port, absl::Duration wait, std::string* why) {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *why = "connect refused";
    return false;
  }
  static constexpr char kReq[] = "GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd.get(), kReq, sizeof(kReq) - 1) != static_cast<ssize_t>(sizeof(kReq) - 1)) {
    *why = "write failed";
    return false;
  }
  pollfd p{.fd = fd.get(), .events = POLLIN};
  if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) != 1) {
    *why = "no byte in time";
    return false;
  }
  char c = 0;
  if (::read(fd.get(), &c, 1) != 1) {
    *why = "closed without a byte";
    return false;
  }
  return true;
}

// Retries FirstByte (every 2 ms, 10 s per attempt) until `deadline`; the attempts' outcomes
// go to stderr when there was more than one, so a slow forward shows why.
bool WaitForPage(int port, absl::Time deadline) {
  std::vector<std::string> tries;
  while (absl::Now() < deadline) {
    std::string why;
    if (FirstByte(port, absl::Seconds(10), &why)) {
      if (tries.size() > 1) {
        std::cerr << absl::StrFormat("daemon_bench: port %d answered after %d failed tries, "
                                     "first: %s, last: %s\n",
                                     port, tries.size(), tries.front(), tries.back());
      }
      return true;
    }
    tries.push_back(why);
    absl::SleepFor(absl::Milliseconds(2));
  }
  std::cerr << absl::StrFormat("daemon_bench: port %d: %d tries failed, first: %s, last: %s\n",
                               port, tries.size(), tries.empty() ? "" : tries.front(),
                               tries.empty() ? "" : tries.back());
  return false;
}

// ---- the crun peer: the same busybox tree and httpd command, host network ----

int FreeTcpPort() {
  base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("cannot find a free TCP port");
  }
  return ntohs(addr.sin_port);
}

base::ExitStatus RunQuiet(const std::vector<std::string>& argv, int log_fd) {
  auto child = base::ChildProcess::Spawn({.argv = argv, .stdout_fd = log_fd, .stderr_fd = log_fd});
  if (!child.ok()) {
    Die(child.status().ToString());
  }
  auto st = child->WaitFor(absl::Seconds(120));
  if (!st.ok()) {
    Die(absl::StrCat(argv[0], ": ", st.status().ToString()));
  }
  return *st;
}

// An OCI bundle at <work>/bundle whose rootfs is the guest's busybox tree; returns its config
// with the host network namespace (the host reaches httpd on loopback, as it reaches our
// forward) and no process args yet.
json PrepareCrunBundle(const std::string& work, int log_fd) {
  const std::string bundle = work + "/bundle";
  fs::create_directories(work + "/crun-state");
  fs::create_directories(bundle);
  if (absl::Status st = agent::lab::WriteBusyboxTree(bundle + "/rootfs", "/bin/busybox");
      !st.ok()) {
    Die(st.ToString());
  }
  if (!RunQuiet({"sh", "-c", "cd '" + bundle + "' && rm -f config.json && crun spec"}, log_fd)
           .success()) {
    Die("crun spec failed (is crun installed?)");
  }
  json base_config = json::parse(std::ifstream(bundle + "/config.json"));
  base_config["process"]["terminal"] = false;
  base_config["process"]["env"] = {"PATH=/bin:/usr/bin:/sbin:/usr/sbin"};
  base_config["root"]["readonly"] = false;  // httpd's page goes to /tmp/www, as in the guest
  // Host network namespace: the host reaches httpd on loopback, as it reaches our forward.
  json namespaces = json::array();
  for (const json& ns : base_config["linux"]["namespaces"]) {
    if (ns["type"] != "network") {
      namespaces.push_back(ns);
    }
  }
  base_config["linux"]["namespaces"] = namespaces;
  return base_config;
}

// `crun run --detach` of the bundle with httpd on a fresh port → the page; then deletes it.
std::vector<double> CrunRuns(const std::string& work, int runs, int log_fd) {
  const std::string bundle = work + "/bundle";
  const std::string root = work + "/crun-state";
  const json base_config = PrepareCrunBundle(work, log_fd);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const int port = FreeTcpPort();
    json config = base_config;
    config["process"]["args"] = {"/bin/sh", "-c", absl::StrFormat(kHttpdScript, port)};
    std::ofstream(bundle + "/config.json") << config.dump(2);
    const std::string name = absl::StrCat("sm-daemon-bench-", i);
    const absl::Time t0 = absl::Now();
    base::ExitStatus run =
        RunQuiet({"crun", "--root", root, "run", "--detach", "--bundle", bundle, name}, log_fd);
    if (!run.success()) {
      Die("crun run --detach failed: " + run.ToString() + " (log in " + work + ")");
    }
    if (!WaitForPage(port, absl::Now() + absl::Minutes(2))) {
      Die("the crun httpd never answered (log in " + work + ")");
    }
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    std::cerr << absl::StrFormat("daemon_bench: crun run → page %d: %.1f ms\n", i, ms.back());
    RunQuiet({"crun", "--root", root, "delete", "--force", name}, log_fd);
  }
  return ms;
}

// ---- density (issue 12): N idle VMs vs N idle crun containers, each answering HTTP ----

// The memory figures of one density side, as JSON, plus the line printed for it.
json DensitySide(const std::vector<bench::ProcessMemory>& mem, double avail_before,
                 double avail_after, int answering, int n, double budget_mib) {
  std::vector<double> priv, written, beyond, pss;
  for (const bench::ProcessMemory& m : mem) {
    priv.push_back(m.private_mib);
    written.push_back(m.guest_written_mib);
    beyond.push_back(m.private_mib - m.guest_written_mib);
    pss.push_back(m.pss_mib);
  }
  const double host_per = (avail_before - avail_after) / n;
  return {{"n", n},
          {"answering_http", answering},
          {"private_mib", Summarize(priv)},
          {"guest_written_mib", Summarize(written)},
          {"private_beyond_guest_written_mib", Summarize(beyond)},
          {"pss_mib", Summarize(pss)},
          {"mem_available_before_mib", avail_before},
          {"mem_available_after_mib", avail_after},
          {"host_mib_per_instance", host_per},
          {"budget_mib", budget_mib},
          {"fit_in_budget", host_per > 0 ? static_cast<int>(budget_mib / host_per) : -1}};
}

// N VMs acquired with a forward of the httpd port, each answering, left idle `idle_s`, then
// measured (smaps of every worker, with its jail's keeper; MemAvailable before and after) and asked for the page again.
json DensityOurs(v1::Supermachine::Stub& stub, test_support::DaemonProcess& daemon, int pool_min,
                 int n, int idle_s, const std::string& memory_file, double budget_mib) {
  const int metrics = daemon.metrics_port();
  WaitPoolReady(metrics, pool_min);
  absl::SleepFor(absl::Seconds(2));
  const double before = bench::MemAvailableMib();
  std::vector<std::string> ids;
  std::vector<int> ports;
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    Acquired a = Acquire(stub, lab::kWebGuestPort);
    if (!a.status.ok() || a.resp.vm().ports_size() != 1) {
      Die(absl::StrCat("density: Acquire ", i, ": ", a.status.error_message(), "\n",
                       daemon.Stderr()));
    }
    ids.push_back(a.resp.vm().id());
    ports.push_back(static_cast<int>(a.resp.vm().ports(0).host_port()));
    pids.push_back(a.resp.vm().worker_pid());
    if (!WaitForPage(ports.back(), absl::Now() + absl::Minutes(2))) {
      Die(absl::StrCat("density: VM ", i, " never answered\n", daemon.Stderr()));
    }
  }
  // The pool refills behind the acquires; wait for it so `after` counts the same pool as
  // `before`, then let the VMs idle.
  WaitPoolReady(metrics, pool_min);
  absl::SleepFor(absl::Seconds(idle_s));
  const double after = bench::MemAvailableMib();
  std::vector<bench::ProcessMemory> mem;
  for (pid_t pid : pids) {
    mem.push_back(bench::ReadProcessTreeMemory(pid, memory_file));
  }
  int answering = 0;
  for (int port : ports) {
    std::string why;
    answering += FirstByte(port, absl::Seconds(30), &why) ? 1 : 0;
  }
  for (const std::string& id : ids) {
    Release(stub, id);
  }
  json side = DensitySide(mem, before, after, answering, n, budget_mib);
  side["top_worker_overhead_of_first"] = mem.empty() ? json::array() : json(mem[0].top_other);
  return side;
}

// The same with N `crun run --detach` containers of the same tree + httpd (host network).
json DensityCrun(const std::string& work, int n, int idle_s, double budget_mib, int log_fd) {
  const std::string bundle = work + "/bundle";
  const std::string root = work + "/crun-state";
  const json base_config = PrepareCrunBundle(work, log_fd);
  absl::SleepFor(absl::Seconds(2));
  const double before = bench::MemAvailableMib();
  std::vector<std::string> names;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    const int port = FreeTcpPort();
    json config = base_config;
    config["process"]["args"] = {"/bin/sh", "-c", absl::StrFormat(kHttpdScript, port)};
    std::ofstream(bundle + "/config.json") << config.dump(2);
    names.push_back(absl::StrCat("sm-density-", i));
    if (!RunQuiet({"crun", "--root", root, "run", "--detach", "--bundle", bundle, names.back()},
                  log_fd)
             .success()) {
      Die("density: crun run --detach failed (log in " + work + ")");
    }
    ports.push_back(port);
    if (!WaitForPage(port, absl::Now() + absl::Minutes(2))) {
      Die("density: a crun httpd never answered (log in " + work + ")");
    }
  }
  absl::SleepFor(absl::Seconds(idle_s));
  const double after = bench::MemAvailableMib();
  std::vector<bench::ProcessMemory> mem;
  for (const std::string& name : names) {
    const std::string state = work + "/state.json";
    base::UniqueFd out(::open(state.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto child = base::ChildProcess::Spawn(
        {.argv = {"crun", "--root", root, "state", name}, .stdout_fd = out.get(),
         .stderr_fd = log_fd});
    if (!child.ok() || !child->WaitFor(absl::Seconds(60)).ok()) {
      Die("density: crun state " + name + " failed");
    }
    const json st = json::parse(std::ifstream(state), nullptr, /*allow_exceptions=*/false);
    if (!st.is_object() || !st.contains("pid")) {
      Die("density: crun state " + name + ": no pid");
    }
    mem.push_back(bench::ReadProcessMemory(st["pid"].get<pid_t>(), ""));
  }
  int answering = 0;
  for (int port : ports) {
    std::string why;
    answering += FirstByte(port, absl::Seconds(30), &why) ? 1 : 0;
  }
  for (const std::string& name : names) {
    RunQuiet({"crun", "--root", root, "delete", "--force", name}, log_fd);
  }
  return DensitySide(mem, before, after, answering, n, budget_mib);
}

// ---- the QEMU peer: tests/lab/peer/qemu_microvm.py, cold boot to the agent's marker ----

json QemuColdBoots(const std::string& work, const std::string& kernel_dir,
                   const std::string& agent_bin, int runs, uint32_t mem_mib) {
  const std::string out = work + "/qemu.json";
  auto child = base::ChildProcess::Spawn(
      {.argv = {std::string(SM_SOURCE_DIR) + "/tests/lab/peer/qemu_microvm.py", "--agent",
                agent_bin, "--kernel-dir", kernel_dir, "--image", "vmlinux", "--runs",
                std::to_string(runs), "--warmup", "1", "--smp", "1", "--mem",
                std::to_string(mem_mib), "--timeout", "120", "--hang-retries", "2", "--json",
                out}});
  if (!child.ok()) {
    Die(child.status().ToString());
  }
  auto st = child->WaitFor(absl::Minutes(30));
  if (!st.ok() || !st->success()) {
    Die("qemu_microvm.py failed: " + (st.ok() ? st->ToString() : st.status().ToString()));
  }
  return json::parse(std::ifstream(out));
}

json Row(const std::string& bench, const std::string& ours_name, const std::string& peer_name,
         const json& ours, const json& peer) {
  const double o = ours["median"].get<double>();
  const double p = peer["median"].get<double>();
  const double ratio = p > 0 ? o / p : 0;
  std::printf("%-44s %-34s %-40s %9.1f ±%-7.1f %9.1f ±%-7.1f %8.3fx\n", bench.c_str(),
              ours_name.c_str(), peer_name.c_str(), o, ours["mad"].get<double>(), p,
              peer["mad"].get<double>(), ratio);
  return {{"bench", bench}, {"ours", ours_name}, {"peer", peer_name}, {"unit", "ms"},
          {"ours_stats", ours}, {"peer_stats", peer}, {"ratio", ratio}};
}

int Main(int argc, char** argv) {
  CLI::App app{"Daemon benchmark: pool-hit Acquire latency, acquire→first HTTP response vs crun "
               "run and QEMU microvm cold boot, acquires/s under concurrency"};
  int hits = 200;
  int hit_budget_s = 900;
  int fb_runs = 20;
  int crun_runs = 20;
  int qemu_runs = 10;
  int tput_seconds = 30;
  int concurrency = 8;
  int pool_min = 3;
  int pool_max = 16;
  uint32_t mem_mib = 128;
  int density = 0;
  int density_idle_s = 10;
  double density_budget_mib = 1024;
  std::string json_out;
  std::string agent_bin = SM_GUEST_AGENT_BIN;
  std::string worker_bin = SM_WORKER_BIN;
  app.add_option("--hits", hits, "pool-hit Acquires timed")->capture_default_str();
  app.add_option("--hit-budget-s", hit_budget_s, "stop the pool-hit loop after this long")
      ->capture_default_str();
  app.add_option("--first-byte-runs", fb_runs, "acquire → page runs")->capture_default_str();
  app.add_option("--crun-runs", crun_runs, "crun run → page runs (0: skip)")->capture_default_str();
  app.add_option("--qemu-runs", qemu_runs, "QEMU microvm cold boots (0: skip)")
      ->capture_default_str();
  app.add_option("--tput-seconds", tput_seconds, "throughput phase length")->capture_default_str();
  app.add_option("--concurrency", concurrency, "acquire/release loops in the throughput phase")
      ->capture_default_str();
  app.add_option("--pool-min", pool_min, "pool min (pre-restored VMs)")->capture_default_str();
  app.add_option("--pool-max", pool_max, "pool max")->capture_default_str();
  app.add_option("--mem-mib", mem_mib, "guest RAM (ours and QEMU's)")->capture_default_str();
  app.add_option("--agent", agent_bin, "static guest-agent binary")->capture_default_str();
  app.add_option("--worker", worker_bin, "supermachine-worker binary")->capture_default_str();
  app.add_option("--density", density,
                 "idle VMs (and as many crun containers) for the density phase (0: skip)")
      ->capture_default_str();
  app.add_option("--density-idle-s", density_idle_s, "idle time before measuring density")
      ->capture_default_str();
  app.add_option("--density-budget-mib", density_budget_mib,
                 "memory budget the density phase reports a fit for")
      ->capture_default_str();
  app.add_option("--json", json_out, "also write the JSON here");
  CLI11_PARSE(app, argc, argv);

  const std::string kernel_dir = agent::lab::KernelDir(SM_SOURCE_DIR);
  if (kernel_dir.empty()) {
    Die("guest kernel not built: run kernel/build.sh or set SM_KERNEL_DIR");
  }
  if (!fs::exists("/dev/kvm")) {
    Die("no /dev/kvm: run it through tests/lab/run");
  }
  test_support::ScratchDir scratch;
  const std::string log_path = scratch.File("peers.log");
  base::UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  json report = {{"mem_mib", mem_mib}, {"vcpus", 1}, {"pool_min", pool_min},
                 {"pool_max", pool_max}};

  absl::StatusOr<std::string> made = lab::MakeWebSnapshot({.kernel = kernel_dir + "/vmlinux",
                                                           .worker_bin = worker_bin,
                                                           .agent_bin = agent_bin,
                                                           .work_dir = scratch.File("guest"),
                                                           .state_dir = scratch.File("state"),
                                                           .name = kSnapshot,
                                                           .mem_mib = mem_mib});
  if (!made.ok()) {
    Die(made.status().ToString());
  }
  const std::string config = scratch.File("config.json");
  std::ofstream(config) << absl::StrFormat(
      R"({"pools": {"web": {"min": %d, "max": %d, "acquire_timeout_s": 300}}})", pool_min,
      pool_max);
  absl::StatusOr<test_support::DaemonProcess> daemon = test_support::DaemonProcess::Start(
      scratch.path(), {"--config", config, "--worker-binary", worker_bin});
  if (!daemon.ok()) {
    Die(daemon.status().ToString());
  }
  auto channel = grpc::CreateChannel("unix:" + daemon->socket(), grpc::InsecureChannelCredentials());
  auto stub = v1::Supermachine::NewStub(channel);
  const int metrics = daemon->metrics_port();
  WaitPoolReady(metrics, pool_min);

  // 1. Pool-hit Acquire latency: wait (untimed) for a ready VM, time the Acquire, release.
  std::vector<double> hit_ms;
  int misses = 0;
  const absl::Time hit_end = absl::Now() + absl::Seconds(hit_budget_s);
  while (static_cast<int>(hit_ms.size()) < hits && absl::Now() < hit_end) {
    WaitPoolReady(metrics, 1);
    const absl::Time t0 = absl::Now();
    Acquired a = Acquire(*stub, 0);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    if (!a.status.ok()) {
      Die("Acquire: " + a.status.error_message() + "\n" + daemon->Stderr());
    }
    if (a.resp.pool_hit()) {
      hit_ms.push_back(ms);
    } else {
      ++misses;  // a refill raced us; not a pool hit, not counted
    }
    Release(*stub, a.resp.vm().id());
  }
  std::cerr << absl::StrFormat("daemon_bench: %d pool-hit acquires (%d misses)\n", hit_ms.size(),
                               misses);
  report["acquire_pool_hit_ms"] = Summarize(hit_ms);
  report["acquire_pool_hit_misses"] = misses;

  // 2. Acquire (pool hit) with a forward of the guest's port 8000 → the page on the host port.
  std::vector<double> fb_ms;
  std::vector<double> fb_acquire_ms;
  int fb_misses = 0;
  for (int i = 0; i < fb_runs; ++i) {
    WaitPoolReady(metrics, 1);
    const absl::Time t0 = absl::Now();
    Acquired a = Acquire(*stub, lab::kWebGuestPort);
    const absl::Time t1 = absl::Now();
    if (!a.status.ok() || a.resp.vm().ports_size() != 1) {
      Die("Acquire with a port: " + a.status.error_message() + "\n" + daemon->Stderr());
    }
    const int port = static_cast<int>(a.resp.vm().ports(0).host_port());
    if (!WaitForPage(port, absl::Now() + absl::Minutes(2))) {
      Die("the forwarded httpd never answered\n" + daemon->Stderr());
    }
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    fb_ms.push_back(ms);
    fb_acquire_ms.push_back(absl::ToDoubleMilliseconds(t1 - t0));
    fb_misses += a.resp.pool_hit() ? 0 : 1;
    std::cerr << absl::StrFormat("daemon_bench: acquire → page %d: %.1f ms (acquire %.1f, %s)\n",
                                 i, ms, fb_acquire_ms.back(),
                                 a.resp.pool_hit() ? "pool hit" : "restore");
    Release(*stub, a.resp.vm().id());
  }
  report["acquire_to_page_ms"] = Summarize(fb_ms);
  report["acquire_to_page_acquire_part_ms"] = Summarize(fb_acquire_ms);
  report["acquire_to_page_misses"] = fb_misses;

  // 3. Throughput: `concurrency` loops of Acquire + Release for `tput_seconds`; the pool
  // refills in the background (and restores on demand up to max).
  WaitPoolReady(metrics, pool_min);
  std::atomic<int> done{0};
  std::atomic<int> pool_hits{0};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::vector<double> tput_ms;
  std::mutex tput_mu;
  const absl::Time tput_start = absl::Now();
  const absl::Time tput_end = tput_start + absl::Seconds(tput_seconds);
  {
    std::vector<std::thread> loops;
    loops.reserve(static_cast<size_t>(concurrency));
    for (int c = 0; c < concurrency; ++c) {
      loops.emplace_back([&] {
        auto own = v1::Supermachine::NewStub(channel);
        while (absl::Now() < tput_end) {
          const absl::Time t0 = absl::Now();
          Acquired a = Acquire(*own, 0);
          if (!a.status.ok()) {
            std::lock_guard<std::mutex> l(errors_mu);
            errors.push_back(a.status.error_message());
            absl::SleepFor(absl::Milliseconds(100));
            continue;
          }
          {
            std::lock_guard<std::mutex> l(tput_mu);
            tput_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
          }
          pool_hits += a.resp.pool_hit() ? 1 : 0;
          ++done;
          Release(*own, a.resp.vm().id());
        }
      });
    }
    for (auto& t : loops) {
      t.join();
    }
  }
  const double tput_s = absl::ToDoubleSeconds(absl::Now() - tput_start);
  const double per_s = done.load() / tput_s;
  std::cerr << absl::StrFormat(
      "daemon_bench: throughput: %d acquires in %.1f s at concurrency %d = %.2f/s (%d pool hits, "
      "%d errors)\n",
      done.load(), tput_s, concurrency, per_s, pool_hits.load(), errors.size());
  report["throughput"] = {{"acquires", done.load()},
                          {"seconds", tput_s},
                          {"concurrency", concurrency},
                          {"acquires_per_s", per_s},
                          {"pool_hits", pool_hits.load()},
                          {"errors", errors.size()},
                          {"first_errors", std::vector<std::string>(
                                               errors.begin(),
                                               errors.begin() + std::min<size_t>(errors.size(), 5))},
                          {"acquire_ms", Summarize(tput_ms)}};
  // 4. Density: N idle VMs, each answering HTTP (issue 12).
  if (density > 0) {
    const std::string memory_file = fs::canonical(*made + "/memory").string();
    report["density_ours"] = DensityOurs(*stub, *daemon, pool_min, density, density_idle_s,
                                         memory_file, density_budget_mib);
  }
  // The daemon and its workers go before the peers run: they would compete for the CPUs.
  {
    auto& proc = daemon->process();
    (void)proc.Terminate(absl::Seconds(60));
  }

  // 5. Peers, same run.
  json rows = json::array();
  std::printf("%-44s %-34s %-40s %19s %19s %9s\n", "bench", "ours", "peer", "ours ms (med±MAD)",
              "peer ms (med±MAD)", "ratio");
  if (crun_runs > 0) {
    const std::vector<double> crun = CrunRuns(scratch.File("crun"), crun_runs, log.get());
    report["crun_run_to_page_ms"] = Summarize(crun);
    rows.push_back(Row("to first HTTP response (target ≤ 0.1x)", "Acquire (pool hit) + forward",
                       "crun run --detach, same tree + httpd", report["acquire_to_page_ms"],
                       report["crun_run_to_page_ms"]));
    rows.push_back(Row("Acquire pool hit (no port) vs crun run", "Acquire (pool hit)",
                       "crun run --detach, same tree + httpd", report["acquire_pool_hit_ms"],
                       report["crun_run_to_page_ms"]));
  }
  if (qemu_runs > 0) {
    json q = QemuColdBoots(scratch.path(), kernel_dir, agent_bin, qemu_runs, mem_mib);
    json marker = q["images"]["vmlinux"]["marker_s"];
    json marker_ms = {{"median", marker["median"].get<double>() * 1000},
                      {"mad", marker["mad"].get<double>() * 1000}};
    for (const char* k : {"min", "max"}) {
      if (marker.contains(k)) {
        marker_ms[k] = marker[k].get<double>() * 1000;
      }
    }
    report["qemu_cold_boot_to_marker_ms"] = marker_ms;
    report["qemu_raw"] = q;
    rows.push_back(Row("to first HTTP response vs QEMU cold boot", "Acquire (pool hit) + forward",
                       "QEMU microvm cold boot to agent marker", report["acquire_to_page_ms"],
                       marker_ms));
  }
  if (density > 0) {
    report["density_crun"] = DensityCrun(scratch.File("crun-density"), density, density_idle_s,
                                         density_budget_mib, log.get());
    const json& o = report["density_ours"];
    const json& c = report["density_crun"];
    std::printf("Density, %d idle instances of busybox httpd, each answering (ours %d/%d, crun "
                "%d/%d):\n",
                density, o["answering_http"].get<int>(), density, c["answering_http"].get<int>(),
                density);
    std::printf("  private RSS per instance: ours %.2f MiB (of which guest-written %.2f, beyond "
                "it %.2f: target <= 8) vs crun %.2f MiB\n",
                o["private_mib"]["median"].get<double>(),
                o["guest_written_mib"]["median"].get<double>(),
                o["private_beyond_guest_written_mib"]["median"].get<double>(),
                c["private_mib"]["median"].get<double>());
    std::printf("  host memory per instance (MemAvailable drop / N): ours %.2f MiB vs crun %.2f "
                "MiB (%.2fx); fit in %.0f MiB: ours %d, crun %d\n",
                o["host_mib_per_instance"].get<double>(), c["host_mib_per_instance"].get<double>(),
                c["host_mib_per_instance"].get<double>() > 0
                    ? o["host_mib_per_instance"].get<double>() /
                          c["host_mib_per_instance"].get<double>()
                    : 0.0,
                density_budget_mib, o["fit_in_budget"].get<int>(), c["fit_in_budget"].get<int>());
  }
  report["rows"] = rows;
  const json hit = report["acquire_pool_hit_ms"];
  if (!hit.empty()) {
    std::printf("Acquire (pool hit) latency: p50 %.1f ms, p99 %.1f ms (n=%d, %d misses)\n",
                hit["p50"].get<double>(), hit["p99"].get<double>(), hit["n"].get<int>(), misses);
  }
  std::printf("Throughput: %.2f acquires/s at concurrency %d over %.1f s (%d acquires, %d pool "
              "hits, %zu errors)\n",
              per_s, concurrency, tput_s, done.load(), pool_hits.load(), errors.size());
  std::cout << report.dump(2) << "\n";
  if (!json_out.empty()) {
    std::ofstream(json_out) << report.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace supermachine

int main(int argc, char** argv) { return supermachine::Main(argc, argv); }
