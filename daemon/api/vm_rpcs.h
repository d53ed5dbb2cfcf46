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

// The live parts of a handed-out VM (name, ports, vsock, pid, state running, supervision:
// policy, restarts, last exit, health) onto `out`.
void VmViewToProto(const vm::VmView& view, v1::VM* out);

// A journaled VM's supervision (policy, restart count, last exit) onto `out`: what ListVMs
// shows for VMs the manager no longer holds (ended ones, with `smctl ps -a`).
void VmRowSupervisionToProto(const store::VmRecord& row, v1::VM* out);

// The API's health check with its defaults filled in (interval and timeout 30 s, 3 retries);
// InvalidArgument (naming the field) for values the supervisor refuses.
absl::StatusOr<vm::HealthCheck> HealthCheckFromProto(const v1::HealthCheck& check);

}  // namespace supermachine::api
