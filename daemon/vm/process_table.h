// File: process_table.h
// The host's processes as the daemon's crash recovery sees them (daemon/vm/reconcile.h): which
// pids exist, when each started (/proc/<pid>/stat field 22, so a reused pid is told apart from
// the worker that was journaled) and its argv (to recognise this daemon's workers: their
// `--control` socket lives in the daemon's VM directory). Behind an interface so the
// reconciliation is unit-tested against a made-up process list; ProcFs is the real one (its
// root is a parameter so the parser is tested against a fake /proc tree).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace supermachine::vm {

class ProcessTable {
 public:
  virtual ~ProcessTable() = default;
  // Every pid present.
  virtual std::vector<int> Pids() const = 0;
  // The start time of a live process; nullopt when `pid` is gone or a zombie (dead, not reaped).
  virtual std::optional<int64_t> StartTime(int pid) const = 0;
  // Its argv (empty when gone or unreadable, e.g. a kernel thread).
  virtual std::vector<std::string> Argv(int pid) const = 0;
  // Its parent's pid; nullopt when gone. A jailed worker's VMM is the child of the journaled
  // process (worker/jail/pid_namespace.h) and runs with the same argv.
  virtual std::optional<int> ParentPid(int pid) const = 0;
  // Sends `sig` to the process — to its whole process group when it leads one (a worker runs
  // in its own session and may have helpers, e.g. passt).
  virtual void Signal(int pid, int sig) = 0;
};

class ProcFs final : public ProcessTable {
 public:
  explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}
  std::vector<int> Pids() const override;
  std::optional<int64_t> StartTime(int pid) const override;
  std::vector<std::string> Argv(int pid) const override;
  std::optional<int> ParentPid(int pid) const override;
  void Signal(int pid, int sig) override;

 private:
  std::string root_;
};

struct ProcStat {
  char state = '?';         // field 3: R, S, D, Z, X, ...
  int ppid = 0;             // field 4
  int64_t start_time = 0;   // field 22: clock ticks after boot
};
// Parses one /proc/<pid>/stat line (comm, field 2, may hold spaces and parentheses).
absl::StatusOr<ProcStat> ParseProcStat(const std::string& line);

// The VM directory a worker's argv names through `--control <vm_dir>/<id>/control`
// ("" when `argv` is not a supermachine worker's with a control socket).
std::string WorkerVmDirOf(const std::vector<std::string>& argv);

// Polls until the process journaled as (pid, start_time) is gone (or a zombie); true if it went
// before `timeout`.
bool WaitGone(const ProcessTable& procs, int pid, int64_t start_time, absl::Duration timeout);

}  // namespace supermachine::vm
