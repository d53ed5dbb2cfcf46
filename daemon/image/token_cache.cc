// File: token_cache.cc
// Expiring bearer-token cache.
#include "daemon/image/token_cache.h"

namespace supermachine::image {

void TokenCache::Put(const std::string& key, const std::string& token, absl::Duration expires_in,
                     absl::Time issued_at) {
  const absl::Time now = clock_->Now();
  // A token server clock far from ours must not make the token look valid for longer.
  absl::Time start = issued_at == absl::InfinitePast() ? now : std::min(issued_at, now);
  if (expires_in <= absl::ZeroDuration()) {
    expires_in = kDefaultLifetime;
  }
  absl::MutexLock lock(&mu_);
  entries_[key] = Entry{token, start + expires_in};
}

std::optional<std::string> TokenCache::Get(const std::string& key) const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || now + kSafetyMargin >= it->second.expires) {
    return std::nullopt;
  }
  return it->second.token;
}

}  // namespace supermachine::image
