// File: exit_codes.h
// The one mapping from a gRPC status code to smctl's exit status, so scripts can tell "not
// found" from "daemon down" without parsing messages. Documented in docs/cli.md.
#pragma once

#include <grpcpp/support/status_code_enum.h>

namespace supermachine::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // the daemon refused or failed the request
inline constexpr int kExitUsage = 2;         // bad flags or arguments (CLI11 uses 2 too)
inline constexpr int kExitNotFound = 3;      // unknown snapshot or VM
inline constexpr int kExitPermission = 4;    // socket access denied / unauthenticated
inline constexpr int kExitUnimplemented = 5; // the daemon does not implement this yet
inline constexpr int kExitUnavailable = 69;  // daemon not running (sysexits EX_UNAVAILABLE)
inline constexpr int kExitTimeout = 124;     // deadline exceeded (as timeout(1))

int ExitCodeForGrpc(grpc::StatusCode code);

}  // namespace supermachine::cli
