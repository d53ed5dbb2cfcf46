// File: vm_net_stats.h
// A VM's network counters as its worker reports them: the control socket's `stats` reply
// ("OK net mac=.. egress=.. rx_packets=.. ..." or "OK net=none"; docs/networking.md "Metrics"),
// parsed and read. The daemon asks at scrape time (metrics) and for `smctl inspect`; the
// worker keeps the counters, so nothing here accumulates state.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace supermachine::metrics {

struct VmNetStats {
  bool enabled = false;  // false: the VM has no network device (the rest is zero)
  std::string mac;
  std::string egress_policy;  // canonical text of the policy the worker enforces
  uint64_t rx_packets = 0;    // network → guest, including our RST/ICMP replies
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;  // guest → network, passed the egress filter
  uint64_t tx_bytes = 0;
  uint64_t dropped_policy = 0;     // guest frames the egress policy refused
  uint64_t dropped_malformed = 0;  // guest frames too broken to judge
  uint64_t dropped_rx = 0;         // host frames no guest buffer could take
  uint64_t reset_stale = 0;        // connections from before a restore, reset
  bool operator==(const VmNetStats&) const = default;
};

// Parses one `stats` reply line. Unknown key=value items are ignored (a newer worker may add
// counters); a missing counter stays 0. InvalidArgument for "ERR ..." or anything not a stats
// reply, quoting it.
absl::StatusOr<VmNetStats> ParseStatsReply(absl::string_view line);

// Sends `stats` on the worker's control socket (vm::WorkerControl) and parses the reply.
// Unavailable when the socket cannot be reached or answers nothing before `deadline` (the
// message says so); FailedPrecondition for a VM without a control socket; InvalidArgument
// from ParseStatsReply.
absl::StatusOr<VmNetStats> ReadVmNetStats(const std::string& control_socket, absl::Time deadline);

}  // namespace supermachine::metrics
