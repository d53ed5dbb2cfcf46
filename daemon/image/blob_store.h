// File: blob_store.h
// Content-addressed blob cache: <root>/blobs/sha256/<hex>, the layout of an OCI image layout's
// blobs directory, so a committed blob is its own proof of content.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/digest.h"
#include "worker/base/unique_fd.h"

namespace supermachine::image {

// Receives a blob's bytes during BlobStore::Ingest; hashes as it writes.
class BlobWriter {
 public:
  // Appends; DataLoss if this would exceed the expected size (a
  // server sending more than the descriptor says is as wrong as one sending less).
  absl::Status Write(const void* data, size_t size);
  absl::Status Write(absl::string_view data) { return Write(data.data(), data.size()); }
  // Drops everything written so far (a retried download starts over).
  absl::Status Reset();
  int64_t written() const { return written_; }
  std::optional<int64_t> expected_size() const { return expected_size_; }

 private:
  friend class BlobStore;
  BlobWriter(int fd, const Digest& want, std::optional<int64_t> expected_size)
      : fd_(fd), want_(want), expected_size_(expected_size) {}
  int fd_;
  const Digest& want_;
  std::optional<int64_t> expected_size_;
  int64_t written_ = 0;
  Sha256Hasher hasher_;
};

struct IngestResult {
  std::string path;              // the committed blob
  int64_t size = 0;
  bool already_present = false;  // true: no bytes were fetched (cache hit)
};

// Lifecycle of one blob (after containerd's content.Store / local writer Commit):
//   absent ──Ingest──▶ ingesting ──verify ok──▶ committed
//                          └──── any error ────▶ aborted (temp file removed; cache unchanged)
// * ingesting: Ingest holds an exclusive flock on <root>/locks/sha256/<hex>.lock for the
//   whole write, so concurrent ingests of one digest (threads or processes) fetch it once:
//   the others wait, find it committed, and return already_present.
//   Bytes go to <root>/blobs/sha256/.ingest-<hex>-XXXXXX (same directory as the final name);
//   ingest files of that digest left by a crashed writer are removed first. A committed entry
//   found damaged on disk (not a regular file, wrong size or digest) is removed and fetched
//   again rather than returned.
// * commit: written size == expected size (when known), sha256 == digest, fsync(file),
//   rename(temp, <hex>), fsync(directory). A mismatch is DataLoss and nothing is committed.
// * committed blobs are immutable and never rewritten; readers only ever open committed
//   paths, so they can never see a partial blob. Removal (GC) is not part of this interface.
// Thread-safe: all state is on disk; a BlobStore is a cheap handle.
class BlobStore {
 public:
  // Creates <root>/blobs/sha256 and <root>/locks/sha256 as needed.
  static absl::StatusOr<BlobStore> Open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string PathFor(const Digest& digest) const;
  bool Contains(const Digest& digest) const;
  // Contains, and the committed bytes still hash to `digest` (reads the whole blob): for
  // layer blobs about to be used from the cache, which a disk error or a stray edit may have
  // damaged since they were committed. A damaged entry is replaced by the next Ingest.
  bool ContainsVerified(const Digest& digest) const;

  // Reads a committed blob of at most `max_size` bytes (manifests, configs) and re-checks
  // its digest, so on-disk corruption is reported (DataLoss) rather than parsed.
  // NotFound when absent.
  absl::StatusOr<std::string> ReadSmall(const Digest& digest, int64_t max_size) const;

  // Makes `digest` present. If it is not committed yet, calls `fill` with a writer and commits
  // what it wrote (see lifecycle). An error from `fill` is returned as is; verification
  // failures are DataLoss: "blob sha256:ab..: digest mismatch (got sha256:cd..)" or
  // "blob sha256:ab..: truncated: got 10 of 20 bytes".
  absl::StatusOr<IngestResult> Ingest(const Digest& digest, std::optional<int64_t> expected_size,
                                      absl::FunctionRef<absl::Status(BlobWriter&)> fill) const;

  // Ingest of bytes already in memory.
  absl::StatusOr<IngestResult> PutBytes(const Digest& digest, absl::string_view bytes) const;

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string BlobDir() const;
  std::string root_;
};

}  // namespace supermachine::image
