// File: egress_policy.h
// Which destinations a guest may send to: the policy types, their text form ("allow_all" |
// "deny_private" | "allowlist:CIDR,..." | "denylist:CIDR,..."; "" = deny_private) and the pure
// decision for one destination. The only parser of the grammar: bake requests
// (daemon/bake/specs.h re-exports it), Acquire overrides (daemon/api) and the worker's --net
// use it. Kept in the worker with no dependency beyond Abseil so the per-frame path stays
// light; the daemon links it, not the other way round.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::net {

// An IP address: IPv4 in the first 4 bytes when !v6. Network byte order.
struct IpAddr {
  bool v6 = false;
  std::array<uint8_t, 16> b{};
  bool operator==(const IpAddr&) const = default;
};

struct Cidr {
  IpAddr addr;
  int prefix_len = 0;
  bool operator==(const Cidr&) const = default;
  bool Contains(const IpAddr& a) const;
};

// "10.0.0.0/8", "192.168.1.7" (= /32), "fd00::/8", "::1" (= /128). Host bits must be zero.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);
absl::StatusOr<IpAddr> ParseIp(absl::string_view text);
std::string ToString(const IpAddr& a);
std::string ToString(const Cidr& c);

struct EgressPolicy {
  enum class Kind { kAllowAll, kDenyPrivate, kAllowlist, kDenylist };
  Kind kind = Kind::kDenyPrivate;
  std::vector<Cidr> cidrs;  // kAllowlist / kDenylist
  bool operator==(const EgressPolicy&) const = default;
};

absl::StatusOr<EgressPolicy> ParseEgressPolicy(absl::string_view text);
std::string ToString(const EgressPolicy& p);

// The ranges deny_private refuses (RFC 1918, loopback, link-local incl. 169.254.169.254,
// CGNAT 100.64/10, "this network" 0/8, multicast and limited broadcast; ::1, ::/128, fe80::/10,
// ULA fc00::/7, ff00::/8, and IPv4-mapped ::ffff:0:0/96 so v4 rules cannot be dodged).
const std::vector<Cidr>& PrivateRanges();

// Traffic the decision is about: the destination, and whether it is DNS to the resolver the
// VM was given (which stays allowed under every policy unless a denylist names it).
struct Destination {
  IpAddr addr;
  bool dns_to_resolver = false;
};

bool Allowed(const EgressPolicy& policy, const Destination& dst);

}  // namespace supermachine::net
