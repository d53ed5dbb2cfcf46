// File: worker_control.h
// One line-oriented exchange on a running worker's control socket (docs/worker.md: `stats`,
// `balloon`, `balloon-target PAGES`, ...): connect, send the command line, read one reply
// line. The worker serves one command per line and several connections at once, so each
// exchange uses a connection of its own and callers need no shared state.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace supermachine::vm {

// The reply line without its newline ("OK ...", "ERR ..."). FailedPrecondition when `socket`
// is "" (a VM without a control socket); Unavailable when the worker cannot be reached or
// closes without answering; DeadlineExceeded past `deadline`; Internal for a reply longer
// than 4 KiB.
absl::StatusOr<std::string> WorkerControl(const std::string& socket, absl::string_view command,
                                          absl::Time deadline);

}  // namespace supermachine::vm
