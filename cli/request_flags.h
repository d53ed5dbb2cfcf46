// File: request_flags.h
// Checks and converts the request-building flags smctl verbs share (-p, -e), so a typo is
// reported by smctl with the flag's spelling, before anything reaches the daemon.
#pragma once

#include <string>

#include <grpcpp/support/status.h>

#include "proto/supermachine.pb.h"

namespace supermachine::cli {

// "HOST_PORT:GUEST_PORT" or "ADDRESS:HOST_PORT:GUEST_PORT"; HOST_PORT 0 picks a free port.
// INVALID_ARGUMENT naming the flag value otherwise.
grpc::Status ParsePortFlag(const std::string& text, v1::PortForward* out);

// "KEY=VALUE" with a non-empty key.
grpc::Status CheckEnvFlag(const std::string& text);

}  // namespace supermachine::cli
