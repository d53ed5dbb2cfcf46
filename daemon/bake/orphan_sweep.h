// File: orphan_sweep.h
// Bake workers orphaned by a daemon crash (docs/faults.md). A bake's worker runs in its own
// session and is journaled nowhere, so a `kill -9` of the daemon mid-bake leaves it running
// (a booted guest and its RAM). What ties it to this daemon is its argv: the console goes to
// `--serial file:<bake temp dir>/console.log`, and the bake temp dir is recorded in the bake's
// row of this daemon's store. At startup (Baker::Create) the rows the crash left 'running' name
// exactly the temp dirs whose workers are orphans; a worker of another daemon (another store)
// names a temp dir this store never recorded and is left alone.
//
// FindOrphanBakeWorkers decides (pure, unit-tested against a made-up process table);
// KillOrphanBakeWorkers carries it out with reconcile.cc's pid-reuse check: the start time is
// re-read right before the signal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/vm/process_table.h"

namespace supermachine::bake {

struct OrphanBakeWorker {
  int pid = 0;
  int64_t start_time = 0;  // /proc/<pid>/stat field 22 when found
  std::string work_dir;    // the bake temp dir its console names
  std::string socket_dir;  // its /tmp/smbake-* socket dir, "" if its argv names none
};

// The bake temp dir a worker's argv names through `--serial file:<dir>/console.log`
// ("" when `argv` is not a bake worker's).
std::string BakeWorkDirOf(const std::vector<std::string>& argv);

// Live processes whose argv names one of `work_dirs` (this daemon's interrupted bakes' temp
// dirs) as its console's directory.
std::vector<OrphanBakeWorker> FindOrphanBakeWorkers(const vm::ProcessTable& procs,
                                                    const std::vector<std::string>& work_dirs);

struct OrphanSweepReport {
  std::vector<OrphanBakeWorker> killed;
  std::vector<std::string> problems;  // one line each, for the log
};

// SIGKILLs each worker (its process group: the worker leads its session) if its pid still has
// the start time it was found with, waits up to `wait` for it to go, then removes its socket
// dir. Leaves the temp dirs to the caller.
OrphanSweepReport KillOrphanBakeWorkers(vm::ProcessTable& procs,
                                        const std::vector<OrphanBakeWorker>& workers,
                                        absl::Duration wait);

}  // namespace supermachine::bake
