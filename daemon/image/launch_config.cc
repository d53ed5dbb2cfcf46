// File: launch_config.cc
// Launch config resolution (Docker's entrypoint/cmd rules) and env merging.
#include "daemon/image/launch_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/image/json_util.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

absl::string_view EnvKey(absl::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// Sets `entry` in `env`, replacing an existing entry with the same key.
void SetEnv(std::vector<std::string>* env, const std::string& entry) {
  const absl::string_view key = EnvKey(entry);
  for (std::string& e : *env) {
    if (EnvKey(e) == key) {
      e = entry;
      return;
    }
  }
  env->push_back(entry);
}

}  // namespace

absl::StatusOr<LaunchConfig> ResolveLaunchConfig(const ImageConfig& image,
                                                 const LaunchOverrides& overrides) {
  LaunchConfig out;
  std::vector<std::string> entrypoint = image.entrypoint.value_or(std::vector<std::string>{});
  std::vector<std::string> cmd = image.cmd.value_or(std::vector<std::string>{});
  if (overrides.entrypoint.has_value()) {
    entrypoint = *overrides.entrypoint;
    cmd.clear();  // docker run --entrypoint resets the image's Cmd
  }
  if (overrides.cmd.has_value()) {
    cmd = *overrides.cmd;
  }
  out.argv = entrypoint;
  out.argv.insert(out.argv.end(), cmd.begin(), cmd.end());
  if (out.argv.empty()) {
    return absl::InvalidArgumentError(
        "launch config: the image has no Entrypoint or Cmd and no command was given; "
        "pass a command (cmd override) or an entrypoint");
  }
  if (out.argv.front().empty()) {
    return absl::InvalidArgumentError("launch config: the program (argv[0]) is an empty string");
  }

  for (const std::string& e : image.env) {
    SetEnv(&out.env, e);
  }
  for (const std::string& e : overrides.extra_env) {
    if (!absl::StrContains(e, '=') || EnvKey(e).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("launch config: env entry '", e, "' must look like KEY=VALUE"));
    }
    SetEnv(&out.env, e);
  }
  bool has_path = false;
  for (const std::string& e : out.env) {
    has_path = has_path || EnvKey(e) == "PATH";
  }
  if (!has_path) {
    out.env.insert(out.env.begin(), kDefaultPath);
  }

  // (Built in one expression: GCC 12 gives a false -Wrestrict on `s = "/"` after value_or.)
  const std::string& wd = overrides.working_dir.has_value() ? *overrides.working_dir
                                                             : image.working_dir;
  out.working_dir = wd.empty() ? std::string("/") : wd;
  if (out.working_dir.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "launch config: working dir '", out.working_dir, "' must be an absolute path"));
  }
  out.user = overrides.user.value_or(image.user);
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseArgvJson(absl::string_view json) {
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(json, "command (JSON argv)"));
  if (!j.is_array()) {
    return absl::InvalidArgumentError(
        "command (JSON argv): must be a JSON array of strings, e.g. [\"sh\",\"-c\",\"echo hi\"]");
  }
  std::vector<std::string> argv;
  for (const auto& e : j) {
    if (!e.is_string()) {
      return absl::InvalidArgumentError("command (JSON argv): every element must be a string");
    }
    argv.push_back(e.get<std::string>());
  }
  return argv;
}

}  // namespace supermachine::image
