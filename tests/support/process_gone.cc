// File: process_gone.cc
#include "tests/support/process_gone.h"

#include <signal.h>

#include <cerrno>

#include "absl/time/clock.h"

namespace supermachine::test_support {

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

bool WaitProcessGone(pid_t pid, absl::Duration within) {
  for (const absl::Time until = absl::Now() + within; absl::Now() < until;) {
    if (ProcessGone(pid)) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return ProcessGone(pid);
}

}  // namespace supermachine::test_support
