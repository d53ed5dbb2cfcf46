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

// A duration as Docker's --health-* flags take it: a sequence of NUMBER UNIT with units ms, s,
// m, h ("30s", "1m30s", "500ms"); a bare "0" is zero. INVALID_ARGUMENT naming `flag` for
// anything else or more than 2^32-1 ms.
grpc::Status ParseDurationFlag(const std::string& flag, const std::string& text, uint32_t* ms);

}  // namespace supermachine::cli
