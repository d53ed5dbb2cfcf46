#include "daemon/store/database.h"

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::store {
namespace {

using ::supermachine::test_support::TempDir;

TEST(Database, OpensInWalModeWithForeignKeys) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(db.ok()) << db.status();
  auto mode = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(mode->Step().value());
  EXPECT_EQ(mode->ColumnText(0), "wal");
  auto fk = db->Prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(fk->Step().value());
  EXPECT_EQ(fk->ColumnInt(0), 1);
}

TEST(Database, OpenOfUnwritableDirFailsWithPath) {
  auto db = Database::Open("/nonexistent-dir/s.db");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("/nonexistent-dir/s.db"), std::string::npos);
}

TEST(Database, BadSqlIsAnError) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE(db->Exec("CREATE TABLOID x").ok());
  EXPECT_FALSE(db->Prepare("SELECT * FROM missing").ok());
}

TEST(Database, UncommittedTransactionRollsBack) {
  TempDir dir;
  auto db = Database::Open(dir.Join("s.db"));
  ASSERT_TRUE(db->Exec("CREATE TABLE t (x INTEGER)").ok());
  {
    auto tx = Transaction::Begin(*db);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
  }
  auto count = db->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(count->Step().value());
  EXPECT_EQ(count->ColumnInt(0), 0);
}

TEST(Database, CommittedTransactionPersistsAcrossReopen) {
  TempDir dir;
  {
    auto db = Database::Open(dir.Join("s.db"));
    ASSERT_TRUE(db->Exec("CREATE TABLE t (x TEXT)").ok());
    auto tx = Transaction::Begin(*db);
    auto ins = db->Prepare("INSERT INTO t VALUES (?)");
    ins->Bind(1, "kept");
    ASSERT_TRUE(ins->Run().ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto db = Database::Open(dir.Join("s.db"));
  auto sel = db->Prepare("SELECT x FROM t");
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnText(0), "kept");
}

}  // namespace
}  // namespace supermachine::store
