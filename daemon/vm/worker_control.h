// File: worker_control.h
// One line-oriented exchange on a running worker's control socket (docs/worker.md `--control`:
// `stats`, `balloon`, `balloon-target PAGES`, `snapshot DIR`, `exit`, ...): connect, send the
// command line, read one reply line, all before a deadline. The worker serves one command per
// line and several connections at once, so each exchange uses a connection of its own and
// callers need no shared state. The idle-balloon policy (vm_manager.cc), the bake's snapshot
// and exit (bake/worker_booter.cc) and the network counters (metrics/vm_net_stats.cc) all go
// through it; only WorkerVm::SendExit (worker_launcher.cc) writes its `exit` itself, as it
// wants no reply. Library sm_worker_control, apart from sm_vm because sm_vm links sm_bake and
// the bake pipeline needs this too.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace supermachine::vm {

// The reply line without its newline ("OK ...", "ERR ..."), whatever it says. Errors name the
// command and the socket:
// - FailedPrecondition only when `socket` is "" (a VM without a control socket): callers may
//   take it as "this VM cannot take control commands" (the idle-balloon policy does);
// - InvalidArgument for a `command` holding a newline (it would be two commands) or a socket
//   path too long for a Unix socket;
// - Unavailable when the worker cannot be reached (no socket, refused) or the connection
//   breaks or closes before the answer: it may be starting, stopping or gone;
// - DeadlineExceeded when `deadline` passes first ("...: deadline exceeded");
// - Internal for a reply longer than 4 KiB without a newline (not a worker talking).
absl::StatusOr<std::string> WorkerControl(const std::string& socket, absl::string_view command,
                                          absl::Time deadline);

// As WorkerControl, and the worker must accept the command: a reply not starting with "OK"
// ("ERR snapshot: ...") is Internal quoting the command and the reply.
absl::StatusOr<std::string> WorkerControlOk(const std::string& socket, absl::string_view command,
                                            absl::Time deadline);

}  // namespace supermachine::vm
