// File: mac.cc
#include "worker/net/mac.h"

#include <sys/random.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace supermachine::net {

absl::StatusOr<Mac> ParseMac(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  Mac mac{};
  bool ok = parts.size() == 6;
  for (size_t i = 0; ok && i < 6; ++i) {
    uint32_t v = 0;
    ok = parts[i].size() == 2 && absl::SimpleHexAtoi(parts[i], &v);
    mac[i] = static_cast<uint8_t>(v);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("MAC '", text, "': expected six hex pairs like 02:5a:00:00:00:01"));
  }
  if (mac[0] & 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("MAC '", text, "' is a multicast address (low bit of the first byte set)"));
  }
  return mac;
}

std::string ToString(const Mac& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

Mac RandomLocalMac() {
  Mac mac = {0x02, 0x5a, 0, 0, 0, 0};
  uint8_t r[4] = {};
  if (getrandom(r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r))) {
    // getrandom cannot fail for 4 bytes once the pool is up; fall back to time-ish bits.
    const auto t = reinterpret_cast<uintptr_t>(&r);
    for (size_t i = 0; i < 4; ++i) {
      r[i] = static_cast<uint8_t>(t >> (8 * i));
    }
  }
  for (size_t i = 0; i < 4; ++i) {
    mac[2 + i] = r[i];
  }
  return mac;
}

}  // namespace supermachine::net
