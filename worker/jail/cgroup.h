// File: cgroup.h
// cgroup v2 limits for one worker: memory.max (guest RAM + VMM overhead), cpu.max (quota from
// the vCPU count), pids.max. The daemon names <parent>/sm-<vm id> with --cgroup; the worker
// creates it and moves itself in before it allocates guest memory or starts a thread, and
// writes the limits once the VM's size is known (a restore learns it from the snapshot) and
// before the first guest instruction, while it is still trusted and privileged. After the worker
// ended, memory.events' oom_kill says whether the kernel's OOM killer ended it (the daemon
// reports that as the VM's end cause), and the daemon removes the directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace supermachine::jail {

struct CgroupLimits {
  uint64_t memory_max_bytes = 0;  // 0: no limit written.
  uint32_t cpus = 0;              // cpu.max quota = cpus × period; 0: no limit written.
  uint64_t pids_max = 0;          // 0: no limit written.
};

// The worker's own footprint on top of guest RAM: measured at ~3.3 MiB RSS (docs/worker.md),
// plus page tables for guest RAM, per-thread stacks, vsock buffers (up to 256 KiB per
// connection), snapshot writing. Generous: hitting it kills the VM.
inline constexpr uint64_t kVmmOverheadBytes = 128ull << 20;
// Threads: one per vCPU, the event loop, passt is a child (its own process), headroom.
inline constexpr uint64_t kPidsMax = 64;
inline constexpr uint64_t kCpuPeriodUs = 100000;

CgroupLimits LimitsForVm(uint32_t mem_mib, uint32_t vcpus);

// Creates `dir` (its parent must be a cgroup v2 directory with the memory, cpu and pids
// controllers enabled in cgroup.subtree_control) and writes the limits.
absl::Status CreateWorkerCgroup(const std::string& dir, const CgroupLimits& limits);
// Writes `pid` to `dir`/cgroup.procs.
absl::Status JoinCgroup(const std::string& dir, int pid);
// memory.events' oom_kill counter; nullopt when unreadable (no cgroup, no memory controller).
std::optional<uint64_t> OomKillCount(const std::string& dir);
// Removes an empty cgroup directory (after the worker exited); NotFound is fine.
absl::Status RemoveCgroup(const std::string& dir);

}  // namespace supermachine::jail
