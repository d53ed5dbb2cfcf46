#include "daemon/store/migrations.h"

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::store {
namespace {

using ::supermachine::test_support::TempDir;

bool HasTable(Database& db, const std::string& name) {
  auto s = db.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?");
  s->Bind(1, name);
  return s->Step().value() && s->ColumnInt(0) == 1;
}

TEST(Migrations, VersionsAreConsecutiveFromOne) {
  int expected = 1;
  for (const Migration& m : SchemaMigrations()) {
    EXPECT_EQ(m.version, expected) << m.name;
    ++expected;
  }
}

TEST(Migrations, FreshDatabaseReachesLatestVersion) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db).ok());
  EXPECT_EQ(SchemaVersion(*db).value(), SchemaMigrations().back().version);
}

// Migration 1: the initial schema creates every table the store uses.
TEST(Migrations, Migration1CreatesInitialTables) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(1)).ok());
  for (const char* t : {"images", "layers", "image_layers", "bakes", "snapshots", "snapshot_layers", "vms"}) {
    EXPECT_TRUE(HasTable(*db, t)) << t;
  }
  EXPECT_EQ(SchemaVersion(*db).value(), 1);
}

// Migration 2: a version-1 store with a bake and a snapshot gains the cache-key columns; the
// existing rows keep their data and read back with empty keys.
TEST(Migrations, Migration2AddsCacheKeysKeepingRows) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(1)).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO bakes (bake_key, request_json, status, started_ms) "
                       "VALUES ('k', '{}', 'succeeded', 1)").ok());
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(2)).ok());
  EXPECT_EQ(SchemaVersion(*db).value(), 2);
  auto s = db->Prepare("SELECT bake_key, ifnull(cheap_key, 'null'), ifnull(delta_key, 'null') FROM bakes");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Step().value());
  EXPECT_EQ(s->ColumnText(0), "k");
  EXPECT_EQ(s->ColumnText(1), "null");
  EXPECT_EQ(s->ColumnText(2), "null");
  EXPECT_TRUE(db->Exec("SELECT cheap_key FROM snapshots").ok());
}

// Migration 3: a version-2 store with a running VM (journaled by an older daemon) gains the
// hand-out columns; the row keeps its pid and reads back as never handed out, default policy.
TEST(Migrations, Migration3AddsHandOutColumnsKeepingVmRows) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(2)).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO vms (id, name, state, pid, pid_start_time, created_ms) "
                       "VALUES ('vm1', 'n', 'running', 42, 7, 1)").ok());
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(3)).ok());
  EXPECT_EQ(SchemaVersion(*db).value(), 3);
  auto s = db->Prepare("SELECT name, pid, pid_start_time, ifnull(acquired_ms, -1), egress_policy "
                       "FROM vms");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Step().value());
  EXPECT_EQ(s->ColumnText(0), "n");
  EXPECT_EQ(s->ColumnInt(1), 42);
  EXPECT_EQ(s->ColumnInt(2), 7);
  EXPECT_EQ(s->ColumnInt(3), -1);
  EXPECT_EQ(s->ColumnText(4), "");
}

// Migration 4: a version-3 store with a handed-out VM (from a daemon without supervision)
// gains the supervision columns; the row keeps its hand-out and reads back unsupervised:
// policy "" (no), no health check, no restarts, no last exit.
TEST(Migrations, Migration4AddsSupervisionColumnsKeepingVmRows) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(3)).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO vms (id, name, state, pid, created_ms, acquired_ms, "
                       "egress_policy) VALUES ('vm1', 'n', 'running', 42, 1, 5, 'deny')").ok());
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(4)).ok());
  EXPECT_EQ(SchemaVersion(*db).value(), 4);
  auto s = db->Prepare("SELECT name, acquired_ms, egress_policy, restart_policy, health_json, "
                       "restart_count, ifnull(last_exit_cause, 'null'), "
                       "ifnull(last_exit_code, -1), ifnull(last_exit_signal, -1), "
                       "ifnull(last_exit_ms, -1) FROM vms");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Step().value());
  EXPECT_EQ(s->ColumnText(0), "n");
  EXPECT_EQ(s->ColumnInt(1), 5);
  EXPECT_EQ(s->ColumnText(2), "deny");
  EXPECT_EQ(s->ColumnText(3), "");
  EXPECT_EQ(s->ColumnText(4), "");
  EXPECT_EQ(s->ColumnInt(5), 0);
  EXPECT_EQ(s->ColumnText(6), "null");
  EXPECT_EQ(s->ColumnInt(7), -1);
  EXPECT_EQ(s->ColumnInt(8), -1);
  EXPECT_EQ(s->ColumnInt(9), -1);
}

TEST(Migrations, SecondRunIsANoOp) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db).ok());
  EXPECT_TRUE(Migrate(*db).ok());
}

// Migration 5: a version-4 store with a VM gains the volumes table (empty); the VM row stays.
TEST(Migrations, Migration5AddsVolumesKeepingVmRows) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(4)).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO vms (id, name, state, created_ms) "
                       "VALUES ('vm-1', 'n', 'running', 1)").ok());
  EXPECT_FALSE(HasTable(*db, "volumes"));
  ASSERT_TRUE(Migrate(*db, SchemaMigrations().first(5)).ok());
  EXPECT_EQ(SchemaVersion(*db).value(), 5);
  EXPECT_TRUE(HasTable(*db, "volumes"));
  ASSERT_TRUE(db->Exec("INSERT INTO volumes (name, path, size_bytes, created_ms, attached_vm) "
                       "VALUES ('v', '/p', 1, 2, 'vm-1')").ok());
  auto s = db->Prepare("SELECT guest_path, (SELECT count(*) FROM vms) FROM volumes");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Step().value());
  EXPECT_EQ(s->ColumnText(0), "");
  EXPECT_EQ(s->ColumnInt(1), 1);
}

TEST(Migrations, RefusesNewerSchema) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(db->Exec("PRAGMA user_version = 99").ok());
  absl::Status st = Migrate(*db);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("99"), std::string::npos);
}

TEST(Migrations, FailedMigrationLeavesPreviousVersion) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  const Migration broken[] = {
      {1, "good", "CREATE TABLE a (x INTEGER);"},
      {2, "bad", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);"},
  };
  absl::Status st = Migrate(*db, broken);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("migration 2 (bad)"), std::string::npos);
  EXPECT_EQ(SchemaVersion(*db).value(), 1);
  EXPECT_TRUE(HasTable(*db, "a"));
  EXPECT_FALSE(HasTable(*db, "b"));  // rolled back with the failed step
}

}  // namespace
}  // namespace supermachine::store
