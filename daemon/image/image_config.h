// File: image_config.h
// The parts of an OCI / Docker image config a microVM launch needs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/digest.h"

namespace supermachine::image {

struct ImageConfig {
  std::string os;
  std::string architecture;
  std::string variant;
  std::vector<std::string> env;  // "KEY=VALUE", in image order
  std::string working_dir;
  std::string user;
  // nullopt: not set in the image; an empty vector is "set to []" (Docker treats both alike).
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::vector<std::string> exposed_ports;  // "80/tcp", sorted
  std::string stop_signal;
  std::map<std::string, std::string> labels;
  std::vector<Digest> diff_ids;  // uncompressed layer digests, base layer first
};

// Parses an image config blob. Missing optional fields are empty; wrong types, bad
// diff_ids, or a rootfs type other than "layers" → InvalidArgument naming the field.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json);

}  // namespace supermachine::image
