// File: reconcile.h
// Crash recovery of VMs at daemon start (issue 9, docs/operations.md "Restarts and crashes").
// The store journals each worker's pid and process start time before its VM runs, and workers
// run in their own session, so a daemon killed with SIGKILL leaves them running. On the next
// start the daemon compares the store's non-ended VM rows with the live processes:
//
// - a handed-out VM (acquired_ms set, state running) whose worker still matches its journal
//   entry (same pid, same start time) is re-adopted: agent reconnected, back in ListVMs, Exec
//   works, its port forwards rebound to the same host ports;
// - a pooled VM nobody acquired, or a VM whose restore the crash interrupted ('starting'), is
//   stopped and ended `released`: the pool refills with fresh restores, so a pooled VM always
//   has the config of the daemon that hands it out (a restart may come with a new config);
// - a row whose worker is gone (or whose pid now belongs to another process) is ended
//   `worker_crash`: the worker died while nobody watched, its exit status is lost;
// - any other live process that is a worker of this daemon's VM directory (spawned, then the
//   daemon died before journaling it) is killed: no process leaks.
//
// PlanReconcile decides (pure, unit-tested); Reconcile carries the plan out.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/store/store.h"
#include "daemon/vm/process_table.h"
#include "daemon/vm/vm_instance.h"

namespace supermachine::vm {

struct ReconcilePlan {
  // Handed-out VMs whose worker lives: re-adopt.
  std::vector<store::VmRecord> adopt;
  // Rows to end (and why); their worker, if alive, is in `kill`.
  std::vector<std::pair<store::VmRecord, VmEnd>> end;
  // Live workers (pid, start time) of this VM directory that nothing keeps: kill.
  std::vector<std::pair<int, int64_t>> kill;
};

// `rows`: the store's non-ended VMs. `vm_dir`: the daemon's VM directory (workers' --control
// sockets live in <vm_dir>/<id>/).
ReconcilePlan PlanReconcile(const std::vector<store::VmRecord>& rows, const ProcessTable& procs,
                            const std::string& vm_dir);

struct ReconcileReport {
  std::vector<std::string> adopted;  // VM ids
  std::vector<std::string> ended;    // VM ids (including adoptions that failed)
  size_t killed = 0;                 // worker processes killed
  std::vector<std::string> problems; // one line each, for the log
};

struct ReconcileDeps {
  ProcessTable* procs = nullptr;
  VmJournal* journal = nullptr;
  // Re-adopts one VM (reconnect its agent, hand it to the VmManager); an error means the VM
  // cannot be used: its worker is killed and the row ended `worker_crash`.
  std::function<absl::Status(const store::VmRecord&)> adopt;
  // Bound on a killed worker's disappearance.
  absl::Duration kill_wait = absl::Seconds(10);
};

ReconcileReport Reconcile(const std::vector<store::VmRecord>& rows, const std::string& vm_dir,
                          const ReconcileDeps& deps);

// The uid a worker was started to run as: `--uid=N` (or `--uid N`) in its argv, which the
// journaled process (a jailed worker's PID namespace keeper) keeps for its whole life. A
// re-adopted VM's uid is read back from here and held in the daemon's uid pool
// (worker_launcher.h, uid_pool.h), so no new VM is given it while the worker lives; this
// needs no store column and also covers workers started before the pool was configured.
// nullopt without a valid, non-root id.
std::optional<uint32_t> WorkerUidOf(const std::vector<std::string>& argv);

}  // namespace supermachine::vm
