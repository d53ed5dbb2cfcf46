// File: frame_filter_fuzz.cc
// Fuzz target: arbitrary bytes as a guest frame through the parser and the egress filter under
// every policy kind; a refused frame's reply must itself parse. Seeds in fuzz_corpus/ (a TCP
// SYN, a UDP DNS query, an IPv6 frame with an extension header, ARP).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "worker/net/frame.h"

namespace n = ::supermachine::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const n::FilterConfig* const configs = [] {
    auto* c = new n::FilterConfig[4];
    const char* policies[] = {"deny_private", "allow_all", "allowlist:10.0.2.2,2001:db8::/32",
                              "denylist:1.0.0.0/8,fd00::/8"};
    for (int i = 0; i < 4; ++i) {
      c[i].policy = *n::ParseEgressPolicy(policies[i]);
      c[i].resolver = *n::ParseIp("10.0.2.3");
    }
    return c;
  }();
  const absl::Span<const uint8_t> frame(data, size);
  for (int i = 0; i < 4; ++i) {
    const n::FilterVerdict v = n::FilterGuestFrame(configs[i], frame);
    if (v.pass && v.malformed) {
      std::abort();
    }
    if (!v.reply.empty() && !n::ParseFrame(v.reply).has_value()) {
      std::abort();  // Our own replies must be well-formed.
    }
  }
  return 0;
}
