// File: rotating_log_test.cc
// RotatingLog: rotation exactly at the limit, FILE.1 replaced by the next rotation, limit 0,
// write and rename errors dropped or absorbed (never fatal), rotation by directory descriptor.
#include "worker/vmm/rotating_log.h"

#include <unistd.h>

#include <filesystem>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace supermachine::vmm {
namespace {

using ::testing::ElementsAre;
using test_support::ReadFileOrDie;
using test_support::TempDir;

std::unique_ptr<RotatingLog> OpenOrDie(const std::string& path, uint64_t max_bytes) {
  absl::StatusOr<std::unique_ptr<RotatingLog>> log = RotatingLog::Open(path, max_bytes);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

TEST(RotatingLog, FillsTheFileUpToTheLimitWithoutRotating) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 10);
  log->Write("0123456789");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "0123456789");
  EXPECT_THAT(dir.List(), ElementsAre("console.log"));
  EXPECT_EQ(log->stats().rotations, 0u);
}

TEST(RotatingLog, TheByteBeyondTheLimitGoesToAFreshFile) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 10);
  log->Write("0123456789");
  log->Write(uint8_t{'a'});
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log.1")), "0123456789");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "a");
  EXPECT_EQ(log->stats().rotations, 1u);
}

TEST(RotatingLog, AWriteAcrossTheLimitIsSplitBetweenTheTwoFiles) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 4);
  log->Write("abcdef");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log.1")), "abcd");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "ef");
}

TEST(RotatingLog, TheNextRotationReplacesTheOlderFile) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 4);
  log->Write("aaaabbbbcc");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log.1")), "bbbb");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "cc");
  EXPECT_THAT(dir.List(), ElementsAre("console.log", "console.log.1"));
  EXPECT_EQ(log->stats().rotations, 2u);
  EXPECT_EQ(log->stats().written, 10u);
}

TEST(RotatingLog, LimitZeroNeverRotates) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 0);
  log->Write(std::string(100000, 'x'));
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")).size(), 100000u);
  EXPECT_THAT(dir.List(), ElementsAre("console.log"));
}

TEST(RotatingLog, OpenStartsAFreshFileAndRemovesAStaleOlderOne) {
  TempDir dir;
  test_support::WriteFileOrDie(dir.Join("console.log"), "last run\n");
  test_support::WriteFileOrDie(dir.Join("console.log.1"), "the run before\n");
  auto log = OpenOrDie(dir.Join("console.log"), 10);
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "");
  EXPECT_THAT(dir.List(), ElementsAre("console.log"));
}

// Disk full: /dev/full fails every write with ENOSPC. The bytes are counted, nothing throws
// or aborts, and a device is never renamed away.
TEST(RotatingLog, WriteErrorsDropAndCountTheBytes) {
  TempDir dir;
  ASSERT_EQ(symlink("/dev/full", dir.Join("console.log").c_str()), 0);
  auto log = OpenOrDie(dir.Join("console.log"), 4);
  log->Write("hello, world");
  EXPECT_EQ(log->stats().dropped, 12u);
  EXPECT_EQ(log->stats().written, 0u);
  EXPECT_EQ(log->stats().rotations, 0u);
  EXPECT_TRUE(std::filesystem::is_symlink(dir.Join("console.log")));
}

// A rename that fails (here FILE.1 is a non-empty directory) must not let the file grow past
// its limit: the current file starts over instead.
TEST(RotatingLog, AFailedRenameTruncatesTheFileInstead) {
  TempDir dir;
  auto log = OpenOrDie(dir.Join("console.log"), 4);
  test_support::WriteFileOrDie(dir.Join("console.log.1/blocker"), "x");
  log->Write("aaaabb");
  EXPECT_EQ(ReadFileOrDie(dir.Join("console.log")), "bb");
  EXPECT_EQ(log->stats().rotate_errors, 1u);
  EXPECT_EQ(log->stats().written, 6u);
}

// The jail hides the run directory's path after start-up; rotation goes by the directory's
// descriptor, so it still lands next to the original file.
TEST(RotatingLog, RotatesInItsDirectoryEvenAfterThePathChanged) {
  TempDir dir;
  std::filesystem::create_directories(dir.Join("run"));
  auto log = OpenOrDie(dir.Join("run/console.log"), 3);
  std::filesystem::rename(dir.Join("run"), dir.Join("moved"));
  log->Write("abcde");
  EXPECT_EQ(ReadFileOrDie(dir.Join("moved/console.log.1")), "abc");
  EXPECT_EQ(ReadFileOrDie(dir.Join("moved/console.log")), "de");
}

TEST(RotatingLog, OpenFailsNamingTheFileWhenItsDirectoryIsMissing) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<RotatingLog>> log =
      RotatingLog::Open(dir.Join("nope/console.log"), 4);
  EXPECT_EQ(log.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(log.status().message()), ::testing::HasSubstr("nope/console.log"));
}

}  // namespace
}  // namespace supermachine::vmm
