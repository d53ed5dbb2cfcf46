// File: egress_policy_fuzz.cc
// Fuzzes the egress policy grammar (worker/net/egress_policy.h): the text arrives from bake
// requests, Acquire overrides and snapshot state, so it is untrusted. Besides "no crash", the
// canonical text form must round-trip: ToString(Parse(t)) parses back to the same policy, and
// the same for single CIDRs and addresses. A parsed policy's decision runs over a few
// destinations (v4, v6, v4-mapped) to cover Contains with every prefix the fuzzer makes.
// The frame parser and filter have their own target (tests/unit/net/frame_filter_fuzz.cc).
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "worker/net/egress_policy.h"

namespace n = ::supermachine::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  auto policy = n::ParseEgressPolicy(text);
  if (policy.ok()) {
    const std::string canonical = n::ToString(*policy);
    auto again = n::ParseEgressPolicy(canonical);
    if (!again.ok() || !(*again == *policy)) {
      __builtin_trap();  // The canonical form must mean the same policy.
    }
    static const char* const kDestinations[] = {"10.1.2.3", "8.8.8.8", "::1", "2001:db8::1",
                                                "::ffff:192.168.0.1", "169.254.169.254"};
    for (const char* d : kDestinations) {
      auto ip = n::ParseIp(d);
      if (ip.ok()) {
        (void)n::Allowed(*policy, {.addr = *ip});
        (void)n::Allowed(*policy, {.addr = *ip, .dns_to_resolver = true});
      }
    }
  }

  auto cidr = n::ParseCidr(text);
  if (cidr.ok()) {
    auto again = n::ParseCidr(n::ToString(*cidr));
    if (!again.ok() || !(*again == *cidr) || !cidr->Contains(cidr->addr)) {
      __builtin_trap();  // Round trip; a network contains its own address.
    }
  }
  auto ip = n::ParseIp(text);
  if (ip.ok()) {
    auto again = n::ParseIp(n::ToString(*ip));
    if (!again.ok() || !(*again == *ip)) {
      __builtin_trap();
    }
  }
  return 0;
}
