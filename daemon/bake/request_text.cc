// File: request_text.cc
#include "daemon/bake/request_text.h"

#include "absl/strings/str_cat.h"
#include "daemon/image/launch_config.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

absl::StatusOr<std::optional<std::vector<std::string>>> ParseArgvField(const char* field,
                                                                       const std::string& json) {
  if (json.empty()) {
    return std::optional<std::vector<std::string>>();
  }
  absl::StatusOr<std::vector<std::string>> argv = image::ParseArgvJson(json);
  if (!argv.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", json, "': ", argv.status().message()));
  }
  return std::optional<std::vector<std::string>>(std::move(*argv));
}

}  // namespace

absl::StatusOr<BakeRequest> ParseBakeRequest(const BakeRequestText& t) {
  BakeRequest r{
      .image = t.image,
      .name = t.name,
      .guest_port = t.guest_port,
      .memory_mib = t.memory_mib == 0 ? kDefaultMemoryMib : t.memory_mib,
      .vcpus = t.vcpus == 0 ? kDefaultVcpus : t.vcpus,
      .snapshots_dir = t.snapshots_dir,
      .workdir = t.workdir,
      .user = t.user,
      .env = t.env,
      .hostname = t.hostname,
  };
  SM_ASSIGN_OR_RETURN(r.pull_policy, image::ParsePullPolicy(t.pull_policy));
  SM_ASSIGN_OR_RETURN(r.cmd, ParseArgvField("cmd", t.cmd_json));
  SM_ASSIGN_OR_RETURN(r.entrypoint, ParseArgvField("entrypoint", t.entrypoint_json));
  for (const std::string& spec : t.extra_files) {
    SM_ASSIGN_OR_RETURN(ExtraFile f, ParseExtraFile(spec));
    r.extra_files.push_back(std::move(f));
  }
  for (const std::string& spec : t.volumes) {
    SM_ASSIGN_OR_RETURN(Volume v, ParseVolume(spec));
    r.volumes.push_back(std::move(v));
  }
  SM_ASSIGN_OR_RETURN(r.restart, ParseRestartPolicy(t.restart));
  SM_ASSIGN_OR_RETURN(r.health, ParseHealthCheck(t.health_cmd, t.health_interval));
  if (!t.readiness.empty()) {
    SM_ASSIGN_OR_RETURN(r.readiness, ParseReadiness(t.readiness));
  }
  SM_ASSIGN_OR_RETURN(r.egress, ParseEgressPolicy(t.egress));
  return r;
}

}  // namespace supermachine::bake
