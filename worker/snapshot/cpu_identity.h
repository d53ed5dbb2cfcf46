// File: cpu_identity.h
// The CPU a snapshot's guest saw, and whether this host can offer it again: same vendor, and
// every feature bit the guest was shown (it may already be using them: a restored guest that
// executes an instruction the new host lacks dies with #UD long after the restore "worked").
#pragma once

#include "absl/status/status.h"
#include "proto/snapshot.pb.h"
#include "worker/kvm/kvm.h"

namespace supermachine::snapshot {

// Vendor, family/model/stepping and the feature words of `cpuid` (a vCPU's table as set, or
// the host's normalized supported table).
::supermachine::snapshot::v1::CpuIdentity CpuIdentityFromCpuid(const kvm::CpuidList& cpuid);

// OK when `host` can run a guest that saw `saved`; else FailedPrecondition naming the vendor or
// the missing feature bits (leaf, register, mask).
absl::Status CheckCpuCompatible(const ::supermachine::snapshot::v1::CpuIdentity& saved,
                                const ::supermachine::snapshot::v1::CpuIdentity& host);

}  // namespace supermachine::snapshot
