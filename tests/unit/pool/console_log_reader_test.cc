// File: console_log_reader_test.cc
// ConsoleLogReader over files rotated by hand (FILE.1 first, a rename noticed, a missed middle
// file, a truncate), and against the worker's real RotatingLog writing while it follows: every
// byte arrives once, in order, across dozens of rotations.
#include "daemon/vm/console_log_reader.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "worker/vmm/rotating_log.h"

namespace supermachine::vm {
namespace {

using test_support::TempDir;
using test_support::WriteFileOrDie;

// Everything readable now (until Read returns 0).
std::string Drain(ConsoleLogReader& reader) {
  std::string out;
  char buf[7];  // Small, so one file takes several reads.
  for (;;) {
    absl::StatusOr<size_t> n = reader.Read(absl::MakeSpan(buf));
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) {
      return out;
    }
    out.append(buf, *n);
  }
}

void Append(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::app | std::ios::binary) << bytes;
}

TEST(ConsoleLogReader, ReadsTheOlderFileBeforeTheCurrentOne) {
  TempDir dir;
  WriteFileOrDie(dir.Join("console.log.1"), "older lines\n");
  WriteFileOrDie(dir.Join("console.log"), "newer lines\n");
  ConsoleLogReader reader(dir.Join("console.log"));
  EXPECT_EQ(Drain(reader), "older lines\nnewer lines\n");
}

TEST(ConsoleLogReader, AMissingFileReadsAsNothingYetThenIsFollowed) {
  TempDir dir;
  ConsoleLogReader reader(dir.Join("console.log"));
  EXPECT_EQ(Drain(reader), "");
  WriteFileOrDie(dir.Join("console.log"), "booted\n");
  EXPECT_EQ(Drain(reader), "booted\n");
  Append(dir.Join("console.log"), "more\n");
  EXPECT_EQ(Drain(reader), "more\n");
}

// The worker's rotation: it writes its last bytes to FILE, renames FILE to FILE.1, writes to
// a new FILE. The follower gets the tail of the old file, then the new one, nothing twice.
TEST(ConsoleLogReader, FollowsARotationWithoutLosingOrRepeatingBytes) {
  TempDir dir;
  const std::string path = dir.Join("console.log");
  WriteFileOrDie(path, "one\n");
  ConsoleLogReader reader(path);
  ASSERT_EQ(Drain(reader), "one\n");
  Append(path, "two\n");
  std::filesystem::rename(path, path + ".1");
  WriteFileOrDie(path, "three\n");
  EXPECT_EQ(Drain(reader), "two\nthree\n");
}

TEST(ConsoleLogReader, TwoRotationsBetweenReadsStillLoseNothing) {
  TempDir dir;
  const std::string path = dir.Join("console.log");
  WriteFileOrDie(path, "a\n");
  ConsoleLogReader reader(path);
  ASSERT_EQ(Drain(reader), "a\n");
  Append(path, "b\n");
  std::filesystem::rename(path, path + ".1");
  WriteFileOrDie(path, "c\n");
  std::filesystem::rename(path, path + ".1");  // replaces the file the reader holds open
  WriteFileOrDie(path, "d\n");
  EXPECT_EQ(Drain(reader), "b\nc\nd\n");
}

TEST(ConsoleLogReader, AFileTruncatedInPlaceIsReadAgainFromItsStart) {
  TempDir dir;
  const std::string path = dir.Join("console.log");
  WriteFileOrDie(path, "before the truncate\n");
  ConsoleLogReader reader(path);
  ASSERT_EQ(Drain(reader), "before the truncate\n");
  std::filesystem::resize_file(path, 0);
  Append(path, "after\n");
  EXPECT_EQ(Drain(reader), "after\n");
}

// The real pair: RotatingLog (1 KiB files) written byte by byte on one thread, as the UART
// does, while the reader follows on another. The writer stays at most one file ahead of the
// reader (the reader's guarantee holds up to two rotations between reads; without the bound
// a descheduled reader on a loaded machine would make this test flaky, not the code wrong).
TEST(ConsoleLogReader, FollowsTheWorkersRotatingLogByteForByte) {
  TempDir dir;
  const std::string path = dir.Join("console.log");
  constexpr uint64_t kLimit = 1024;
  absl::StatusOr<std::unique_ptr<vmm::RotatingLog>> log = vmm::RotatingLog::Open(path, kLimit);
  ASSERT_TRUE(log.ok()) << log.status();
  std::string expected;
  for (int i = 0; i < 4000; ++i) {
    absl::StrAppend(&expected, "line ", i, "\n");
  }
  std::atomic<size_t> consumed{0};
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  std::thread writer([&] {
    for (size_t i = 0; i < expected.size(); ++i) {
      while (i - consumed.load() >= kLimit && absl::Now() < deadline) {
        absl::SleepFor(absl::Microseconds(50));
      }
      (*log)->Write(static_cast<uint8_t>(expected[i]));
    }
  });
  ConsoleLogReader reader(path);
  std::string seen;
  char buf[4096];
  while (seen.size() < expected.size() && absl::Now() < deadline) {
    absl::StatusOr<size_t> n = reader.Read(absl::MakeSpan(buf));
    if (!n.ok()) {
      ADD_FAILURE() << n.status();
      break;
    }
    seen.append(buf, *n);
    consumed.store(seen.size());
    if (*n == 0) {
      absl::SleepFor(absl::Microseconds(200));
    }
  }
  writer.join();
  EXPECT_EQ(Drain(reader), "");
  EXPECT_EQ(seen, expected);
  EXPECT_GT((*log)->stats().rotations, 30u);
  EXPECT_EQ((*log)->stats().dropped, 0u);
}

}  // namespace
}  // namespace supermachine::vm
