// File: render.h
// smctl's output: Docker-like aligned tables for people, JSON (the API messages, proto field
// names) for scripts. Pure functions of the responses and an injected "now".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "proto/supermachine.pb.h"

namespace supermachine::cli {

// Left-aligned columns separated by three spaces, a header row first, trailing spaces trimmed.
std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

// Decimal units as Docker prints sizes: 0B, 999B, 1.5kB, 12.3MB, 4.1GB.
std::string HumanSize(uint64_t bytes);
// "just now", "42 seconds ago", "5 minutes ago", "3 hours ago", "2 days ago".
std::string HumanAgo(int64_t then_ms, int64_t now_ms);

std::string SnapshotsTable(const v1::ListSnapshotsResponse& resp, int64_t now_ms);
// STATUS tells the end cause for ended VMs: "exited (3)", "killed (9)", "released", ...;
// supervised VMs add their health and restarts: "running (healthy, 2 restarts)",
// "restarting (1 restart)", "exited (1) (after 3 restarts)".
std::string VmsTable(const v1::ListVMsResponse& resp, int64_t now_ms);
std::string VmStatus(const v1::VM& vm);
// "exited 1", "killed by signal 9", "worker_crash", "unhealthy".
std::string LastExitText(const v1::LastExit& last_exit);

// One JSON document, fields named as in the .proto, zero values included, newline-terminated.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace supermachine::cli
