// File: launch_spec.cc
#include "daemon/bake/launch_spec.h"

#include "worker/base/status_macros.h"

namespace supermachine::bake {

absl::StatusOr<LaunchSpec> ResolveLaunchSpec(const image::ImageConfig& config,
                                             const BakeRequest& request) {
  // An empty workdir override means "/" (upstream: "no chdir"), as an empty user means root:
  // both let a request undo the image's setting. ResolveLaunchConfig maps "" to "/".
  const image::LaunchOverrides overrides{
      .entrypoint = request.entrypoint,
      .cmd = request.cmd,
      .working_dir = request.workdir,
      .user = request.user,
      .extra_env = request.env,
  };
  SM_ASSIGN_OR_RETURN(image::LaunchConfig launch,
                      image::ResolveLaunchConfig(config, overrides));
  return LaunchSpec{
      .argv = std::move(launch.argv),
      .env = std::move(launch.env),
      .workdir = std::move(launch.working_dir),
      .user = std::move(launch.user),
      .hostname = request.hostname.empty() ? std::string(kDefaultHostname) : request.hostname,
      .restart = request.restart,
  };
}

}  // namespace supermachine::bake
