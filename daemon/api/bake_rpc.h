// File: bake_rpc.h
// BakeRequest (API) → bake::BakeRequest: field copying into the bake library's text form, whose
// parser owns every syntax and default; then Validate. InvalidArgument names the field.
#pragma once

#include "absl/status/statusor.h"
#include "daemon/bake/baker.h"
#include "daemon/bake/gc.h"
#include "proto/supermachine.pb.h"

namespace supermachine::api {

absl::StatusOr<bake::BakeRequest> BakeRequestFromProto(const v1::BakeRequest& req);

// One progress event as the API streams it.
v1::BakeProgress BakeProgressToProto(const bake::BakeProgress& progress);

// A garbage collection's report as the Gc RPC returns it.
void GcReportToProto(const bake::GcReport& report, v1::GcResponse* resp);

}  // namespace supermachine::api
