// File: ports_json.cc
#include "daemon/vm/ports_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace supermachine::vm {

std::string PortsToJson(const std::vector<PortSpec>& ports) {
  nlohmann::json out = nlohmann::json::array();
  for (const PortSpec& p : ports) {
    out.push_back({{"host_address", p.host_address},
                   {"host_port", p.host_port},
                   {"guest_port", p.guest_port}});
  }
  return out.dump();
}

absl::StatusOr<std::vector<PortSpec>> PortsFromJson(const std::string& json) {
  nlohmann::json in = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!in.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("ports_json is not a JSON array: ", json));
  }
  std::vector<PortSpec> out;
  for (const nlohmann::json& p : in) {
    if (!p.is_object() || !p.value("host_address", nlohmann::json()).is_string() ||
        !p.value("host_port", nlohmann::json()).is_number_unsigned() ||
        !p.value("guest_port", nlohmann::json()).is_number_unsigned()) {
      return absl::InvalidArgumentError(absl::StrCat("bad port forward in ports_json: ", p.dump()));
    }
    const uint64_t host = p["host_port"].get<uint64_t>();
    const uint64_t guest = p["guest_port"].get<uint64_t>();
    if (host > 65535 || guest == 0 || guest > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port numbers in ports_json: ", p.dump()));
    }
    out.push_back(PortSpec{.host_address = p["host_address"].get<std::string>(),
                           .host_port = static_cast<uint16_t>(host),
                           .guest_port = static_cast<uint32_t>(guest)});
  }
  return out;
}

}  // namespace supermachine::vm
