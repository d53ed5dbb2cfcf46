// File: ref_cache.cc
// JSON files keyed by the hash of the ref.
#include "daemon/image/ref_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/image/json_util.h"
#include "worker/base/status_macros.h"
#include "worker/base/unique_fd.h"

namespace supermachine::image {

absl::Duration RefCacheTtlFromEnv(absl::string_view value) {
  int64_t ms = 0;
  if (value.empty() || !absl::SimpleAtoi(value, &ms) || ms < 0) {
    return kDefaultRefCacheTtl;
  }
  return absl::Milliseconds(ms);
}

RefCache::RefCache(std::string dir, const Clock* clock, absl::Duration ttl)
    : dir_(std::move(dir)), clock_(clock), ttl_(ttl) {}

std::string RefCache::PathFor(const std::string& key) const {
  return absl::StrCat(dir_, "/", Sha256Of(key).hex(), ".json");
}

std::optional<RefCacheEntry> RefCache::Lookup(const std::string& key, bool ignore_ttl) const {
  std::ifstream in(PathFor(key), std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = json_util::Parse(ss.str(), "ref cache");
  if (!j.ok() || !j->is_object()) {
    return std::nullopt;
  }
  auto stored_key = json_util::OptionalString(*j, "key", "");
  auto digest_text = json_util::OptionalString(*j, "digest", "");
  auto created_ms = json_util::RequiredInt(*j, "created_unix_ms", "");
  if (!stored_key.ok() || *stored_key != key || !digest_text.ok() || !created_ms.ok()) {
    return std::nullopt;
  }
  auto digest = Digest::Parse(*digest_text);
  if (!digest.ok()) {
    return std::nullopt;
  }
  RefCacheEntry e{.digest = *digest, .created = absl::FromUnixMillis(*created_ms)};
  const absl::Duration age = clock_->Now() - e.created;
  if (!ignore_ttl && (ttl_ <= absl::ZeroDuration() || age >= ttl_ || age < -ttl_)) {
    return std::nullopt;
  }
  return e;
}

absl::Status RefCache::Store(const std::string& key, const Digest& digest) const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("create ref cache dir ", dir_, ": ", ec.message()));
  }
  nlohmann::json j = {{"key", key},
                      {"digest", digest.ToString()},
                      {"created_unix_ms", absl::ToUnixMillis(clock_->Now())}};
  const std::string text = j.dump(2);
  const std::string final_path = PathFor(key);
  std::string tmp = absl::StrCat(final_path, ".tmp-XXXXXX");
  base::UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) {
    return base::ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  }
  bool done = false;
  absl::Cleanup cleanup = [&] {
    if (!done) {
      ::unlink(tmp.c_str());
    }
  };
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd.get()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("write ", tmp));
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  }
  done = true;
  return absl::OkStatus();
}

}  // namespace supermachine::image
