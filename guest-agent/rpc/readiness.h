// File: guest-agent/rpc/readiness.h
// Pure parsers and decisions behind `wait_ready`: TCP listeners from /proc/net/tcp{,6}, CPU
// time from /proc/stat and the idle tracker. Kept free of I/O so tests feed them text.
#pragma once

#include <chrono>
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

// The "idle for N ms" decision of `wait_ready`, fed one /proc/stat sample at a time: the
// clock restarts at the first sample and at every interval whose idle share is below
// kIdleThreshold; ready once `need` has passed since. Pure, so tests drive it with samples.
class IdleTracker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr double kIdleThreshold = 0.95;

  explicit IdleTracker(std::chrono::milliseconds need) : need_(need) {}
  // Returns true when the CPU has been idle for `need` as of `now`.
  bool Observe(const CpuTimes& sample, TimePoint now);

 private:
  std::chrono::milliseconds need_;
  std::optional<CpuTimes> last_;
  TimePoint idle_since_{};
};

}  // namespace supermachine::agent::rpc
