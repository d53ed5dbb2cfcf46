// File: ref_cache.h
// Registry ref → manifest digest cache with a TTL, so repeated pulls of `redis:7` within the
// TTL do not ask the registry (the digest's content is in the blob store).
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/image/clock.h"
#include "daemon/image/digest.h"

namespace supermachine::image {

inline constexpr absl::Duration kDefaultRefCacheTtl = absl::Seconds(60);
inline constexpr char kRefCacheTtlEnv[] = "SUPERMACHINE_REGISTRY_REF_CACHE_TTL_MS";

// The TTL from the value of SUPERMACHINE_REGISTRY_REF_CACHE_TTL_MS ("" or unparsable → the
// 60 s default; "0" disables the cache for `missing` pulls).
absl::Duration RefCacheTtlFromEnv(absl::string_view value);

struct RefCacheEntry {
  Digest digest;
  absl::Time created;
};

// Files <dir>/<sha256(key)>.json, written temp+rename. Thread- and process-safe (last writer
// wins, readers never see partial files).
class RefCache {
 public:
  RefCache(std::string dir, const Clock* clock, absl::Duration ttl);

  // The entry for `key` if younger than the TTL (or of any age when ignore_ttl, used by the
  // `never` pull policy). nullopt when absent/expired; an unreadable entry counts as absent.
  std::optional<RefCacheEntry> Lookup(const std::string& key, bool ignore_ttl) const;
  absl::Status Store(const std::string& key, const Digest& digest) const;

  absl::Duration ttl() const { return ttl_; }

 private:
  std::string PathFor(const std::string& key) const;
  std::string dir_;
  const Clock* clock_;
  absl::Duration ttl_;
};

}  // namespace supermachine::image
