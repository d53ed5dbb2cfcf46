// File: migrations.h
// Ordered, numbered schema migrations. The database's `PRAGMA user_version` is the number of
// the last migration applied. Each migration runs in its own transaction together with the
// version bump, so a crash or failure leaves the schema at the previous version, never between.
// Rules: never edit or reorder a released migration; add a new one at the end, with a test in
// tests/unit/store/migrations_test.cc that checks what it changes.
#pragma once

#include <span>

#include "absl/status/status.h"
#include "daemon/store/database.h"

namespace supermachine::store {

struct Migration {
  int version;      // 1, 2, 3… in order, no gaps
  const char* name;  // for error messages
  const char* sql;
};

// The project's migrations, oldest first.
std::span<const Migration> SchemaMigrations();

// Brings `db` up to the last of `migrations`. A database whose user_version is newer than the
// last known migration is refused (FailedPrecondition): an older supermachined must not write
// to a schema it does not understand.
absl::Status Migrate(Database& db, std::span<const Migration> migrations = SchemaMigrations());

// The schema version (PRAGMA user_version) of `db`.
absl::StatusOr<int> SchemaVersion(Database& db);

}  // namespace supermachine::store
