// File: exit_codes.cc
#include "cli/exit_codes.h"

namespace supermachine::cli {

int ExitCodeForGrpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT: return kExitUsage;
    case grpc::StatusCode::NOT_FOUND: return kExitNotFound;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: return kExitPermission;
    case grpc::StatusCode::UNIMPLEMENTED: return kExitUnimplemented;
    case grpc::StatusCode::UNAVAILABLE: return kExitUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kExitTimeout;
    default: return kExitFailure;
  }
}

}  // namespace supermachine::cli
