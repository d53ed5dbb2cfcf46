// File: guest-agent/init/uptime.h
// Guest uptime as the kernel reports it in /proc/uptime.
#pragma once

#include <optional>

namespace supermachine::agent {

// Seconds since the guest kernel started (first field of /proc/uptime), or nullopt if /proc is
// not mounted or the file cannot be parsed.
std::optional<double> ReadUptimeSeconds();

}  // namespace supermachine::agent
