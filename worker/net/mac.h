// File: mac.h
// Ethernet MAC addresses for guest NICs: text form and the per-process random default
// (locally administered, unicast), so every worker — and so every clone restored from one
// snapshot — gets its own.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::net {

using Mac = std::array<uint8_t, 6>;

// "02:00:5e:10:00:01"; rejects multicast addresses (a NIC cannot have one).
absl::StatusOr<Mac> ParseMac(absl::string_view text);
std::string ToString(const Mac& mac);
// 5 random bytes after 0x02 would do; we keep a recognisable 02:5a ("Z") prefix.
Mac RandomLocalMac();

}  // namespace supermachine::net
