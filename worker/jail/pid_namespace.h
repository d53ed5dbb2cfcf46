// File: pid_namespace.h
// The jailed worker's PID namespace. A process cannot move itself into a new PID namespace,
// only its future children, so the worker forks once at start-up (as `unshare --fork` does):
//
//   keeper (the pid the daemon spawned, journaled and signals)
//     └── worker proper: PID 1 of a new PID namespace; the VMM, its vCPU threads, passt
//
// Inside, the worker sees no host process (kill, ptrace and /proc reach nothing outside), and
// everything it starts dies with it: when a namespace's PID 1 ends, the kernel kills the rest.
// The keeper does nothing but relay: SIGTERM, SIGINT and SIGHUP go to the worker, and the
// worker's end becomes the keeper's own (the same exit code, or death by the same signal, so
// the daemon still tells a seccomp SIGSYS or an OOM SIGKILL apart). If the keeper is killed
// (SIGKILL cannot be relayed), the worker gets SIGKILL too (PR_SET_PDEATHSIG), so no VM
// outlives the process the daemon tracks.
#pragma once

#include "absl/status/status.h"

namespace supermachine::jail {

// Call with one thread and before anything the worker must own (files, sockets, guest RAM) is
// set up: only the calling function's return continues, in the child. Returns OK in the
// worker proper (now PID 1 of a fresh PID namespace). The keeper never returns: it exits with
// the worker's status. An error (no CAP_SYS_ADMIN, fork failure) is returned in the original
// process, before any fork.
absl::Status EnterNewPidNamespace();

}  // namespace supermachine::jail
