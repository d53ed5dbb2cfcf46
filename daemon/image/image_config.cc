// File: image_config.cc
// Image config JSON → ImageConfig.
#include "daemon/image/image_config.h"

#include "absl/strings/str_cat.h"
#include "daemon/image/json_util.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json) {
  constexpr char kWhat[] = "image config";
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(json, kWhat));
  if (!j.is_object()) {
    return absl::InvalidArgumentError("image config: top level must be a JSON object");
  }
  ImageConfig c;
  SM_ASSIGN_OR_RETURN(c.os, json_util::OptionalString(j, "os", kWhat));
  SM_ASSIGN_OR_RETURN(c.architecture, json_util::OptionalString(j, "architecture", kWhat));
  SM_ASSIGN_OR_RETURN(c.variant, json_util::OptionalString(j, "variant", kWhat));

  if (auto cfg = j.find("config"); cfg != j.end() && !cfg->is_null()) {
    if (!cfg->is_object()) {
      return absl::InvalidArgumentError("image config: field 'config' must be an object");
    }
    constexpr char kInner[] = "image config 'config'";
    SM_ASSIGN_OR_RETURN(auto env, json_util::OptionalStringArray(*cfg, "Env", kInner));
    c.env = env.value_or(std::vector<std::string>{});
    SM_ASSIGN_OR_RETURN(c.working_dir, json_util::OptionalString(*cfg, "WorkingDir", kInner));
    SM_ASSIGN_OR_RETURN(c.user, json_util::OptionalString(*cfg, "User", kInner));
    SM_ASSIGN_OR_RETURN(c.entrypoint, json_util::OptionalStringArray(*cfg, "Entrypoint", kInner));
    SM_ASSIGN_OR_RETURN(c.cmd, json_util::OptionalStringArray(*cfg, "Cmd", kInner));
    SM_ASSIGN_OR_RETURN(c.stop_signal, json_util::OptionalString(*cfg, "StopSignal", kInner));
    SM_ASSIGN_OR_RETURN(c.labels, json_util::OptionalStringMap(*cfg, "Labels", kInner));
    if (auto ports = cfg->find("ExposedPorts"); ports != cfg->end() && !ports->is_null()) {
      if (!ports->is_object()) {
        return absl::InvalidArgumentError(
            "image config 'config': field 'ExposedPorts' must be an object");
      }
      for (auto it = ports->begin(); it != ports->end(); ++it) {
        c.exposed_ports.push_back(it.key());  // nlohmann objects iterate in key order
      }
    }
  }

  auto rootfs = j.find("rootfs");
  if (rootfs != j.end() && !rootfs->is_null()) {
    if (!rootfs->is_object()) {
      return absl::InvalidArgumentError("image config: field 'rootfs' must be an object");
    }
    SM_ASSIGN_OR_RETURN(std::string type, json_util::OptionalString(*rootfs, "type", "image config rootfs"));
    if (!type.empty() && type != "layers") {
      return absl::InvalidArgumentError(
          absl::StrCat("image config rootfs: unsupported type '", type, "' (want 'layers')"));
    }
    SM_ASSIGN_OR_RETURN(auto ids,
                        json_util::OptionalStringArray(*rootfs, "diff_ids", "image config rootfs"));
    for (const std::string& id : ids.value_or(std::vector<std::string>{})) {
      auto d = Digest::Parse(id);
      if (!d.ok()) {
        return base::Annotate(d.status(), "image config rootfs diff_ids");
      }
      c.diff_ids.push_back(*d);
    }
  }
  return c;
}

}  // namespace supermachine::image
