// File: blob_store_test.cc
// Blob store lifecycle: verified commit, nothing enters the cache on mismatch/truncation,
// concurrent ingests of one digest fetch it once.
#include "daemon/image/blob_store.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "tests/unit/image/testing/temp_dir.h"
#include "worker/base/unique_fd.h"

namespace supermachine::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(BlobStore, CommitsVerifiedBlob) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  const Digest d = Sha256Of("layer bytes");
  auto r = store->PutBytes(d, "layer bytes");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->already_present);
  EXPECT_EQ(r->path, dir.path() + "/blobs/sha256/" + d.hex());
  EXPECT_EQ(testing::ReadFileOrDie(r->path), "layer bytes");
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), ElementsAre(d.hex()));
}

TEST(BlobStore, SecondIngestIsAlreadyPresentWithoutCallingFill) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("x");
  ASSERT_TRUE(store.PutBytes(d, "x").ok());
  bool called = false;
  auto r = store.Ingest(d, 1, [&](BlobWriter&) {
    called = true;
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->already_present);
  EXPECT_FALSE(called);
}

TEST(BlobStore, DigestMismatchLeavesCacheUnchanged) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("expected");
  auto r = store.Ingest(d, 8, [](BlobWriter& w) { return w.Write("tampered"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("digest mismatch"));
  EXPECT_FALSE(store.Contains(d));
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), IsEmpty());
}

TEST(BlobStore, TruncatedBlobLeavesCacheUnchanged) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("0123456789");
  auto r = store.Ingest(d, 10, [](BlobWriter& w) { return w.Write("01234"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("truncated: got 5 of 10 bytes"));
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), IsEmpty());
}

TEST(BlobStore, OversizedBlobIsRefusedWhileWriting) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("abc");
  auto r = store.Ingest(d, 3, [](BlobWriter& w) { return w.Write("abcdef"); });
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("more than the expected 3 bytes"));
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), IsEmpty());
}

TEST(BlobStore, FillErrorIsReturnedAndNothingIsLeft) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  auto r = store.Ingest(Sha256Of("a"), std::nullopt, [](BlobWriter& w) {
    w.Write("a").IgnoreError();
    return absl::UnavailableError("connection reset");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), IsEmpty());
}

TEST(BlobStore, ResetStartsOver) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("good");
  auto r = store.Ingest(d, 4, [](BlobWriter& w) {
    w.Write("ba").IgnoreError();
    w.Reset().IgnoreError();
    return w.Write("good");
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(testing::ReadFileOrDie(r->path), "good");
}

TEST(BlobStore, ConcurrentIngestsOfOneDigestFetchOnce) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const std::string bytes(1 << 20, 'z');
  const Digest d = Sha256Of(bytes);
  std::atomic<int> fills{0};
  std::atomic<int> present{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = store.Ingest(d, static_cast<int64_t>(bytes.size()), [&](BlobWriter& w) {
        ++fills;
        absl::SleepFor(absl::Milliseconds(50));  // widen the race window
        return w.Write(bytes);
      });
      if (r.ok() && r->already_present) {
        ++present;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(fills.load(), 1);
  EXPECT_EQ(present.load(), 7);
  EXPECT_EQ(testing::ReadFileOrDie(store.PathFor(d)), bytes);
}

TEST(BlobStore, ConcurrentIngestsFromTwoProcessesFetchOnce) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const std::string bytes(256 << 10, 'p');
  const Digest d = Sha256Of(bytes);
  const std::string fills_log = dir.Join("fills.log");
  auto ingest = [&] {
    return store.Ingest(d, static_cast<int64_t>(bytes.size()), [&](BlobWriter& w) {
      base::UniqueFd log(::open(fills_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
      (void)!::write(log.get(), "fill\n", 5);
      absl::SleepFor(absl::Milliseconds(100));  // widen the race window
      return w.Write(bytes);
    });
  };
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::_exit(ingest().ok() ? 0 : 1);
  }
  auto mine = ingest();
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  EXPECT_EQ(testing::ReadFileOrDie(fills_log), "fill\n");
  EXPECT_EQ(testing::ReadFileOrDie(store.PathFor(d)), bytes);
}

TEST(BlobStore, IngestRemovesIngestFilesLeftByACrashedWriter) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("fresh");
  testing::WriteFileOrDie(dir.Join("blobs/sha256/.ingest-" + d.hex() + "-dead01"), "partial");
  ASSERT_TRUE(store.PutBytes(d, "fresh").ok());
  EXPECT_THAT(testing::ListDir(dir.Join("blobs/sha256")), ElementsAre(d.hex()));
}

TEST(BlobStore, ReadSmallDetectsOnDiskCorruption) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  const Digest d = Sha256Of("{}");
  ASSERT_TRUE(store.PutBytes(d, "{}").ok());
  testing::WriteFileOrDie(store.PathFor(d), "{x");
  auto r = store.ReadSmall(d, 100);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

TEST(BlobStore, ReadSmallOfMissingBlobIsNotFound) {
  testing::TempDir dir;
  auto store = *BlobStore::Open(dir.path());
  EXPECT_EQ(store.ReadSmall(Sha256Of("nope"), 100).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace supermachine::image
