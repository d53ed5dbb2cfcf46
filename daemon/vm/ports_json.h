// File: ports_json.h
// A handed-out VM's port forwards as the store keeps them (vms.ports_json), so a restarted
// daemon rebinds the same host ports: [{"host_address": "127.0.0.1", "host_port": 8080,
// "guest_port": 80}, ...].
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/vm/vm_manager.h"

namespace supermachine::vm {

std::string PortsToJson(const std::vector<PortSpec>& ports);
// InvalidArgument for anything but the array PortsToJson writes.
absl::StatusOr<std::vector<PortSpec>> PortsFromJson(const std::string& json);

}  // namespace supermachine::vm
