// File: file_hash_test.cc
// FingerprintFile hashes across its read-chunk boundaries and reports mode and errors.
#include "daemon/bake/file_hash.h"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace supermachine::bake {
namespace {

using ::testing::HasSubstr;

TEST(FingerprintFile, EqualsSha256OfWholeContentAcrossChunks) {
  test_support::TempDir dir;
  // Three 64 KiB chunks and a tail, with a pattern so a skipped or repeated chunk shows.
  std::string content;
  for (int i = 0; i < 3 * 65536 + 7; ++i) {
    content.push_back(static_cast<char>(i * 31 % 251));
  }
  test_support::WriteFileOrDie(dir.Join("big"), content);
  absl::StatusOr<FileFingerprint> fp = FingerprintFile(dir.Join("big"));
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(fp->digest, image::Sha256Of(content));
  EXPECT_EQ(fp->size, content.size());
}

TEST(FingerprintFile, EmptyFileHasEmptyDigest) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("empty"), "");
  EXPECT_EQ(FingerprintFile(dir.Join("empty"))->digest.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(FingerprintFile, ReportsModeBits) {
  test_support::TempDir dir;
  test_support::WriteFileOrDie(dir.Join("run.sh"), "#!/bin/sh\n");
  ASSERT_EQ(chmod(dir.Join("run.sh").c_str(), 04750), 0);
  EXPECT_EQ(FingerprintFile(dir.Join("run.sh"))->mode, 04750u);
}

TEST(FingerprintFile, MissingFileIsNotFoundNamingPath) {
  test_support::TempDir dir;
  absl::Status st = FingerprintFile(dir.Join("nope")).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr(dir.Join("nope")));
}

TEST(FingerprintFile, RefusesDirectory) {
  test_support::TempDir dir;
  EXPECT_THAT(FingerprintFile(dir.path()).status().message(), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace supermachine::bake
