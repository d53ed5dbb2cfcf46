// File: reconcile.cc
#include "daemon/vm/reconcile.h"

#include <signal.h>

#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace supermachine::vm {
namespace {

std::string Normal(const std::string& path) {
  return std::filesystem::path(path).lexically_normal().string();
}

// The worker of `row` is alive: its pid exists with the journaled start time.
bool Matches(const store::VmRecord& row, const ProcessTable& procs) {
  if (!row.pid || !row.pid_start_time || *row.pid <= 1) {
    return false;
  }
  std::optional<int64_t> start = procs.StartTime(static_cast<int>(*row.pid));
  return start && *start == *row.pid_start_time;
}

}  // namespace

ReconcilePlan PlanReconcile(const std::vector<store::VmRecord>& rows, const ProcessTable& procs,
                            const std::string& vm_dir) {
  ReconcilePlan plan;
  std::set<int> kept;
  std::set<int> to_kill;
  for (const store::VmRecord& row : rows) {
    if (row.state == "ended") {
      continue;
    }
    if (!Matches(row, procs)) {
      plan.end.emplace_back(row, VmEnd{.cause = store::EndCause::kWorkerCrash});
      continue;
    }
    const int pid = static_cast<int>(*row.pid);
    if (row.state == "running" && row.acquired_ms.has_value()) {
      plan.adopt.push_back(row);
      kept.insert(pid);
    } else {
      // Pooled (never handed out) or interrupted mid-restore: nobody holds it.
      plan.end.emplace_back(row, VmEnd{.cause = store::EndCause::kReleased});
      to_kill.insert(pid);
      plan.kill.emplace_back(pid, *row.pid_start_time);
    }
  }
  // Workers of this VM directory that no row keeps (including ones never journaled).
  const std::string ours = Normal(vm_dir);
  for (int pid : procs.Pids()) {
    if (kept.count(pid) != 0 || to_kill.count(pid) != 0) {
      continue;
    }
    // A jailed worker's VMM runs, with the same argv, as the only child of the journaled
    // process (its PID namespace keeper, worker/jail/pid_namespace.h): it belongs to that VM.
    if (std::optional<int> parent = procs.ParentPid(pid); parent && kept.count(*parent) != 0) {
      continue;
    }
    const std::string dir = WorkerVmDirOf(procs.Argv(pid));
    if (dir.empty() || Normal(dir) != ours) {
      continue;
    }
    if (std::optional<int64_t> start = procs.StartTime(pid)) {
      plan.kill.emplace_back(pid, *start);
      to_kill.insert(pid);
    }
  }
  return plan;
}

ReconcileReport Reconcile(const std::vector<store::VmRecord>& rows, const std::string& vm_dir,
                          const ReconcileDeps& deps) {
  ReconcilePlan plan = PlanReconcile(rows, *deps.procs, vm_dir);
  ReconcileReport report;
  auto kill = [&](int pid, int64_t start_time) {
    // Re-checked right before the signal: never signal a process that reused the pid.
    std::optional<int64_t> now = deps.procs->StartTime(pid);
    if (!now || *now != start_time) {
      return;
    }
    deps.procs->Signal(pid, SIGKILL);
    if (WaitGone(*deps.procs, pid, start_time, deps.kill_wait)) {
      ++report.killed;
    } else {
      report.problems.push_back(absl::StrCat("worker pid ", pid, " survived SIGKILL for ",
                                             absl::FormatDuration(deps.kill_wait)));
    }
  };
  for (const auto& [pid, start] : plan.kill) {
    kill(pid, start);
  }
  for (const auto& [row, end] : plan.end) {
    if (absl::Status st = deps.journal->End(row.id, end); !st.ok()) {
      report.problems.push_back(absl::StrCat("end VM ", row.id, ": ", st.message()));
    }
    report.ended.push_back(row.id);
  }
  for (const store::VmRecord& row : plan.adopt) {
    absl::Status st = deps.adopt(row);
    if (st.ok()) {
      report.adopted.push_back(row.id);
      continue;
    }
    report.problems.push_back(absl::StrCat("re-adopt VM ", row.id, " (worker pid ", *row.pid,
                                           "): ", st.message(), "; its worker is killed"));
    kill(static_cast<int>(*row.pid), *row.pid_start_time);
    (void)deps.journal->End(row.id, VmEnd{.cause = store::EndCause::kWorkerCrash});
    report.ended.push_back(row.id);
  }
  // An ended VM's private volume copies (volume_files.h) go with it; its logs stay.
  if (!vm_dir.empty()) {
    for (const std::string& id : report.ended) {
      std::error_code ec;
      std::filesystem::remove_all(absl::StrCat(vm_dir, "/", id, "/volumes"), ec);
    }
  }
  return report;
}

std::optional<uint32_t> WorkerUidOf(const std::vector<std::string>& argv) {
  constexpr absl::string_view kFlag = "--uid";
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string value;
    if (absl::StartsWith(argv[i], absl::StrCat(kFlag, "="))) {
      value = argv[i].substr(kFlag.size() + 1);
    } else if (argv[i] == kFlag && i + 1 < argv.size()) {
      value = argv[i + 1];
    } else {
      continue;
    }
    uint32_t uid = 0;
    if (absl::SimpleAtoi(value, &uid) && uid != 0) {
      return uid;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace supermachine::vm
