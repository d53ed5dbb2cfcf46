// File: convert.cc
#include "daemon/api/convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace supermachine::api {
namespace {

// nlohmann throws on malformed input and on type mismatches; keep exceptions inside this file.
absl::StatusOr<nlohmann::json> ParseJson(const std::string& text, const std::string& what) {
  if (text.empty()) {
    return nlohmann::json::object();
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat(what, ": stored JSON is malformed"));
  }
  return j;
}

template <typename T>
T Field(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return fallback;
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

}  // namespace

absl::Status SnapshotToProto(const store::SnapshotRecord& r, v1::Snapshot* out) {
  out->set_name(r.name);
  out->set_bake_key(r.bake_key);
  out->set_path(r.path);
  out->set_created_unix_ms(r.created_ms);
  out->set_size_bytes(r.size_bytes > 0 ? static_cast<uint64_t>(r.size_bytes) : 0);
  absl::StatusOr<nlohmann::json> meta =
      ParseJson(r.metadata_json, absl::StrCat("snapshot '", r.name, "' metadata"));
  if (!meta.ok()) {
    return meta.status();
  }
  if (!meta->is_object()) {
    return absl::InternalError(absl::StrCat("snapshot '", r.name, "' metadata: not an object"));
  }
  out->set_image(Field<std::string>(*meta, "image", ""));
  out->set_image_digest(Field<std::string>(*meta, "image_digest", ""));
  out->set_memory_mib(Field<uint32_t>(*meta, "memory_mib", 0));
  out->set_vcpus(Field<uint32_t>(*meta, "vcpus", 0));
  out->set_guest_port(Field<uint32_t>(*meta, "guest_port", 0));
  auto timings = meta->find("timings_ms");
  if (timings != meta->end() && timings->is_object()) {
    for (const auto& [k, v] : timings->items()) {
      if (v.is_number_unsigned() || v.is_number_integer()) {
        (*out->mutable_timings_ms())[k] = v.get<uint64_t>();
      }
    }
  }
  return absl::OkStatus();
}

v1::EndCause EndCauseFromName(const std::string& name) {
  if (name == "exited") {
    return v1::END_CAUSE_EXITED;
  }
  if (name == "killed") {
    return v1::END_CAUSE_KILLED;
  }
  if (name == "guest_oom") {
    return v1::END_CAUSE_GUEST_OOM;
  }
  if (name == "deadline") {
    return v1::END_CAUSE_DEADLINE;
  }
  if (name == "worker_crash") {
    return v1::END_CAUSE_WORKER_CRASH;
  }
  if (name == "snapshot_incompatible") {
    return v1::END_CAUSE_SNAPSHOT_INCOMPATIBLE;
  }
  if (name == "released") {
    return v1::END_CAUSE_RELEASED;
  }
  return v1::END_CAUSE_UNSPECIFIED;
}

absl::Status VmToProto(const store::VmRecord& r, v1::VM* out) {
  out->set_id(r.id);
  out->set_name(r.name);
  out->set_snapshot(r.snapshot_name);
  if (r.state == "starting") {
    out->set_state(v1::VM_STATE_STARTING);
  } else if (r.state == "running") {
    out->set_state(v1::VM_STATE_RUNNING);
  } else if (r.state == "ended") {
    out->set_state(v1::VM_STATE_ENDED);
  }
  if (r.end_cause) {
    out->set_end_cause(EndCauseFromName(*r.end_cause));
  }
  out->set_exit_code(static_cast<int32_t>(r.exit_code.value_or(0)));
  out->set_signal(static_cast<int32_t>(r.signal.value_or(0)));
  out->set_vsock_socket(r.control_socket);
  out->set_created_unix_ms(r.created_ms);
  out->set_worker_pid(static_cast<int32_t>(r.pid.value_or(0)));
  const std::string what = absl::StrCat("VM '", r.id, "'");
  absl::StatusOr<nlohmann::json> ports = ParseJson(r.ports_json, what + " ports");
  if (!ports.ok()) {
    return ports.status();
  }
  if (ports->is_array()) {
    for (const auto& p : *ports) {
      if (!p.is_object()) {
        continue;
      }
      v1::PortForward* pf = out->add_ports();
      pf->set_host_port(Field<uint32_t>(p, "host_port", 0));
      pf->set_guest_port(Field<uint32_t>(p, "guest_port", 0));
      pf->set_host_address(Field<std::string>(p, "host_address", ""));
    }
  }
  absl::StatusOr<nlohmann::json> labels = ParseJson(r.labels_json, what + " labels");
  if (!labels.ok()) {
    return labels.status();
  }
  if (labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) {
        (*out->mutable_labels())[k] = v.get<std::string>();
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace supermachine::api
