// File: orphan_sweep.cc
#include "daemon/bake/orphan_sweep.h"

#include <signal.h>

#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/bake/worker_booter.h"

namespace supermachine::bake {
namespace {

std::string Normal(const std::string& path) {
  std::string n = std::filesystem::path(path).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') {
    n.pop_back();
  }
  return n;
}

// The value following `flag` in `argv` ("" if absent).
std::string FlagValue(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) {
      return argv[i + 1];
    }
  }
  return "";
}

// The /tmp/smbake-* dir holding the worker's control socket ("" if it is not such a dir, so
// nothing else is ever removed).
std::string SocketDirOf(const std::vector<std::string>& argv) {
  const std::string control = FlagValue(argv, "--control");
  const std::filesystem::path dir = std::filesystem::path(control).lexically_normal().parent_path();
  if (control.empty() || dir.parent_path() != std::filesystem::path(kBakeSocketDirPrefix).parent_path() ||
      !absl::StartsWith(dir.filename().string(),
                        std::filesystem::path(kBakeSocketDirPrefix).filename().string())) {
    return "";
  }
  return dir.string();
}

}  // namespace

std::string BakeWorkDirOf(const std::vector<std::string>& argv) {
  constexpr absl::string_view kFile = "file:";
  const std::string serial = FlagValue(argv, "--serial");
  if (!absl::StartsWith(serial, kFile)) {
    return "";
  }
  const std::filesystem::path console(serial.substr(kFile.size()));
  if (console.filename() != "console.log" || !console.is_absolute()) {
    return "";
  }
  return Normal(console.parent_path().string());
}

std::vector<OrphanBakeWorker> FindOrphanBakeWorkers(const vm::ProcessTable& procs,
                                                    const std::vector<std::string>& work_dirs) {
  std::set<std::string> ours;
  for (const std::string& d : work_dirs) {
    if (!d.empty()) {
      ours.insert(Normal(d));
    }
  }
  std::vector<OrphanBakeWorker> found;
  if (ours.empty()) {
    return found;
  }
  for (int pid : procs.Pids()) {
    if (pid <= 1) {
      continue;
    }
    const std::vector<std::string> argv = procs.Argv(pid);
    const std::string dir = BakeWorkDirOf(argv);
    if (dir.empty() || ours.count(dir) == 0) {
      continue;
    }
    if (std::optional<int64_t> start = procs.StartTime(pid)) {
      found.push_back({.pid = pid, .start_time = *start, .work_dir = dir,
                       .socket_dir = SocketDirOf(argv)});
    }
  }
  return found;
}

OrphanSweepReport KillOrphanBakeWorkers(vm::ProcessTable& procs,
                                        const std::vector<OrphanBakeWorker>& workers,
                                        absl::Duration wait) {
  OrphanSweepReport report;
  for (const OrphanBakeWorker& w : workers) {
    // Re-checked right before the signal: never signal a process that reused the pid.
    std::optional<int64_t> now = procs.StartTime(w.pid);
    if (!now || *now != w.start_time) {
      continue;
    }
    procs.Signal(w.pid, SIGKILL);
    if (!vm::WaitGone(procs, w.pid, w.start_time, wait)) {
      report.problems.push_back(absl::StrCat("bake worker pid ", w.pid, " survived SIGKILL for ",
                                             absl::FormatDuration(wait)));
      continue;
    }
    if (!w.socket_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(w.socket_dir, ec);
      if (ec) {
        report.problems.push_back(
            absl::StrCat("remove bake socket dir ", w.socket_dir, ": ", ec.message()));
      }
    }
    report.killed.push_back(w);
  }
  return report;
}

}  // namespace supermachine::bake
