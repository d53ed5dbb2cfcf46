// File: fake_process_table.h
// A made-up host process table (daemon/vm/process_table.h) for the crash-recovery tests of
// both the VM reconciliation (unit/pool/reconcile_test.cc) and the bake orphan sweep
// (unit/bake/orphan_sweep_test.cc): pids with a start time and an argv, and a record of every
// signal sent. SIGKILL removes the process unless the test made it unkillable (a process that
// outlives the kill, as one stuck in uninterruptible sleep would).
#pragma once

#include <signal.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "daemon/vm/process_table.h"

namespace supermachine::vm::testing {

class FakeProcessTable : public ProcessTable {
 public:
  struct Proc {
    int64_t start = 0;
    std::vector<std::string> argv;
    int ppid = 1;
  };
  std::vector<int> Pids() const override {
    std::vector<int> out;
    out.reserve(procs_.size());
    for (const auto& [pid, p] : procs_) {
      out.push_back(pid);
    }
    return out;
  }
  std::optional<int64_t> StartTime(int pid) const override {
    auto it = procs_.find(pid);
    return it == procs_.end() ? std::nullopt : std::optional<int64_t>(it->second.start);
  }
  std::vector<std::string> Argv(int pid) const override {
    auto it = procs_.find(pid);
    return it == procs_.end() ? std::vector<std::string>{} : it->second.argv;
  }
  std::optional<int> ParentPid(int pid) const override {
    auto it = procs_.find(pid);
    return it == procs_.end() ? std::nullopt : std::optional<int>(it->second.ppid);
  }
  void Signal(int pid, int sig) override {
    signals_.emplace_back(pid, sig);
    if (sig == SIGKILL && unkillable_.count(pid) == 0) {
      procs_.erase(pid);
    }
  }

  std::map<int, Proc> procs_;
  std::set<int> unkillable_;
  std::vector<std::pair<int, int>> signals_;  // (pid, signal) in the order sent
};

}  // namespace supermachine::vm::testing
