// File: vm_rpcs.h
// Helpers of the VM RPCs shared by the service and its tests: API ↔ domain conversions.
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/metrics/vm_net_stats.h"
#include "daemon/vm/vm_manager.h"
#include "proto/supermachine.pb.h"

namespace supermachine::api {

// AcquireRequest → AcquireOptions; InvalidArgument for bad ports, env (fixed at bake time:
// a pooled VM must equal a fresh one) or labels. `rpc_deadline` is the client's deadline.
absl::StatusOr<vm::AcquireOptions> AcquireOptionsFromProto(const v1::AcquireRequest& req,
                                                           absl::Time rpc_deadline);

// A worker's network counters onto the API message (InspectVM).
void VmNetStatsToProto(const metrics::VmNetStats& stats, v1::VMNetwork* out);

// The live parts of a handed-out VM (name, ports, vsock, pid, state running) onto `out`.
void VmViewToProto(const vm::VmView& view, v1::VM* out);

}  // namespace supermachine::api
