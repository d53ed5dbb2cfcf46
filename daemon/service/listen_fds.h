// File: listen_fds.h
// The receiving side of systemd socket activation (sd_listen_fds(3)): a .socket unit binds
// the socket and starts the service with it as fd 3 (SD_LISTEN_FDS_START) onwards, and sets
// LISTEN_PID (the pid the fds are meant for) and LISTEN_FDS (how many). A LISTEN_PID that is
// not ours means the variables were inherited from a parent and the fds are not for us.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace supermachine::service {

inline constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START
// More passed fds than this is a unit misconfiguration, not something to serve.
inline constexpr int kMaxListenFds = 16;

// The passed fds, in order. Empty when LISTEN_PID/LISTEN_FDS are unset (nullptr) or
// LISTEN_PID is not `self`. InvalidArgument when a value is not a decimal number, LISTEN_FDS
// is 0 or above kMaxListenFds, or only one of the two is set. Reads no fd; the caller reads
// the environment and should unset both so children do not inherit them.
absl::StatusOr<std::vector<int>> ParseListenFds(const char* listen_pid, const char* listen_fds,
                                                pid_t self);

// Checks that `fd` is a listening AF_UNIX stream socket and returns its path ("@name" for
// an abstract one). FailedPrecondition names what the fd is instead (e.g. a TCP socket from
// a ListenStream=7443 line, which is refused: see docs/operations.md, "Service managers").
absl::StatusOr<std::string> UnixListenerPath(int fd);

}  // namespace supermachine::service
