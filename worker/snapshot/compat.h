// File: compat.h
// Whether a loaded snapshot can be restored here and as asked: vCPU count, guest identity
// (kernel, agent), CPU identity, and the internal consistency a restore relies on (one state
// per vCPU, memory layout present).
// Run before any KVM object is created, so an incompatible restore fails with a message and
// never with a half-built VM or a guest that hangs later.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "proto/snapshot.pb.h"
#include "worker/snapshot/guest_identity.h"

namespace supermachine::snapshot {

struct RestoreTarget {
  // This host's CPU as the worker would show it to a guest (CpuIdentityFromCpuid of the
  // normalized supported CPUID).
  ::supermachine::snapshot::v1::CpuIdentity host_cpu;
  // A vCPU count the caller insists on (e.g. --vcpus given with --restore); nullopt: take the
  // snapshot's.
  std::optional<uint32_t> vcpu_count;
  // The kernel/agent the caller wants (--kernel-sha256, --agent-version); empty: any.
  ExpectedIdentity guest;
};

absl::Status CheckRestorable(const ::supermachine::snapshot::v1::SnapshotState& state,
                             const RestoreTarget& target);

}  // namespace supermachine::snapshot
