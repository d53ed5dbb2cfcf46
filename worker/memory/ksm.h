// File: ksm.h
// Opt-in KSM for guest RAM (--ksm, docs/memory.md): MADV_MERGEABLE on every region lets the
// kernel's ksmd merge identical pages of different VMs (restored clones of one snapshot that
// each wrote the same data, zero pages) into one copy-on-write page. Off by default: ksmd
// costs CPU, and merging across VMs opens timing side channels between tenants.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "worker/memory/guest_memory.h"

namespace supermachine::memory {

// Marks every region of `mem` MADV_MERGEABLE. Only private RAM can merge (a restore's
// MAP_PRIVATE RAM file): shared RAM (a booted VM's memfd, kept shared for snapshots) is
// FailedPrecondition, since the kernel would accept the advice and silently skip it. A kernel
// without CONFIG_KSM refuses the advice: Unimplemented.
absl::Status MarkMergeable(const GuestMemory& mem);

// Why merging will not happen yet although the advice was taken, or "" when ksmd runs:
// /sys/kernel/mm/ksm/run (at `run_path`) must read 1.
std::string KsmOffNotice(const std::string& run_path = "/sys/kernel/mm/ksm/run");

}  // namespace supermachine::memory
