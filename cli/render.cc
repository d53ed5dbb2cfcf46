// File: render.cc
#include "cli/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>

namespace supermachine::cli {

std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(headers);
  for (const auto& r : rows) {
    measure(r);
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < width.size()) {
        line.append(width[i] - cell.size() + 3, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line;
    out += '\n';
  };
  emit(headers);
  for (const auto& r : rows) {
    emit(r);
  }
  return out;
}

std::string HumanSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  if (bytes < 1000) {
    return std::to_string(bytes) + "B";
  }
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1000 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g%s", v, kUnits[unit]);
  return text;
}

std::string HumanAgo(int64_t then_ms, int64_t now_ms) {
  int64_t s = (now_ms - then_ms) / 1000;
  if (s < 1) {
    return "just now";
  }
  auto plural = [](int64_t n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
  };
  if (s < 60) {
    return plural(s, "second");
  }
  if (s < 3600) {
    return plural(s / 60, "minute");
  }
  if (s < 86400) {
    return plural(s / 3600, "hour");
  }
  return plural(s / 86400, "day");
}

std::string SnapshotsTable(const v1::ListSnapshotsResponse& resp, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Snapshot& s : resp.snapshots()) {
    std::string digest = s.image_digest();
    // "sha256:" + 12 hex digits, as Docker shortens ids.
    if (digest.size() > 19) {
      digest.resize(19);
    }
    rows.push_back({s.name(), s.image().empty() ? "-" : s.image(), digest.empty() ? "-" : digest,
                    HumanAgo(s.created_unix_ms(), now_ms), HumanSize(s.size_bytes())});
  }
  return RenderTable({"NAME", "IMAGE", "DIGEST", "CREATED", "SIZE"}, rows);
}

namespace {

std::string Plural(uint32_t n, const char* one) {
  return std::to_string(n) + " " + one + (n == 1 ? "" : "s");
}

// The supervision suffix of a running VM: " (healthy, 2 restarts)"; "" when unsupervised.
std::string SupervisionSuffix(const v1::VM& vm) {
  std::string parts;
  switch (vm.health()) {
    case v1::HEALTH_STATUS_STARTING: parts = "health: starting"; break;
    case v1::HEALTH_STATUS_HEALTHY: parts = "healthy"; break;
    case v1::HEALTH_STATUS_UNHEALTHY: parts = "unhealthy"; break;
    default: break;
  }
  if (vm.restart_count() != 0) {
    parts += (parts.empty() ? "" : ", ") + Plural(vm.restart_count(), "restart");
  }
  return parts.empty() ? "" : " (" + parts + ")";
}

std::string EndText(const v1::VM& vm) {
  switch (vm.end_cause()) {
    case v1::END_CAUSE_EXITED: return "exited (" + std::to_string(vm.exit_code()) + ")";
    case v1::END_CAUSE_KILLED: return "killed (signal " + std::to_string(vm.signal()) + ")";
    case v1::END_CAUSE_GUEST_OOM: return "guest OOM";
    case v1::END_CAUSE_DEADLINE: return "deadline";
    case v1::END_CAUSE_WORKER_CRASH: return "worker crash";
    case v1::END_CAUSE_SNAPSHOT_INCOMPATIBLE: return "snapshot incompatible";
    case v1::END_CAUSE_RELEASED: return "released";
    default: return "ended";
  }
}

}  // namespace

std::string VmStatus(const v1::VM& vm) {
  switch (vm.state()) {
    case v1::VM_STATE_STARTING: return "starting";
    case v1::VM_STATE_RUNNING:
      return (vm.restarting() ? "restarting" : "running") + SupervisionSuffix(vm);
    case v1::VM_STATE_ENDED: break;
    default: return "unknown";
  }
  return EndText(vm) + (vm.restart_count() == 0
                            ? ""
                            : " (after " + Plural(vm.restart_count(), "restart") + ")");
}

std::string LastExitText(const v1::LastExit& e) {
  if (e.cause() == "exited") {
    return "exited " + std::to_string(e.exit_code());
  }
  if (e.cause() == "killed") {
    return "killed by signal " + std::to_string(e.signal());
  }
  return e.cause();
}

std::string VmsTable(const v1::ListVMsResponse& resp, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::VM& vm : resp.vms()) {
    std::string ports;
    for (const v1::PortForward& p : vm.ports()) {
      if (!ports.empty()) {
        ports += ", ";
      }
      ports += (p.host_address().empty() ? "127.0.0.1" : p.host_address()) + ":" +
               std::to_string(p.host_port()) + "->" + std::to_string(p.guest_port());
    }
    rows.push_back({vm.id(), vm.name().empty() ? "-" : vm.name(), vm.snapshot(), VmStatus(vm),
                    ports.empty() ? "-" : ports, HumanAgo(vm.created_unix_ms(), now_ms)});
  }
  return RenderTable({"VM ID", "NAME", "SNAPSHOT", "STATUS", "PORTS", "CREATED"}, rows);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  // Serialising a message we built cannot fail short of a protobuf bug; the status is checked
  // anyway so such a bug prints something visible instead of empty output.
  auto st = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!st.ok()) {
    return "{\"error\": \"cannot render JSON\"}\n";
  }
  if (out.empty() || out.back() != '\n') {
    out += '\n';
  }
  return out;
}

}  // namespace supermachine::cli
