// File: store.h
// Store: supermachined's source of truth (SQLite, WAL). Records bakes (including ones in
// progress, so a crash is found on restart), snapshots and the layers they use, and journals
// every VM's worker (pid + process start time) before the VM starts, so a restarted daemon can
// re-adopt or reap it. All multi-row writes are single transactions.
//
// Lifecycle of a bake row: BeginBake → 'running' → FinishBake → 'succeeded' | 'failed'.
// A 'running' row found by RecoverInterruptedBakes (daemon restart) becomes 'failed' and is
// returned so the caller can delete its temp dir.
// Lifecycle of a VM row: JournalVm ('starting') → MarkVmRunning → [MarkVmAcquired: handed out,
// with its name and forwarded ports] → EndVm (typed cause). A restarted daemon re-adopts the
// running, handed-out rows whose worker still lives (daemon/vm/reconcile.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/store/database.h"

namespace supermachine::store {

struct BakeRecord {
  int64_t id = 0;
  std::string bake_key;
  std::string request_json;
  std::string status;  // running | succeeded | failed
  std::string error;
  std::string timings_json;
  std::string temp_dir;
  std::string cheap_key;  // "" until SetBakeKeys (migration 2)
  std::string delta_key;
  int64_t started_ms = 0;
  std::optional<int64_t> finished_ms;
};

struct SnapshotRecord {
  std::string name;
  std::optional<int64_t> bake_id;
  std::string bake_key;
  std::string path;
  int64_t created_ms = 0;
  int64_t size_bytes = 0;
  std::string metadata_json;
  std::vector<std::string> layer_digests;  // bottom layer first
  std::string cheap_key;  // the bake cheap key that last led to this snapshot ("" = none)
};

struct LayerRecord {
  std::string digest;
  std::string sqfs_path;
  int64_t size_bytes = 0;
};

// Typed end causes, as in the public API's EndCause.
enum class EndCause { kExited, kKilled, kGuestOom, kDeadline, kWorkerCrash, kSnapshotIncompatible, kReleased };
const char* EndCauseName(EndCause cause);

struct VmRecord {
  std::string id;
  std::string name;
  std::string snapshot_name;
  std::string state;  // starting | running | ended
  std::optional<int64_t> pid;
  std::optional<int64_t> pid_start_time;  // /proc/<pid>/stat field 22, to tell pid reuse apart
  std::string control_socket;
  std::string ports_json = "[]";
  std::string labels_json = "{}";
  std::optional<std::string> end_cause;
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;
  int64_t created_ms = 0;
  std::optional<int64_t> ended_ms;
  std::optional<int64_t> acquired_ms;  // set when handed out by Acquire (migration 3)
  std::string egress_policy;           // the Acquire's override, "" = the snapshot's own
  // Supervision (migration 4, daemon/vm/supervisor.h), set by MarkVmAcquired.
  std::string restart_policy;  // "" | "no" | "on-failure[:N]" | "always"
  std::string health_json;     // "" = no health check
  int64_t restart_count = 0;   // restarts of this VM's name before this run
  std::optional<std::string> last_exit_cause;  // how the previous run stopped (if restarted)
  std::optional<int64_t> last_exit_code;
  std::optional<int64_t> last_exit_signal;
  std::optional<int64_t> last_exit_ms;
};

// A named volume (migration 5, daemon/vm/named_volumes.h).
struct VolumeRecord {
  std::string name;
  std::string path;
  int64_t size_bytes = 0;
  int64_t created_ms = 0;
  std::string attached_vm;  // "" = free (a VM whose row ended holds nothing)
  std::string guest_path;   // where it is mounted in attached_vm ("" when free)
};

class Store {
 public:
  using Clock = std::function<int64_t()>;  // milliseconds since the Unix epoch

  // Opens (creating and migrating) the store at `path`.
  static absl::StatusOr<Store> Open(const std::string& path, Clock now_ms);

  // --- bakes
  absl::StatusOr<int64_t> BeginBake(const std::string& bake_key, const std::string& request_json,
                                    const std::string& temp_dir);
  absl::Status FinishBake(int64_t id, bool succeeded, const std::string& error,
                          const std::string& timings_json);
  absl::StatusOr<BakeRecord> GetBake(int64_t id);
  // Records a bake's keys as the pipeline learns them (the bake key only after the pull).
  absl::Status SetBakeKeys(int64_t id, const std::string& cheap_key, const std::string& delta_key,
                           const std::string& bake_key);
  absl::StatusOr<std::vector<BakeRecord>> RecoverInterruptedBakes();

  // --- layers and snapshots
  absl::Status PutLayer(const LayerRecord& layer);
  // Inserts or replaces the snapshot and its layer list atomically. Its layers must exist.
  absl::Status PutSnapshot(const SnapshotRecord& snapshot);
  absl::StatusOr<SnapshotRecord> GetSnapshot(const std::string& name);
  // A full-key cache hit re-keys the snapshot so the next identical request hits the cheap key.
  absl::Status SetSnapshotCheapKey(const std::string& name, const std::string& cheap_key);
  absl::StatusOr<std::vector<SnapshotRecord>> ListSnapshots();
  // FailedPrecondition while a non-ended VM uses it; NotFound if unknown.
  absl::Status RemoveSnapshot(const std::string& name);
  // Layers no image and no snapshot refers to (candidates for garbage collection).
  absl::StatusOr<std::vector<LayerRecord>> UnreferencedLayers();
  absl::Status RemoveLayer(const std::string& digest);

  // --- VM journal
  absl::Status JournalVm(const VmRecord& vm);
  absl::Status MarkVmRunning(const std::string& id);
  // Records the hand-out of running VM `vm.id`: its name, forwarded ports (ports_json: array
  // of {host_address, host_port, guest_port}, host ports as bound), labels and egress policy,
  // and its supervision: restart policy, health check, restart count and last exit.
  absl::Status MarkVmAcquired(const VmRecord& vm);
  absl::Status EndVm(const std::string& id, EndCause cause, std::optional<int64_t> exit_code,
                     std::optional<int64_t> signal);
  absl::StatusOr<VmRecord> GetVm(const std::string& id);
  // Non-ended VMs, or all with `include_ended`.
  absl::StatusOr<std::vector<VmRecord>> ListVms(bool include_ended);

  // --- named volumes. A volume is attached to at most one live VM; a VM row that has ended
  // (or a daemon crash between) frees its volumes without any call.
  // AlreadyExists if the name is taken. created_ms is set here.
  absl::Status CreateVolume(const VolumeRecord& volume);
  // NotFound naming the volume.
  absl::StatusOr<VolumeRecord> GetVolume(const std::string& name);
  absl::StatusOr<std::vector<VolumeRecord>> ListVolumes();
  // Binds `name` to `vm_id` at `guest_path`. Allowed when the volume is free, already bound
  // to `vm_id`, or bound to `replacing` (a supervised VM's previous run handing it over);
  // FailedPrecondition naming the VM that holds it otherwise, NotFound for an unknown name.
  absl::Status AttachVolume(const std::string& name, const std::string& vm_id,
                            const std::string& guest_path, const std::string& replacing = "");
  // Frees what `vm_id` holds (all its volumes, or just `name`). No error when it holds none.
  absl::Status DetachVolumes(const std::string& vm_id, const std::string& name = "");
  // Deletes the row; FailedPrecondition naming the VM while attached, NotFound if unknown.
  absl::Status RemoveVolume(const std::string& name);

 private:
  Store(Database db, Clock now_ms) : db_(std::move(db)), now_ms_(std::move(now_ms)) {}
  absl::StatusOr<std::vector<std::string>> SnapshotLayers(const std::string& name);

  Database db_;
  Clock now_ms_;
};

}  // namespace supermachine::store
