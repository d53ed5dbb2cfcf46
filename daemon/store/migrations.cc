// File: migrations.cc
#include "daemon/store/migrations.h"

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::store {
namespace {

// Migration 1: the initial schema.
// - Layer reference counts are derived (image_layers + snapshot_layers), not stored, so they
//   cannot drift from the rows that hold the references.
// - vms.snapshot_name is SET NULL on snapshot removal: an ended VM's history outlives it.
// - bakes.status 'running' rows that survive a crash are marked failed at startup.
constexpr char kInitialSchema[] = R"sql(
CREATE TABLE images (
  id INTEGER PRIMARY KEY,
  ref TEXT NOT NULL,
  digest TEXT NOT NULL,
  config_json TEXT NOT NULL,
  resolved_ms INTEGER NOT NULL,
  UNIQUE (ref, digest)
);
CREATE TABLE layers (
  digest TEXT PRIMARY KEY,
  sqfs_path TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE image_layers (
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  layer_digest TEXT NOT NULL REFERENCES layers(digest),
  PRIMARY KEY (image_id, position)
);
CREATE TABLE bakes (
  id INTEGER PRIMARY KEY,
  bake_key TEXT NOT NULL,
  request_json TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  error TEXT,
  timings_json TEXT,
  temp_dir TEXT,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER
);
CREATE INDEX bakes_by_key ON bakes (bake_key);
CREATE TABLE snapshots (
  name TEXT PRIMARY KEY,
  bake_id INTEGER REFERENCES bakes(id) ON DELETE SET NULL,
  bake_key TEXT NOT NULL,
  path TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL,
  metadata_json TEXT NOT NULL
);
CREATE TABLE snapshot_layers (
  snapshot_name TEXT NOT NULL REFERENCES snapshots(name) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  layer_digest TEXT NOT NULL REFERENCES layers(digest),
  PRIMARY KEY (snapshot_name, position)
);
CREATE TABLE vms (
  id TEXT PRIMARY KEY,
  name TEXT,
  snapshot_name TEXT REFERENCES snapshots(name) ON DELETE SET NULL,
  state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'ended')),
  pid INTEGER,
  pid_start_time INTEGER,
  control_socket TEXT,
  ports_json TEXT NOT NULL DEFAULT '[]',
  labels_json TEXT NOT NULL DEFAULT '{}',
  end_cause TEXT,
  exit_code INTEGER,
  signal INTEGER,
  created_ms INTEGER NOT NULL,
  ended_ms INTEGER
);
CREATE INDEX vms_by_state ON vms (state);
)sql";

// Migration 2: the bake cache tiers (daemon/bake/baker.h). A bake row learns its cheap and
// delta keys (bake_key was its only key); a snapshot keeps the cheap key it was last reached by,
// so the next identical request is answered from this table alone. Indexed: both are looked up
// on every bake.
constexpr char kBakeCacheKeys[] = R"sql(
ALTER TABLE bakes ADD COLUMN cheap_key TEXT;
ALTER TABLE bakes ADD COLUMN delta_key TEXT;
ALTER TABLE snapshots ADD COLUMN cheap_key TEXT;
CREATE INDEX bakes_by_cheap_key ON bakes (cheap_key);
CREATE INDEX snapshots_by_cheap_key ON snapshots (cheap_key);
CREATE INDEX snapshots_by_bake_key ON snapshots (bake_key);
)sql";

// Migration 3: re-adoption after a daemon restart (docs/operations.md). A VM's name, forwarded
// ports and labels are given at Acquire, after the (pooled) VM was journaled; acquired_ms marks
// the hand-out, so a restarted daemon tells a handed-out VM (re-adopt it, with its name and port
// forwards) from a pooled one nobody holds (stop it). NULL: never handed out. egress_policy is
// the Acquire's override ("" = the snapshot's own), part of the re-adopted VM's pool key.
constexpr char kVmAcquired[] = R"sql(
ALTER TABLE vms ADD COLUMN acquired_ms INTEGER;
ALTER TABLE vms ADD COLUMN egress_policy TEXT NOT NULL DEFAULT '';
)sql";

// Migration 4: supervision (daemon/vm/supervisor.h, docs/supervision.md). The Acquire's
// restart policy and health check are kept with the VM so a restarted daemon re-adopts it
// supervised as before; a restart is a fresh restore (a new row) that carries the count of
// restarts so far and how the previous run's workload stopped (last_exit_*; NULL: never
// restarted). '' policy = "no", '' health_json = no check.
constexpr char kVmSupervision[] = R"sql(
ALTER TABLE vms ADD COLUMN restart_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN health_json TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN last_exit_cause TEXT;
ALTER TABLE vms ADD COLUMN last_exit_code INTEGER;
ALTER TABLE vms ADD COLUMN last_exit_signal INTEGER;
ALTER TABLE vms ADD COLUMN last_exit_ms INTEGER;
)sql";

// Migration 5: named volumes (daemon/vm/named_volumes.h, docs/volumes.md). A named volume is an
// ext4 file in <state>/volumes/ that outlives VMs; attached_vm is the VM it is bound to (NULL:
// free; a VM whose row has ended counts as free too, so a crash never strands a volume) and
// guest_path the snapshot slot it is mounted at there.
constexpr char kVolumes[] = R"sql(
CREATE TABLE volumes (
  name TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  attached_vm TEXT,
  guest_path TEXT NOT NULL DEFAULT ''
);
CREATE INDEX volumes_by_vm ON volumes (attached_vm);
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial schema", kInitialSchema},
    {2, "bake cache keys", kBakeCacheKeys},
    {3, "vm hand-out", kVmAcquired},
    {4, "vm supervision", kVmSupervision},
    {5, "named volumes", kVolumes},
};

}  // namespace

std::span<const Migration> SchemaMigrations() { return kMigrations; }

absl::StatusOr<int> SchemaVersion(Database& db) {
  SM_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("PRAGMA user_version"));
  SM_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::InternalError("PRAGMA user_version returned no row");
  }
  return static_cast<int>(stmt.ColumnInt(0));
}

absl::Status Migrate(Database& db, std::span<const Migration> migrations) {
  SM_ASSIGN_OR_RETURN(int current, SchemaVersion(db));
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store schema version ", current, " is newer than this supermachined understands (", latest,
        "); run a supermachined at least as new as the one that last used this state dir"));
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) {
      continue;
    }
    SM_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db));
    absl::Status st = db.Exec(m.sql);
    if (st.ok()) {
      // PRAGMA takes no bound parameters; the version is our own integer.
      st = db.Exec(absl::StrCat("PRAGMA user_version = ", m.version));
    }
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("store migration ", m.version, " (", m.name,
                                                  "): ", st.message()));
    }
    SM_RETURN_IF_ERROR(tx.Commit());
  }
  return absl::OkStatus();
}

}  // namespace supermachine::store
