// File: vm_net_stats.cc
#include "daemon/metrics/vm_net_stats.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/vm/worker_control.h"

namespace supermachine::metrics {
namespace {

absl::Status NotAReply(absl::string_view line) {
  return absl::InvalidArgumentError(
      absl::StrCat("worker stats reply '", line.substr(0, 200), "' is not 'OK net ...'"));
}

}  // namespace

absl::StatusOr<VmNetStats> ParseStatsReply(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  VmNetStats s;
  if (line == "OK net=none") {
    return s;
  }
  absl::string_view rest = line;
  if (!absl::ConsumePrefix(&rest, "OK net ")) {
    return NotAReply(line);
  }
  s.enabled = true;
  struct Counter {
    absl::string_view key;
    uint64_t* value;
  };
  const Counter counters[] = {
      {"rx_packets", &s.rx_packets},         {"rx_bytes", &s.rx_bytes},
      {"tx_packets", &s.tx_packets},         {"tx_bytes", &s.tx_bytes},
      {"dropped_policy", &s.dropped_policy}, {"dropped_malformed", &s.dropped_malformed},
      {"dropped_rx", &s.dropped_rx},         {"reset_stale", &s.reset_stale},
  };
  for (absl::string_view item : absl::StrSplit(rest, ' ', absl::SkipEmpty())) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return NotAReply(line);
    }
    const absl::string_view key = item.substr(0, eq);
    const absl::string_view value = item.substr(eq + 1);
    if (key == "mac") {
      s.mac = std::string(value);
    } else if (key == "egress") {
      s.egress_policy = std::string(value);  // canonical: no spaces
    } else {
      for (const Counter& c : counters) {
        if (c.key == key && !absl::SimpleAtoi(value, c.value)) {
          return NotAReply(line);
        }
      }
    }
  }
  return s;
}

absl::StatusOr<VmNetStats> ReadVmNetStats(const std::string& control_socket, absl::Time deadline) {
  absl::StatusOr<std::string> reply = vm::WorkerControl(control_socket, "stats", deadline);
  if (absl::IsDeadlineExceeded(reply.status())) {
    // For a scrape or an inspect a worker too slow to answer is one that cannot answer now,
    // and asking again later may work: Unavailable, as for an unreachable one.
    return absl::UnavailableError(reply.status().message());
  }
  if (!reply.ok()) {
    return reply.status();
  }
  return ParseStatsReply(*reply);
}

}  // namespace supermachine::metrics
