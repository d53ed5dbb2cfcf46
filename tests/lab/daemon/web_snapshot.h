// File: web_snapshot.h
// What the daemon lab tests start from: a busybox guest (agent + httpd on port 8000 serving
// "hello-from-guest") booted and snapshotted directly through the worker's control socket,
// then registered in the daemon's store as a bake would; or a busybox OCI layout for the
// daemon to bake itself — and a gRPC Exec helper.
#pragma once

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/supermachine.grpc.pb.h"

namespace supermachine::lab {

inline constexpr uint32_t kWebGuestPort = 8000;

struct WebSnapshotOptions {
  std::string kernel;      // the guest vmlinux
  std::string worker_bin;  // supermachine-worker
  std::string agent_bin;   // guest-agent
  std::string work_dir;    // scratch for the booted VM
  std::string state_dir;   // the daemon's state dir: the snapshot goes to snapshots/<name>
  std::string name = "web";
  uint32_t mem_mib = 256;
};

// Boots, waits (generously: emulated guests are slow) for the httpd listener, snapshots,
// stops the booted VM and records the snapshot in <state_dir>/store.db. Returns the
// snapshot dir; on failure the status carries the guest's diagnostics.
absl::StatusOr<std::string> MakeWebSnapshot(const WebSnapshotOptions& options);

// Writes an OCI layout to `dir` (tag "v1") whose one layer holds busybox at /bin/busybox and
// whose Cmd is `cmd`; `work` is scratch for the layer tar. Errors name the step.
absl::Status WriteBusyboxLayout(const std::string& dir, const std::string& work,
                                const std::vector<std::string>& cmd);

struct ExecOut {
  int code = -1;  // exit code, or 128+signal
  std::string out;
  std::string err;  // stderr, then "grpc: <message>" when the call failed
  grpc::StatusCode status = grpc::StatusCode::OK;
};

// Runs argv in `vm` over the public Exec RPC (no stdin), with a 120 s deadline.
ExecOut ExecIn(v1::Supermachine::Stub& stub, const std::string& vm,
               const std::vector<std::string>& argv);

}  // namespace supermachine::lab
