// File: hang_report.h
// HangWatchdog: turns a lab test case that hangs into a report instead of a silent lab timeout.
// The lab kills a run that outlives its timeout with only the last console lines to show for
// it; a case that waits on a stuck daemon RPC prints nothing. Armed per case, the watchdog
// prints, once `after` has passed: the daemon's log, every process of the daemon's tree with
// its state and kernel wait channel, and — when gdb is installed — the daemon's thread
// backtraces; then it aborts the test binary so the lab run ends at once with that report.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace supermachine::lab {

class HangWatchdog {
 public:
  // `daemon_log` is called on the watchdog's thread when it fires.
  HangWatchdog(std::string what, absl::Duration after, pid_t daemon_pid,
               std::function<std::string()> daemon_log);
  ~HangWatchdog();  // Disarms it.
  HangWatchdog(const HangWatchdog&) = delete;
  HangWatchdog& operator=(const HangWatchdog&) = delete;

 private:
  void Fire() const;

  const std::string what_;
  const pid_t daemon_pid_;
  const std::function<std::string()> daemon_log_;
  absl::Mutex mu_;
  bool disarmed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// "PID STATE WCHAN CMDLINE" lines for `root` and every descendant (from /proc).
std::string ProcessTree(pid_t root);

}  // namespace supermachine::lab
