// File: layer_cache.h
// Content-addressed cache of converted layers under one directory:
//   layers/<algo>_<hex>.sqfs   one squashfs per layer blob digest (the caller's digest; the
//                              blob itself is verified by the image pipeline before this)
//   layers/<algo>_<hex>.sqfs.sha256   SHA-256 of that file (hex), written after it; a hit
//                              re-hashes the file against it, so a damaged entry anywhere in
//                              the file is converted again rather than handed to a guest
//   locks/<algo>_<hex>.lock    flock()ed while a digest is being converted
//   images/<id>.json           per image: its layer digests and squashfs paths, lowest first
//
// Lifecycle: GetOrConvert() returns the cached path on a hit without converting; on a miss it
// takes the digest's lock, re-checks (another process may have just finished), converts to a
// temp file beside the final name, renames it in (see converter.h), then records its checksum.
// Entries are never modified in place; removal (GC) is a later concern of the store.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/layer/converter.h"

namespace supermachine::layer {

struct CachedLayer {
  std::string digest;
  std::string path;   // Absolute path of the .sqfs.
  bool cache_hit = false;
  ConvertStats stats;  // Zero on a hit.
};

struct ImageLayerIndex {
  std::string image_id;
  std::vector<CachedLayer> layers;  // Lowest first; cache_hit/stats are not stored.
};

class LayerCache {
 public:
  // Creates `dir` and its sub-directories if missing.
  static absl::StatusOr<LayerCache> Open(const std::string& dir);

  // The checksum file that belongs to a cached squashfs (`<path>.sha256`); GC removes it with
  // the entry.
  static std::string ChecksumPathOf(const std::string& sqfs_path);

  // `layers/<algo>_<hex>.sqfs` for a digest "sha256:<64 hex>" or "sha512:<128 hex>";
  // InvalidArgument for anything else.
  absl::StatusOr<std::string> LayerPath(absl::string_view digest) const;

  // The cached squashfs for `digest`, converting `blob_path` on a miss (options.layer_name
  // defaults to the digest). Concurrent calls for one digest convert once.
  absl::StatusOr<CachedLayer> GetOrConvert(absl::string_view digest, const std::string& blob_path,
                                           ConvertOptions options) const;

  // Atomically writes images/<id>.json listing `layer_digests` (lowest first), each of which
  // must already be cached (else NotFound). `image_id` is a digest or [A-Za-z0-9._-]+.
  absl::Status WriteImageIndex(absl::string_view image_id,
                               const std::vector<std::string>& layer_digests) const;
  absl::StatusOr<ImageLayerIndex> ReadImageIndex(absl::string_view image_id) const;

  const std::string& dir() const { return dir_; }

 private:
  explicit LayerCache(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<std::string> ImageIndexPath(absl::string_view image_id) const;

  std::string dir_;
};

}  // namespace supermachine::layer
