// File: snapshot_bench.cc
// Snapshot benchmark, our side (tests/bench/snapshot/README.md): a guest with the real agent
// (tests/lab/agent/agent_vm.h) is cold-booted to its first agent ping several times, then
// snapshotted; restores are timed from spawning the worker to the agent's first ping, and
// 1/10/50 clones restored at once are measured for private memory (smaps_rollup). The QEMU
// peer (qemu_restore.py) runs in the same lab run. A benchmark: prints numbers, asserts none.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "tests/lab/agent/agent_vm.h"

namespace supermachine::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "snapshot_bench: %s\n", msg.c_str());
  std::exit(1);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json Summarize(std::vector<double> v) {
  if (v.empty()) {
    return json::object();
  }
  std::sort(v.begin(), v.end());
  auto median = [](const std::vector<double>& x) {
    const size_t n = x.size();
    return n % 2 == 1 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  };
  const double med = median(v);
  std::vector<double> dev;
  for (double x : v) {
    dev.push_back(std::fabs(x - med));
  }
  std::sort(dev.begin(), dev.end());
  return {{"median", med}, {"mad", median(dev)}, {"min", v.front()}, {"max", v.back()},
          {"n", v.size()}, {"values", v}};
}

struct Rss {
  double private_mib = 0;        // Private_Clean + Private_Dirty
  double private_dirty_mib = 0;
  double pss_mib = 0;
};
Rss ReadRss(pid_t pid) {
  Rss r;
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    double kb = 0;
    if (!(ls >> key >> kb)) {
      continue;
    }
    if (key == "Private_Clean:") {
      r.private_mib += kb / 1024;
    } else if (key == "Private_Dirty:") {
      r.private_mib += kb / 1024;
      r.private_dirty_mib += kb / 1024;
    } else if (key == "Pss:") {
      r.pss_mib = kb / 1024;
    }
  }
  return r;
}

int Main(int argc, char** argv) {
  CLI::App app{"Snapshot benchmark: restore-to-agent-ping vs cold boot; clone memory"};
  int boot_runs = 3;
  int restore_runs = 9;
  std::string clone_counts = "1,10,50";
  uint32_t mem_mib = 256;
  std::string json_out;
  std::string agent_bin = SM_GUEST_AGENT_BIN;
  app.add_option("--boot-runs", boot_runs, "cold boots to agent ping")->capture_default_str();
  app.add_option("--restore-runs", restore_runs, "restores to agent ping")->capture_default_str();
  app.add_option("--clones", clone_counts, "clone counts for the memory rows")
      ->capture_default_str();
  app.add_option("--mem-mib", mem_mib, "guest RAM")->capture_default_str();
  app.add_option("--agent", agent_bin, "static guest-agent binary")->capture_default_str();
  app.add_option("--json", json_out, "also write the JSON here");
  CLI11_PARSE(app, argc, argv);
  // Workers inherit it and print their setup phases (worker/vmm: MarkPhase) to their logs.
  setenv("SUPERMACHINE_WORKER_TIMING", "1", 1);

  const std::string kernel_dir = lab::KernelDir(SM_SOURCE_DIR);
  if (kernel_dir.empty()) {
    Die("guest kernel not built: run kernel/build.sh or set SM_KERNEL_DIR");
  }
  const std::string work = absl::StrCat(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                                        "/sm-snapshot-bench-", getpid());
  fs::create_directories(work);
  auto options = [&](const std::string& name) {
    return lab::AgentVmOptions{.work_dir = work,
                               .name = name,
                               .worker_bin = SM_WORKER_BIN,
                               .agent_bin = agent_bin,
                               .kernel = kernel_dir + "/vmlinux",
                               .vcpus = 1,
                               .mem_mib = mem_mib,
                               .boot_timeout = absl::Seconds(900)};
  };
  json report = {{"mem_mib", mem_mib}, {"vcpus", 1}};

  // (a) Cold boot to the first agent ping; the last boot stays up for the snapshot.
  std::vector<double> boot_ms;
  std::unique_ptr<lab::AgentVm> origin;
  for (int i = 0; i < boot_runs; ++i) {
    const absl::Time t0 = absl::Now();
    auto vm = lab::AgentVm::Boot(options(absl::StrCat("boot", i)));
    if (!vm.ok()) {
      Die(vm.status().ToString());
    }
    boot_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    std::cerr << absl::StrFormat("snapshot_bench: cold boot %d: %.0f ms\n", i, boot_ms.back());
    if (i + 1 < boot_runs) {
      (void)(*vm)->Shutdown(absl::Seconds(60));
    } else {
      origin = std::move(*vm);
    }
  }
  report["cold_boot_to_ping_ms"] = Summarize(boot_ms);

  const std::string snap = work + "/snap";
  const absl::Time s0 = absl::Now();
  if (absl::Status st = origin->Snapshot(snap); !st.ok()) {
    Die(st.ToString());
  }
  report["snapshot_ms"] = absl::ToDoubleMilliseconds(absl::Now() - s0);
  (void)origin->Shutdown(absl::Seconds(60));
  report["memory_file_bytes"] = fs::file_size(snap + "/memory");

  // Restore to the first agent ping (the agent's vsock answers only once the guest runs).
  std::vector<double> restore_ms;
  std::vector<double> first_run_ms;
  for (int i = 0; i < restore_runs; ++i) {
    const absl::Time t0 = absl::Now();
    auto vm = lab::AgentVm::Restore(options(absl::StrCat("restore", i)), snap);
    if (!vm.ok()) {
      Die(vm.status().ToString());
    }
    restore_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    // The worker's own start → first KVM_RUN (SUPERMACHINE_WORKER_TIMING, set below).
    const std::string log = Slurp(absl::StrCat(work, "/restore", i, ".worker.log"));
    const size_t at = log.find("start_to_first_kvm_run_us=");
    if (at != std::string::npos) {
      first_run_ms.push_back(std::stod(log.substr(at + 26)) / 1000);
    }
    std::cerr << absl::StrFormat("snapshot_bench: restore %d: %.0f ms (%s)\n", i,
                                 restore_ms.back(),
                                 at == std::string::npos ? "" : log.substr(at, log.find('\n', at) - at));
  }
  report["restore_to_ping_ms"] = Summarize(restore_ms);
  report["restore_to_first_kvm_run_ms"] = Summarize(first_run_ms);

  // Clone memory: n clones restored at once, measured once all answer.
  json clones = json::array();
  for (absl::string_view part : absl::StrSplit(clone_counts, ',')) {
    const int n = std::stoi(std::string(part));
    std::vector<std::unique_ptr<lab::AgentVm>> vms(n);
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    const absl::Time t0 = absl::Now();
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        auto vm = lab::AgentVm::Restore(options(absl::StrCat("clone", n, "-", i)), snap);
        if (vm.ok()) {
          vms[i] = std::move(*vm);
        } else {
          errors[i] = vm.status().ToString();
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    const double all_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    // A clone that fails is a finding to report, not a reason to lose the other numbers.
    json failures = json::array();
    for (const std::string& e : errors) {
      if (!e.empty()) {
        std::cerr << "snapshot_bench: clone FAILED: " << e << "\n";
        failures.push_back(e.substr(0, 2000));
      }
    }
    std::vector<double> priv;
    std::vector<double> dirty;
    std::vector<double> pss;
    for (const auto& vm : vms) {
      if (vm == nullptr) {
        continue;
      }
      const Rss r = ReadRss(vm->worker_pid());
      priv.push_back(r.private_mib);
      dirty.push_back(r.private_dirty_mib);
      pss.push_back(r.pss_mib);
    }
    double total = 0;
    double dirty_total = 0;
    for (size_t i = 0; i < priv.size(); ++i) {
      total += priv[i];
      dirty_total += dirty[i];
    }
    const double up = std::max<double>(1, static_cast<double>(priv.size()));
    std::cerr << absl::StrFormat(
        "snapshot_bench: %d clones (%d failed): all answered after %.0f ms, private %.2f "
        "MiB/clone (%.1f MiB total), private dirty %.2f MiB/clone (%.1f MiB total)\n",
        n, failures.size(), all_ms, total / up, total, dirty_total / up, dirty_total);
    clones.push_back({{"clones", n},
                      {"failed", failures},
                      {"all_answered_ms", all_ms},
                      {"private_mib_total", total},
                      {"private_dirty_mib_total", dirty_total},
                      {"private_mib_per_clone", Summarize(priv)},
                      {"private_dirty_mib_per_clone", Summarize(dirty)},
                      {"pss_mib_per_clone", Summarize(pss)}});
    vms.clear();  // Terminates the workers.
  }
  report["clones"] = clones;
  std::cout << report.dump(2) << "\n";
  if (!json_out.empty()) {
    std::ofstream(json_out) << report.dump(2) << "\n";
  }
  fs::remove_all(work);
  return 0;
}

}  // namespace
}  // namespace supermachine::agent

int main(int argc, char** argv) { return supermachine::agent::Main(argc, argv); }
