// File: request_text.h
// A bake request as text, the shape it arrives in from smctl flags or the gRPC message (strings
// and numbers, 0/"" meaning "default"), and its one-call conversion into a BakeRequest. Keeps
// the API adapter to field copying: every syntax and default lives here and in specs.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/bake/request.h"

namespace supermachine::bake {

struct BakeRequestText {
  std::string image;
  std::string name;
  uint32_t guest_port = 0;
  uint32_t memory_mib = 0;  // 0 = kDefaultMemoryMib
  uint32_t vcpus = 0;       // 0 = kDefaultVcpus
  std::string pull_policy;  // "" = missing
  std::string snapshots_dir;
  std::string cmd_json;         // JSON argv; "" = no override
  std::string entrypoint_json;  // JSON argv; "" = no override
  std::optional<std::string> workdir;
  std::optional<std::string> user;
  std::vector<std::string> env;
  std::string hostname;
  std::vector<std::string> extra_files;  // "HOST:GUEST"
  std::vector<std::string> volumes;      // "NAME:GUEST_PATH[:SIZE]"
  std::string restart;                   // "" = no
  std::string health_cmd;                // "" = none
  std::string health_interval;           // "" = 30 s
  std::string readiness;                 // "" = EffectiveReadiness's default
  std::string egress;                    // "" = deny_private
};

// Parses every field; the first syntax error is returned as InvalidArgument naming the field.
// Does not Validate (ranges, cross-field rules, host files): call Validate next.
absl::StatusOr<BakeRequest> ParseBakeRequest(const BakeRequestText& text);

}  // namespace supermachine::bake
