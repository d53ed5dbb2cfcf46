// File: guest-agent/rpc/readiness.h
// Pure parsers behind `wait_ready`: TCP listeners from /proc/net/tcp{,6} and CPU time from
// /proc/stat. Kept free of I/O so tests feed them text.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace supermachine::agent::rpc {

// True when the /proc/net/tcp or /proc/net/tcp6 `table` has a socket in LISTEN (state 0A)
// on local `port`, whatever its local address. Malformed lines are skipped.
bool HasTcpListener(std::string_view table, uint16_t port);

struct CpuTimes {
  uint64_t idle = 0;   // idle + iowait jiffies, all CPUs.
  uint64_t total = 0;  // Sum of every field of the aggregate "cpu" line.
};

// The aggregate "cpu " line of /proc/stat; nullopt when it is missing or malformed.
std::optional<CpuTimes> ParseProcStat(std::string_view text);

// Idle share in [0, 1] between two samples; 1 when no time passed.
double IdleFraction(const CpuTimes& before, const CpuTimes& after);

}  // namespace supermachine::agent::rpc
