// File: vm_instance.h
// The seams of the VM domain: a VmInstance is one ready VM (a restored worker whose agent
// acknowledged the clone-identity handshake), a VmLauncher makes them. The pool and the
// manager only talk to these interfaces, so their logic (refill, max, timeouts, death,
// release) is unit-tested with fakes and no KVM; worker_launcher.h is the real implementation.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/store/store.h"

namespace supermachine::agent {
class AgentClient;
}

namespace supermachine::vm {

// How a worker process ended, in the store's terms.
struct VmEnd {
  store::EndCause cause = store::EndCause::kReleased;
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;
};

class VmInstance {
 public:
  virtual ~VmInstance() = default;  // Stops the worker if Stop was not called.
  virtual const std::string& id() const = 0;
  virtual int pid() const = 0;
  virtual const std::string& vsock_socket() const = 0;
  // The guest console (serial) log, what Logs streams.
  virtual const std::string& console_log() const = 0;
  // Null only in tests' fakes.
  virtual const agent::AgentClient* agent() const = 0;
  // The worker's control socket (`stats`: network counters, docs/networking.md); "" when
  // there is none (tests' fakes).
  virtual std::string control_socket() const { return ""; }
  // Non-blocking: set once the worker process has exited on its own (then reaped).
  virtual std::optional<VmEnd> CheckExited() = 0;
  // Ends the worker: control `exit`, then SIGTERM/SIGKILL after `grace`; reaps it. Idempotent.
  virtual void Stop(absl::Duration grace) = 0;
  // Leaves the worker running for the next daemon start to re-adopt (keep_vms_on_stop): its
  // files and sockets stay, and neither Stop nor the destructor touches it afterwards.
  virtual void Detach() = 0;
};

struct LaunchRequest {
  std::string vm_id;
  std::string name;
  std::string snapshot_name;
  std::string snapshot_dir;
  std::string labels_json = "{}";
  std::string hostname;  // empty: keep the snapshot's
  // Egress policy override (canonical text, worker/net/egress_policy.h); empty: the policy
  // saved in the snapshot. Non-empty needs a snapshot with a network device.
  std::string egress_policy;
  // Named volumes bound to volume slots: disk id ("v0") -> the volume's file. Every other
  // volume slot of the snapshot gets a private copy of its clean template for this VM alone
  // (volume_files.h); named volumes skip the pool (only fresh restores carry them).
  std::map<std::string, std::string> volume_files;
};

class VmLauncher {
 public:
  virtual ~VmLauncher() = default;
  // Restores a VM and completes the identity handshake before `deadline`. The VM is journaled
  // (store) before it runs and marked running once ready; on error nothing is left running and
  // the row (if any) is ended.
  virtual absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                            absl::Time deadline) = 0;
};

// The store's VM journal behind a seam (the store is one SQLite connection shared with the
// API under one mutex; tests record calls instead).
class VmJournal {
 public:
  virtual ~VmJournal() = default;
  virtual absl::Status Journal(const store::VmRecord& vm) = 0;
  virtual absl::Status MarkRunning(const std::string& id) = 0;
  // The VM was handed out: id, name, ports_json, labels_json and egress_policy of `vm`.
  virtual absl::Status Acquired(const store::VmRecord& vm) = 0;
  virtual absl::Status End(const std::string& id, const VmEnd& end) = 0;
};

}  // namespace supermachine::vm
