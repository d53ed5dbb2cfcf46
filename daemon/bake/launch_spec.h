// File: launch_spec.h
// What the guest agent runs after boot, fixed at bake time: the image config's
// Entrypoint/Cmd/Env/WorkingDir/User with the request's overrides applied (Docker's rules, via
// image::ResolveLaunchConfig), plus the hostname and the restart policy the agent enforces.
// It is written into the delta layer, so it is one of the delta key's inputs (keys.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/bake/request.h"
#include "daemon/bake/specs.h"
#include "daemon/image/image_config.h"
#include "daemon/image/launch_config.h"

namespace supermachine::bake {

// Hostname when the request names none. The pool may still set a per-VM one at restore
// (agent.proto RestoredRequest.hostname).
inline constexpr char kDefaultHostname[] = "supermachine";

struct LaunchSpec {
  std::vector<std::string> argv;  // never empty
  std::vector<std::string> env;   // "KEY=VALUE", image order then additions; has PATH
  std::string workdir;            // absolute; "/" when neither image nor request sets one
  std::string user;               // "" = root
  std::string hostname;
  RestartPolicy restart;
  bool operator==(const LaunchSpec&) const = default;
};

// Precedence, lowest to highest: image config < request overrides.
//   argv    = entrypoint + cmd, where
//             entrypoint = request.entrypoint if set, else the image's Entrypoint;
//             cmd        = request.cmd if set, else (request.entrypoint set ? [] : image Cmd).
//   env     = image Env, then request.env (same KEY replaced in place, new KEY appended);
//             PATH defaulted as Docker does when neither sets it.
//   workdir = request.workdir if set ("" = "/"), else image WorkingDir, else "/".
//   user    = request.user if set (even "" = root), else image User.
// InvalidArgument when the result has no program ("the image has no Entrypoint or Cmd ...").
absl::StatusOr<LaunchSpec> ResolveLaunchSpec(const image::ImageConfig& config,
                                             const BakeRequest& request);

}  // namespace supermachine::bake
