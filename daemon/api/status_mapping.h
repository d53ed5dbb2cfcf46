// File: status_mapping.h
// The one place where a domain absl::Status becomes a gRPC status. Every RPC handler returns
// through ToGrpcStatus so codes stay consistent across the API (containerd's errgrpc.ToGRPC).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace supermachine::api {

// Maps the canonical code one-to-one (Abseil and gRPC share the numbering) and keeps the
// message as is: the domain's messages are written for the user ("snapshot 'x' not found").
grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "NOT_FOUND", ...: the names gRPC documents, for metrics labels and logs.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace supermachine::api
