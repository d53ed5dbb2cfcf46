// File: process_gone.h
// Test support: whether a pid names no process any more, for tests that check a daemon ended
// and reaped its workers (release, stop). A zombie is not gone: the daemon is the parent of
// the processes these tests watch, so a zombie is a worker it has not reaped.
#pragma once

#include <sys/types.h>

#include "absl/time/time.h"

namespace supermachine::test_support {

// kill(pid, 0) fails with ESRCH: no process, zombie or not, has that pid.
bool ProcessGone(pid_t pid);

// Polls ProcessGone every 100 ms until it holds or `within` has passed; its last answer.
bool WaitProcessGone(pid_t pid, absl::Duration within);

}  // namespace supermachine::test_support
