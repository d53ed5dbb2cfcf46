// File: launch_config.h
// What the guest runs: the image config's Entrypoint/Cmd/Env/WorkingDir/User with the user's
// overrides applied by Docker's rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/image/image_config.h"

namespace supermachine::image {

struct LaunchOverrides {
  // Replaces the image Entrypoint. As with `docker run --entrypoint`, setting it also drops the
  // image Cmd (only `cmd` below, if given, follows it).
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;  // replaces the image Cmd
  std::optional<std::string> working_dir;
  std::optional<std::string> user;
  // "KEY=VALUE": replaces the image's KEY, else appended. Order kept.
  std::vector<std::string> extra_env;
};

struct LaunchConfig {
  std::vector<std::string> argv;  // entrypoint + cmd, never empty
  std::vector<std::string> env;   // includes a default PATH when the image sets none
  std::string working_dir;        // "/" when the image sets none
  std::string user;               // "" = root (uid 0)
};

// Default PATH Docker gives containers whose image does not set one.
inline constexpr char kDefaultPath[] =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Applies overrides. InvalidArgument when the resulting argv is empty ("image has no
// Entrypoint or Cmd; give a command"), when an env entry has no '=' or an empty key, or when
// the working dir is not absolute.
absl::StatusOr<LaunchConfig> ResolveLaunchConfig(const ImageConfig& image,
                                                 const LaunchOverrides& overrides);

// Parses a JSON argv override: `["sh","-c","echo hi"]` → {"sh","-c","echo hi"}.
absl::StatusOr<std::vector<std::string>> ParseArgvJson(absl::string_view json);

}  // namespace supermachine::image
