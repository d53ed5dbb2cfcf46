// File: state_file_test.cc
// The state file's header checks: round trip, and each way a file can be wrong fails with a
// message that says what is wrong.
#include "worker/snapshot/state_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/support/temp_dir.h"

namespace supermachine::snapshot {
namespace {

using ::testing::HasSubstr;

v1::SnapshotState SampleState() {
  v1::SnapshotState state;
  state.set_worker_version("test-1");
  state.set_vcpu_count(2);
  state.mutable_cpu()->set_vendor("GenuineIntel");
  state.add_vcpus()->set_regs(std::string(144, '\x11'));
  state.add_vcpus()->set_regs(std::string(144, '\x22'));
  state.mutable_memory()->set_file_name("memory");
  state.mutable_memory()->set_file_size(64 << 20);
  return state;
}

TEST(StateFile, RoundTripsThroughDisk) {
  test_support::TempDir dir;
  const std::string path = dir.Join("state");
  ASSERT_TRUE(WriteStateFile(path, SampleState()).ok());

  absl::StatusOr<v1::SnapshotState> read = ReadStateFile(path);

  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->worker_version(), "test-1");
  EXPECT_EQ(read->vcpu_count(), 2u);
  EXPECT_EQ(read->vcpus(1).regs(), std::string(144, '\x22'));
  EXPECT_EQ(read->format_major(), kFormatMajor);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"state"});  // No temp file left behind.
}

TEST(StateFile, RejectsWrongMagic) {
  std::string bytes = EncodeStateFile(SampleState());
  bytes[0] = 'X';

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("not a supermachine snapshot state file"));
}

TEST(StateFile, RejectsTruncatedPayload) {
  std::string bytes = EncodeStateFile(SampleState());
  bytes.resize(bytes.size() - 10);

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("truncated state file"));
}

TEST(StateFile, RejectsTruncatedHeader) {
  std::string bytes = EncodeStateFile(SampleState()).substr(0, 20);

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("truncated state file header"));
}

TEST(StateFile, RejectsFlippedPayloadByte) {
  std::string bytes = EncodeStateFile(SampleState());
  bytes[kStateHeaderSize + 5] ^= 0x01;

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("checksum mismatch"));
}

TEST(StateFile, RejectsNewerMajorVersion) {
  std::string bytes = EncodeStateFile(SampleState());
  bytes[8] = static_cast<char>(kFormatMajor + 1);

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("snapshot format " + std::to_string(kFormatMajor + 1) + "." +
                                                  std::to_string(kFormatMinor)));
}

TEST(StateFile, RejectsNewerMinorVersion) {
  std::string bytes = EncodeStateFile(SampleState());
  bytes[10] = static_cast<char>(kFormatMinor + 1);

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("restore it with the worker version"));
}

TEST(StateFile, RejectsTrailingBytes) {
  std::string bytes = EncodeStateFile(SampleState()) + "junk";

  absl::StatusOr<v1::SnapshotState> read = DecodeStateFile(bytes, "f");

  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
}

TEST(StateFile, ReportsMissingFileAsNotFound) {
  test_support::TempDir dir;

  absl::StatusOr<v1::SnapshotState> read = ReadStateFile(dir.Join("nope"));

  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("nope"));
}

}  // namespace
}  // namespace supermachine::snapshot
