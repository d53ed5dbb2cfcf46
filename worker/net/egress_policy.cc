// File: egress_policy.cc
// Policy parsing and the per-destination decision.
#include "worker/net/egress_policy.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace supermachine::net {

bool Cidr::Contains(const IpAddr& a) const {
  if (a.v6 != addr.v6) {
    return false;
  }
  int bits = prefix_len;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.b[i] & mask) != (addr.b[i] & mask)) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<IpAddr> ParseIp(absl::string_view text) {
  const std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.b.data()) == 1) {
    return a;
  }
  a.v6 = true;
  if (inet_pton(AF_INET6, s.c_str(), a.b.data()) == 1) {
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 or IPv6 address"));
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  Cidr c;
  absl::string_view addr = text;
  absl::string_view len;
  if (const size_t slash = text.find('/'); slash != absl::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
  }
  absl::StatusOr<IpAddr> ip = ParseIp(addr);
  if (!ip.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("CIDR '", text, "': ", ip.status().message()));
  }
  c.addr = *ip;
  const int max = c.addr.v6 ? 128 : 32;
  c.prefix_len = max;
  if (!len.empty() || text.find('/') != absl::string_view::npos) {
    if (!absl::SimpleAtoi(len, &c.prefix_len) || c.prefix_len < 0 || c.prefix_len > max ||
        len.find_first_not_of("0123456789") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("CIDR '", text, "': prefix length must be 0 to ", max));
    }
  }
  Cidr masked = c;
  masked.addr.b.fill(0);
  for (int i = 0; i < c.prefix_len; ++i) {
    masked.addr.b[i / 8] |= c.addr.b[i / 8] & (0x80 >> (i % 8));
  }
  if (masked.addr.b != c.addr.b) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CIDR '", text, "' has host bits set; did you mean ", ToString(masked), "?"));
  }
  return c;
}

std::string ToString(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.b.data(), buf, sizeof(buf));
  return buf;
}

std::string ToString(const Cidr& c) { return absl::StrCat(ToString(c.addr), "/", c.prefix_len); }

absl::StatusOr<EgressPolicy> ParseEgressPolicy(absl::string_view text) {
  EgressPolicy p;
  if (text.empty() || text == "deny_private") {
    return p;
  }
  if (text == "allow_all") {
    p.kind = EgressPolicy::Kind::kAllowAll;
    return p;
  }
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "allowlist:")) {
    p.kind = EgressPolicy::Kind::kAllowlist;
  } else if (absl::ConsumePrefix(&rest, "denylist:")) {
    p.kind = EgressPolicy::Kind::kDenylist;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "egress policy '", text,
        "': expected allow_all, deny_private, allowlist:CIDR,... or denylist:CIDR,..."));
  }
  for (absl::string_view item : absl::StrSplit(rest, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) {
      continue;
    }
    absl::StatusOr<Cidr> c = ParseCidr(item);
    if (!c.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("egress policy '", text, "': ", c.status().message()));
    }
    if (std::find(p.cidrs.begin(), p.cidrs.end(), *c) == p.cidrs.end()) {
      p.cidrs.push_back(*c);
    }
  }
  if (p.cidrs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("egress policy '", text, "': the list needs at least one CIDR"));
  }
  return p;
}

std::string ToString(const EgressPolicy& p) {
  switch (p.kind) {
    case EgressPolicy::Kind::kAllowAll:
      return "allow_all";
    case EgressPolicy::Kind::kDenyPrivate:
      return "deny_private";
    case EgressPolicy::Kind::kAllowlist:
    case EgressPolicy::Kind::kDenylist:
      break;
  }
  std::vector<std::string> items;
  items.reserve(p.cidrs.size());
  for (const Cidr& c : p.cidrs) {
    items.push_back(ToString(c));
  }
  return absl::StrCat(p.kind == EgressPolicy::Kind::kAllowlist ? "allowlist:" : "denylist:",
                      absl::StrJoin(items, ","));
}

const std::vector<Cidr>& PrivateRanges() {
  static const std::vector<Cidr>* const ranges = [] {
    auto* v = new std::vector<Cidr>;
    for (const char* s :
         {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
          "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128",
          "::ffff:0:0/96", "fc00::/7", "fe80::/10", "ff00::/8"}) {
      v->push_back(*ParseCidr(s));
    }
    return v;
  }();
  return *ranges;
}

namespace {

bool AnyContains(const std::vector<Cidr>& cidrs, const IpAddr& a) {
  return std::any_of(cidrs.begin(), cidrs.end(), [&](const Cidr& c) { return c.Contains(a); });
}

}  // namespace

bool Allowed(const EgressPolicy& policy, const Destination& dst) {
  switch (policy.kind) {
    case EgressPolicy::Kind::kAllowAll:
      return true;
    case EgressPolicy::Kind::kDenyPrivate:
      return dst.dns_to_resolver || !AnyContains(PrivateRanges(), dst.addr);
    case EgressPolicy::Kind::kAllowlist:
      return dst.dns_to_resolver || AnyContains(policy.cidrs, dst.addr);
    case EgressPolicy::Kind::kDenylist:
      return !AnyContains(policy.cidrs, dst.addr);
  }
  return false;
}

}  // namespace supermachine::net
