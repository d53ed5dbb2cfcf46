// File: convert.h
// Store records → API messages. Kept apart from the service so tests can check conversions
// without a server, and so the lenient parsing of stored JSON lives in one place.
#pragma once

#include "absl/status/status.h"
#include "daemon/store/store.h"
#include "proto/supermachine.pb.h"

namespace supermachine::api {

// metadata_json is the bake's metadata.json: {"image", "image_digest", "memory_mib", "vcpus",
// "guest_port", "timings_ms": {...}}; fields it lacks stay unset. Malformed JSON is an
// Internal error naming the snapshot (the store is ours; bad JSON there is a bug).
absl::Status SnapshotToProto(const store::SnapshotRecord& record, v1::Snapshot* out);

// ports_json: [{"host_port", "guest_port", "host_address"}]; labels_json: {"k": "v"}.
absl::Status VmToProto(const store::VmRecord& record, v1::VM* out);

// "exited" → END_CAUSE_EXITED, ...; unknown or empty → END_CAUSE_UNSPECIFIED.
v1::EndCause EndCauseFromName(const std::string& name);

}  // namespace supermachine::api
