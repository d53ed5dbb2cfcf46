// File: store.cc
#include "daemon/store/store.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/store/migrations.h"
#include "worker/base/status_macros.h"

namespace supermachine::store {
namespace {

constexpr char kBakeColumns[] =
    "id, bake_key, request_json, status, ifnull(error,''), ifnull(timings_json,''), "
    "ifnull(temp_dir,''), started_ms, finished_ms, ifnull(cheap_key,''), ifnull(delta_key,'')";

BakeRecord ReadBake(const Statement& s) {
  BakeRecord b;
  b.id = s.ColumnInt(0);
  b.bake_key = s.ColumnText(1);
  b.request_json = s.ColumnText(2);
  b.status = s.ColumnText(3);
  b.error = s.ColumnText(4);
  b.timings_json = s.ColumnText(5);
  b.temp_dir = s.ColumnText(6);
  b.cheap_key = s.ColumnText(9);
  b.delta_key = s.ColumnText(10);
  b.started_ms = s.ColumnInt(7);
  if (!s.ColumnIsNull(8)) {
    b.finished_ms = s.ColumnInt(8);
  }
  return b;
}

constexpr char kVmColumns[] =
    "id, ifnull(name,''), ifnull(snapshot_name,''), state, pid, pid_start_time, "
    "ifnull(control_socket,''), ports_json, labels_json, end_cause, exit_code, signal, "
    "created_ms, ended_ms, acquired_ms, egress_policy, restart_policy, health_json, restart_count, "
    "last_exit_cause, last_exit_code, last_exit_signal, last_exit_ms";

std::optional<int64_t> OptInt(const Statement& s, int col) {
  if (s.ColumnIsNull(col)) {
    return std::nullopt;
  }
  return s.ColumnInt(col);
}

VmRecord ReadVm(const Statement& s) {
  VmRecord v;
  v.id = s.ColumnText(0);
  v.name = s.ColumnText(1);
  v.snapshot_name = s.ColumnText(2);
  v.state = s.ColumnText(3);
  v.pid = OptInt(s, 4);
  v.pid_start_time = OptInt(s, 5);
  v.control_socket = s.ColumnText(6);
  v.ports_json = s.ColumnText(7);
  v.labels_json = s.ColumnText(8);
  if (!s.ColumnIsNull(9)) {
    v.end_cause = s.ColumnText(9);
  }
  v.exit_code = OptInt(s, 10);
  v.signal = OptInt(s, 11);
  v.created_ms = s.ColumnInt(12);
  v.ended_ms = OptInt(s, 13);
  v.acquired_ms = OptInt(s, 14);
  v.egress_policy = s.ColumnText(15);
  v.restart_policy = s.ColumnText(16);
  v.health_json = s.ColumnText(17);
  v.restart_count = s.ColumnInt(18);
  if (!s.ColumnIsNull(19)) {
    v.last_exit_cause = s.ColumnText(19);
  }
  v.last_exit_code = OptInt(s, 20);
  v.last_exit_signal = OptInt(s, 21);
  v.last_exit_ms = OptInt(s, 22);
  return v;
}

Statement& BindOptInt(Statement& s, int index, std::optional<int64_t> v) {
  return v ? s.Bind(index, *v) : s.BindNull(index);
}

// Steps `s` to completion, converting each row with `read`.
template <typename Read>
auto CollectRows(Statement& s, Read read)
    -> absl::StatusOr<std::vector<decltype(read(std::declval<const Statement&>()))>> {
  std::vector<decltype(read(std::declval<const Statement&>()))> out;
  while (true) {
    SM_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return out;
    }
    out.push_back(read(s));
  }
}

constexpr char kSnapshotColumns[] =
    "name, bake_id, bake_key, path, created_ms, size_bytes, metadata_json, ifnull(cheap_key,'')";

// Everything but the layer list, which lives in snapshot_layers.
SnapshotRecord ReadSnapshot(const Statement& s) {
  SnapshotRecord r;
  r.name = s.ColumnText(0);
  r.bake_id = OptInt(s, 1);
  r.bake_key = s.ColumnText(2);
  r.path = s.ColumnText(3);
  r.created_ms = s.ColumnInt(4);
  r.size_bytes = s.ColumnInt(5);
  r.metadata_json = s.ColumnText(6);
  r.cheap_key = s.ColumnText(7);
  return r;
}

}  // namespace

const char* EndCauseName(EndCause cause) {
  switch (cause) {
    case EndCause::kExited: return "exited";
    case EndCause::kKilled: return "killed";
    case EndCause::kGuestOom: return "guest_oom";
    case EndCause::kDeadline: return "deadline";
    case EndCause::kWorkerCrash: return "worker_crash";
    case EndCause::kSnapshotIncompatible: return "snapshot_incompatible";
    case EndCause::kReleased: return "released";
  }
  return "unknown";
}

absl::StatusOr<Store> Store::Open(const std::string& path, Clock now_ms) {
  SM_ASSIGN_OR_RETURN(Database db, Database::Open(path));
  absl::Status st = Migrate(db);
  if (!st.ok()) {
    return base::Annotate(st, absl::StrCat("store '", path, "'"));
  }
  return Store(std::move(db), std::move(now_ms));
}

// --- bakes

absl::StatusOr<int64_t> Store::BeginBake(const std::string& bake_key, const std::string& request_json,
                                         const std::string& temp_dir) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "INSERT INTO bakes (bake_key, request_json, status, temp_dir, started_ms) "
      "VALUES (?, ?, 'running', ?, ?)"));
  s.Bind(1, bake_key).Bind(2, request_json).Bind(3, temp_dir).Bind(4, now_ms_());
  SM_RETURN_IF_ERROR(s.Run());
  return db_.LastInsertRowId();
}

absl::Status Store::FinishBake(int64_t id, bool succeeded, const std::string& error,
                               const std::string& timings_json) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE bakes SET status = ?, error = ?, timings_json = ?, finished_ms = ? "
      "WHERE id = ? AND status = 'running'"));
  s.Bind(1, succeeded ? "succeeded" : "failed").Bind(2, error).Bind(3, timings_json)
      .Bind(4, now_ms_()).Bind(5, id);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::FailedPreconditionError(absl::StrCat("bake ", id, " is not running"));
  }
  return absl::OkStatus();
}

absl::StatusOr<BakeRecord> Store::GetBake(int64_t id) {
  SM_ASSIGN_OR_RETURN(Statement s,
                      db_.Prepare(absl::StrCat("SELECT ", kBakeColumns, " FROM bakes WHERE id = ?")));
  s.Bind(1, id);
  SM_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("bake ", id, " not found"));
  }
  return ReadBake(s);
}

absl::StatusOr<std::vector<BakeRecord>> Store::RecoverInterruptedBakes() {
  SM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_));
  std::vector<BakeRecord> interrupted;
  {
    SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(absl::StrCat(
        "SELECT ", kBakeColumns, " FROM bakes WHERE status = 'running' ORDER BY id")));
    SM_ASSIGN_OR_RETURN(interrupted, CollectRows(s, ReadBake));
  }
  SM_ASSIGN_OR_RETURN(Statement u, db_.Prepare(
      "UPDATE bakes SET status = 'failed', "
      "error = 'interrupted: supermachined stopped before the bake finished', finished_ms = ? "
      "WHERE status = 'running'"));
  u.Bind(1, now_ms_());
  SM_RETURN_IF_ERROR(u.Run());
  SM_RETURN_IF_ERROR(tx.Commit());
  return interrupted;
}

absl::Status Store::SetBakeKeys(int64_t id, const std::string& cheap_key,
                                const std::string& delta_key, const std::string& bake_key) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE bakes SET cheap_key = ?, delta_key = ?, bake_key = ? WHERE id = ?"));
  s.Bind(1, cheap_key).Bind(2, delta_key).Bind(3, bake_key).Bind(4, id);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("bake ", id, " not found"));
  }
  return absl::OkStatus();
}

// --- layers and snapshots

absl::Status Store::PutLayer(const LayerRecord& layer) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "INSERT INTO layers (digest, sqfs_path, size_bytes, created_ms) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (digest) DO UPDATE SET sqfs_path = excluded.sqfs_path, "
      "size_bytes = excluded.size_bytes"));
  s.Bind(1, layer.digest).Bind(2, layer.sqfs_path).Bind(3, layer.size_bytes).Bind(4, now_ms_());
  return s.Run();
}

absl::Status Store::PutSnapshot(const SnapshotRecord& snap) {
  SM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_));
  {
    SM_ASSIGN_OR_RETURN(Statement del, db_.Prepare("DELETE FROM snapshot_layers WHERE snapshot_name = ?"));
    del.Bind(1, snap.name);
    SM_RETURN_IF_ERROR(del.Run());
    SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
        "INSERT INTO snapshots (name, bake_id, bake_key, path, created_ms, size_bytes, metadata_json, "
        "cheap_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "bake_id = excluded.bake_id, bake_key = excluded.bake_key, path = excluded.path, "
        "created_ms = excluded.created_ms, size_bytes = excluded.size_bytes, "
        "metadata_json = excluded.metadata_json, cheap_key = excluded.cheap_key"));
    s.Bind(1, snap.name);
    BindOptInt(s, 2, snap.bake_id);
    s.Bind(3, snap.bake_key).Bind(4, snap.path).Bind(5, snap.created_ms).Bind(6, snap.size_bytes)
        .Bind(7, snap.metadata_json);
    if (snap.cheap_key.empty()) {
      s.BindNull(8);
    } else {
      s.Bind(8, snap.cheap_key);
    }
    SM_RETURN_IF_ERROR(s.Run());
    for (size_t i = 0; i < snap.layer_digests.size(); ++i) {
      SM_ASSIGN_OR_RETURN(Statement l, db_.Prepare(
          "INSERT INTO snapshot_layers (snapshot_name, position, layer_digest) VALUES (?, ?, ?)"));
      l.Bind(1, snap.name).Bind(2, static_cast<int64_t>(i)).Bind(3, snap.layer_digests[i]);
      absl::Status st = l.Run();
      if (!st.ok()) {
        return base::Annotate(st, absl::StrCat("snapshot '", snap.name, "': layer ",
                                               snap.layer_digests[i], " is not in the store"));
      }
    }
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<std::string>> Store::SnapshotLayers(const std::string& name) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "SELECT layer_digest FROM snapshot_layers WHERE snapshot_name = ? ORDER BY position"));
  s.Bind(1, name);
  return CollectRows(s, [](const Statement& row) { return row.ColumnText(0); });
}

absl::StatusOr<SnapshotRecord> Store::GetSnapshot(const std::string& name) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      absl::StrCat("SELECT ", kSnapshotColumns, " FROM snapshots WHERE name = ?")));
  s.Bind(1, name);
  SM_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("snapshot '", name, "' not found"));
  }
  SnapshotRecord r = ReadSnapshot(s);
  SM_ASSIGN_OR_RETURN(r.layer_digests, SnapshotLayers(name));
  return r;
}

absl::Status Store::SetSnapshotCheapKey(const std::string& name, const std::string& cheap_key) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare("UPDATE snapshots SET cheap_key = ? WHERE name = ?"));
  s.Bind(1, cheap_key).Bind(2, name);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("snapshot '", name, "' not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotRecord>> Store::ListSnapshots() {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      absl::StrCat("SELECT ", kSnapshotColumns, " FROM snapshots ORDER BY name")));
  SM_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> out, CollectRows(s, ReadSnapshot));
  for (SnapshotRecord& r : out) {
    SM_ASSIGN_OR_RETURN(r.layer_digests, SnapshotLayers(r.name));
  }
  return out;
}

absl::Status Store::RemoveSnapshot(const std::string& name) {
  SM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_));
  {
    SM_ASSIGN_OR_RETURN(Statement used, db_.Prepare(
        "SELECT count(*) FROM vms WHERE snapshot_name = ? AND state != 'ended'"));
    used.Bind(1, name);
    SM_ASSIGN_OR_RETURN(bool row, used.Step());
    if (row && used.ColumnInt(0) > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "snapshot '", name, "' is used by ", used.ColumnInt(0), " running VM(s); release them first"));
    }
    SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare("DELETE FROM snapshots WHERE name = ?"));
    s.Bind(1, name);
    SM_RETURN_IF_ERROR(s.Run());
    if (db_.Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("snapshot '", name, "' not found"));
    }
  }
  return tx.Commit();
}

absl::StatusOr<std::vector<LayerRecord>> Store::UnreferencedLayers() {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "SELECT digest, sqfs_path, size_bytes FROM layers l WHERE "
      "NOT EXISTS (SELECT 1 FROM image_layers i WHERE i.layer_digest = l.digest) AND "
      "NOT EXISTS (SELECT 1 FROM snapshot_layers s WHERE s.layer_digest = l.digest) "
      "ORDER BY digest"));
  return CollectRows(s, [](const Statement& row) {
    return LayerRecord{row.ColumnText(0), row.ColumnText(1), row.ColumnInt(2)};
  });
}

absl::Status Store::RemoveLayer(const std::string& digest) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare("DELETE FROM layers WHERE digest = ?"));
  s.Bind(1, digest);
  absl::Status st = s.Run();
  if (!st.ok()) {
    return base::Annotate(st, absl::StrCat("layer ", digest, " is still referenced"));
  }
  return absl::OkStatus();
}

// --- VM journal

absl::Status Store::JournalVm(const VmRecord& vm) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "INSERT INTO vms (id, name, snapshot_name, state, pid, pid_start_time, control_socket, "
      "ports_json, labels_json, created_ms) VALUES (?, ?, ?, 'starting', ?, ?, ?, ?, ?, ?)"));
  s.Bind(1, vm.id).Bind(2, vm.name);
  if (vm.snapshot_name.empty()) {
    s.BindNull(3);
  } else {
    s.Bind(3, vm.snapshot_name);
  }
  BindOptInt(s, 4, vm.pid);
  BindOptInt(s, 5, vm.pid_start_time);
  s.Bind(6, vm.control_socket).Bind(7, vm.ports_json).Bind(8, vm.labels_json).Bind(9, now_ms_());
  absl::Status st = s.Run();
  if (!st.ok()) {
    return base::Annotate(st, absl::StrCat("journal VM '", vm.id, "'"));
  }
  return absl::OkStatus();
}

absl::Status Store::MarkVmRunning(const std::string& id) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE vms SET state = 'running' WHERE id = ? AND state = 'starting'"));
  s.Bind(1, id);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::FailedPreconditionError(absl::StrCat("VM '", id, "' is not starting"));
  }
  return absl::OkStatus();
}

absl::Status Store::MarkVmAcquired(const VmRecord& vm) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE vms SET name = ?, ports_json = ?, labels_json = ?, egress_policy = ?, "
      "acquired_ms = ?, restart_policy = ?, health_json = ?, restart_count = ?, "
      "last_exit_cause = ?, last_exit_code = ?, last_exit_signal = ?, last_exit_ms = ? "
      "WHERE id = ? AND state = 'running'"));
  s.Bind(1, vm.name).Bind(2, vm.ports_json).Bind(3, vm.labels_json).Bind(4, vm.egress_policy)
      .Bind(5, now_ms_()).Bind(6, vm.restart_policy).Bind(7, vm.health_json)
      .Bind(8, vm.restart_count).BindOptional(9, vm.last_exit_cause);
  BindOptInt(s, 10, vm.last_exit_code);
  BindOptInt(s, 11, vm.last_exit_signal);
  BindOptInt(s, 12, vm.last_exit_ms);
  s.Bind(13, vm.id);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::FailedPreconditionError(absl::StrCat("VM '", vm.id, "' is not running"));
  }
  return absl::OkStatus();
}

absl::Status Store::EndVm(const std::string& id, EndCause cause, std::optional<int64_t> exit_code,
                          std::optional<int64_t> signal) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE vms SET state = 'ended', end_cause = ?, exit_code = ?, signal = ?, ended_ms = ? "
      "WHERE id = ? AND state != 'ended'"));
  s.Bind(1, EndCauseName(cause));
  BindOptInt(s, 2, exit_code);
  BindOptInt(s, 3, signal);
  s.Bind(4, now_ms_()).Bind(5, id);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    // Either unknown or already ended: the first recorded cause wins, it is never overwritten.
    SM_ASSIGN_OR_RETURN(VmRecord vm, GetVm(id));
    return absl::FailedPreconditionError(
        absl::StrCat("VM '", id, "' already ended (", vm.end_cause.value_or("?"), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VmRecord> Store::GetVm(const std::string& id) {
  SM_ASSIGN_OR_RETURN(Statement s,
                      db_.Prepare(absl::StrCat("SELECT ", kVmColumns, " FROM vms WHERE id = ?")));
  s.Bind(1, id);
  SM_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("VM '", id, "' not found"));
  }
  return ReadVm(s);
}

absl::StatusOr<std::vector<VmRecord>> Store::ListVms(bool include_ended) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(absl::StrCat(
      "SELECT ", kVmColumns, " FROM vms", include_ended ? "" : " WHERE state != 'ended'",
      " ORDER BY created_ms, id")));
  return CollectRows(s, ReadVm);
}

// --- named volumes

namespace {

// The VM holding a volume, "" when free: a row that ended holds nothing (a crash between the
// VM's end and its detach never strands a volume). A VM without a row yet is being restored.
constexpr char kVolumeColumns[] =
    "name, path, size_bytes, created_ms, "
    "CASE WHEN attached_vm IS NULL OR attached_vm IN (SELECT id FROM vms WHERE state = 'ended') "
    "THEN '' ELSE attached_vm END, guest_path";

VolumeRecord ReadVolume(const Statement& row) {
  VolumeRecord v{.name = row.ColumnText(0),
                 .path = row.ColumnText(1),
                 .size_bytes = row.ColumnInt(2),
                 .created_ms = row.ColumnInt(3),
                 .attached_vm = row.ColumnText(4),
                 .guest_path = row.ColumnText(5)};
  if (v.attached_vm.empty()) {
    v.guest_path.clear();
  }
  return v;
}

}  // namespace

absl::Status Store::CreateVolume(const VolumeRecord& volume) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "INSERT OR IGNORE INTO volumes (name, path, size_bytes, created_ms) VALUES (?, ?, ?, ?)"));
  s.Bind(1, volume.name).Bind(2, volume.path).Bind(3, volume.size_bytes).Bind(4, now_ms_());
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 0) {
    return absl::AlreadyExistsError(absl::StrCat("volume '", volume.name, "' exists already"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VolumeRecord> Store::GetVolume(const std::string& name) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      absl::StrCat("SELECT ", kVolumeColumns, " FROM volumes WHERE name = ?")));
  s.Bind(1, name);
  SM_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("volume '", name, "' not found (list volumes with `smctl volume ls`)"));
  }
  return ReadVolume(s);
}

absl::StatusOr<std::vector<VolumeRecord>> Store::ListVolumes() {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      absl::StrCat("SELECT ", kVolumeColumns, " FROM volumes ORDER BY name")));
  return CollectRows(s, ReadVolume);
}

absl::Status Store::AttachVolume(const std::string& name, const std::string& vm_id,
                                 const std::string& guest_path, const std::string& replacing) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE volumes SET attached_vm = ?1, guest_path = ?2 WHERE name = ?3 AND "
      "(attached_vm IS NULL OR attached_vm = ?1 OR (?4 != '' AND attached_vm = ?4) OR "
      "attached_vm IN (SELECT id FROM vms WHERE state = 'ended'))"));
  s.Bind(1, vm_id).Bind(2, guest_path).Bind(3, name).Bind(4, replacing);
  SM_RETURN_IF_ERROR(s.Run());
  if (db_.Changes() == 1) {
    return absl::OkStatus();
  }
  SM_ASSIGN_OR_RETURN(VolumeRecord v, GetVolume(name));
  return absl::FailedPreconditionError(absl::StrCat(
      "volume '", name, "' is attached to VM ", v.attached_vm, " (at ", v.guest_path,
      "); a volume serves one VM at a time: release that VM first (smctl rm ", v.attached_vm,
      ")"));
}

absl::Status Store::DetachVolumes(const std::string& vm_id, const std::string& name) {
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare(
      "UPDATE volumes SET attached_vm = NULL, guest_path = '' WHERE attached_vm = ?1 AND "
      "(?2 = '' OR name = ?2)"));
  s.Bind(1, vm_id).Bind(2, name);
  return s.Run();
}

absl::Status Store::RemoveVolume(const std::string& name) {
  SM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_));
  SM_ASSIGN_OR_RETURN(VolumeRecord v, GetVolume(name));
  if (!v.attached_vm.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume '", name, "' is attached to VM ", v.attached_vm,
        "; release that VM first (smctl rm ", v.attached_vm, ")"));
  }
  SM_ASSIGN_OR_RETURN(Statement s, db_.Prepare("DELETE FROM volumes WHERE name = ?"));
  s.Bind(1, name);
  SM_RETURN_IF_ERROR(s.Run());
  return tx.Commit();
}

}  // namespace supermachine::store
