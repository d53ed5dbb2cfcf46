// File: grpc_health.h
// Test support: the standard grpc.health.v1 check of a daemon's Unix socket (unit, integration
// and lab tests). Header-only: the test support libraries do not link gRPC.
#pragma once

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace supermachine::test_support {

// grpc.health.v1.Health/Check through a generic stub (Debian ships no health .proto): an
// empty HealthCheckRequest is zero bytes. Returns the call's status; `response` (if given)
// receives the raw reply.
inline grpc::Status CallHealthCheck(const std::string& socket, std::chrono::seconds timeout,
                                    grpc::ByteBuffer* response = nullptr) {
  // A local subchannel pool: every check opens its own connection instead of reusing one a
  // previous channel to the same socket left in gRPC's process-wide pool.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel =
      grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  // An empty message is one empty slice; a default ByteBuffer is "no message" to gRPC.
  grpc::Slice empty_slice(std::string{});
  grpc::ByteBuffer request(&empty_slice, 1);
  grpc::ByteBuffer ignored;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 response != nullptr ? response : &ignored,
                 [&done](grpc::Status st) { done.set_value(st); });
  return done.get_future().get();
}

// The check's serving status (field 1 of HealthCheckResponse, a varint), 5 s deadline.
inline absl::StatusOr<int> HealthCheck(const std::string& socket) {
  grpc::ByteBuffer response;
  grpc::Status st = CallHealthCheck(socket, std::chrono::seconds(5), &response);
  if (!st.ok()) {
    return absl::UnknownError(st.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::InternalError("cannot read the health response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (bytes.size() != 2 || bytes[0] != 0x08) {
    return absl::InternalError("unexpected health response encoding");
  }
  return static_cast<int>(bytes[1]);
}

constexpr int kHealthServing = 1;  // grpc.health.v1.HealthCheckResponse.SERVING

}  // namespace supermachine::test_support
