// File: token_cache.h
// Bearer tokens keyed by (realm, service, scope, user), kept until shortly before they expire.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/image/clock.h"

namespace supermachine::image {

class TokenCache {
 public:
  // Tokens without "expires_in" live this long (the distribution token spec's default).
  static constexpr absl::Duration kDefaultLifetime = absl::Seconds(60);
  // Treat a token as expired this long before its deadline, so a request does not carry a
  // token that dies in flight.
  static constexpr absl::Duration kSafetyMargin = absl::Seconds(5);

  explicit TokenCache(const Clock* clock) : clock_(clock) {}

  // `issued_at` (from the token response) anchors expiry; absl::InfinitePast() = now.
  void Put(const std::string& key, const std::string& token, absl::Duration expires_in,
           absl::Time issued_at = absl::InfinitePast());
  std::optional<std::string> Get(const std::string& key) const;

 private:
  struct Entry {
    std::string token;
    absl::Time expires;
  };
  const Clock* clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::image
