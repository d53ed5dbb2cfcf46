// File: guest-agent/workload/launch_config.cc
// Strict JSON → LaunchConfig, and the base64 form on the kernel command line.
#include "guest-agent/workload/launch_config.h"

#include <array>
#include <cstdint>
#include <set>
#include <utility>

#include "nlohmann/json.hpp"

namespace supermachine::agent {
namespace {

using Json = nlohmann::json;

// virtio-blk GET_ID returns at most 20 bytes, so a longer id could never match a disk.
constexpr size_t kMaxDiskIdBytes = 20;
constexpr size_t kMaxHostnameBytes = 64;  // HOST_NAME_MAX.

std::string KeyError(std::string_view key, std::string_view what) {
  return "launch config: key \"" + std::string(key) + "\": " + std::string(what);
}

bool GetString(const Json& doc, std::string_view key, std::string* out, std::string* error) {
  auto it = doc.find(key);
  if (it == doc.end()) {
    return true;
  }
  if (!it->is_string()) {
    *error = KeyError(key, std::string("must be a string, got ") + it->type_name());
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

bool GetStringArray(const Json& doc, std::string_view key, std::vector<std::string>* out,
                    std::string* error) {
  auto it = doc.find(key);
  if (it == doc.end()) {
    return true;
  }
  if (!it->is_array()) {
    *error = KeyError(key, std::string("must be an array of strings, got ") + it->type_name());
    return false;
  }
  out->clear();
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) {
      *error = KeyError(key, "element " + std::to_string(i) + " must be a string, got " +
                                 v.type_name());
      return false;
    }
    out->push_back(v.get<std::string>());
  }
  return true;
}

bool ValidDiskId(std::string_view id) {
  if (id.empty() || id.size() > kMaxDiskIdBytes) {
    return false;
  }
  for (char c : id) {
    if (c <= ' ' || c > '~') {
      return false;
    }
  }
  return true;
}

bool ValidHostname(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostnameBytes) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool ParseVolumes(const Json& doc, LaunchConfig* config, std::string* error) {
  auto it = doc.find("volumes");
  if (it == doc.end()) {
    return true;
  }
  if (!it->is_array()) {
    *error = KeyError("volumes", std::string("must be an array, got ") + it->type_name());
    return false;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    const std::string key = "volumes[" + std::to_string(i) + "]";
    if (!v.is_object()) {
      *error = KeyError(key, std::string("must be an object, got ") + v.type_name());
      return false;
    }
    for (const auto& [k, unused] : v.items()) {
      if (k != "disk" && k != "path") {
        *error = KeyError(std::string(key).append(".").append(k), "unknown key (known: disk, path)");
        return false;
      }
    }
    VolumeMount m;
    if (!GetString(v, "disk", &m.disk, error) || !GetString(v, "path", &m.path, error)) {
      *error = KeyError(key, *error);
      return false;
    }
    if (!ValidDiskId(m.disk)) {
      *error = KeyError(key + ".disk", "must be a disk id of 1-20 printable characters");
      return false;
    }
    if (m.path.empty() || m.path[0] != '/') {
      *error = KeyError(key + ".path", "must be an absolute path");
      return false;
    }
    config->volumes.push_back(std::move(m));
  }
  return true;
}

bool Validate(const LaunchConfig& c, std::string* error) {
  if (c.argv.empty() || c.argv[0].empty()) {
    *error = KeyError("argv", "must hold at least the program to run");
    return false;
  }
  for (const std::string& e : c.env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = KeyError("env", "\"" + e + "\" is not KEY=VALUE");
      return false;
    }
  }
  if (c.cwd.empty() || c.cwd[0] != '/') {
    *error = KeyError("cwd", "must be an absolute path");
    return false;
  }
  if (!c.hostname.empty() && !ValidHostname(c.hostname)) {
    *error = KeyError("hostname", "\"" + c.hostname +
                                      "\" is not a host name (1-64 of [A-Za-z0-9.-])");
    return false;
  }
  std::set<std::string> seen;
  for (const std::string& id : c.layers) {
    if (!ValidDiskId(id)) {
      *error = KeyError("layers", "\"" + id + "\" is not a disk id of 1-20 printable characters");
      return false;
    }
    if (!seen.insert(id).second) {
      *error = KeyError("layers", "disk id \"" + id + "\" is listed twice");
      return false;
    }
  }
  return true;
}

}  // namespace

LaunchConfigResult ParseLaunchConfig(std::string_view json) {
  LaunchConfigResult result;
  Json doc = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    result.error = "launch config: not valid JSON";
    return result;
  }
  if (!doc.is_object()) {
    result.error = std::string("launch config: must be a JSON object, got ") + doc.type_name();
    return result;
  }
  static constexpr std::array<std::string_view, 12> kKnown = {
      "version", "argv", "env", "cwd", "user", "hostname", "layers", "upper", "volumes",
      "on_exit", "readiness", "start"};
  for (const auto& [key, unused] : doc.items()) {
    bool known = false;
    for (std::string_view k : kKnown) {
      known = known || key == k;
    }
    if (!known) {
      result.error = KeyError(key, "unknown key (this agent knows: version, argv, env, cwd, "
                                   "user, hostname, layers, upper, volumes, on_exit, readiness, "
                                   "start)");
      return result;
    }
  }
  if (auto v = doc.find("version"); v != doc.end()) {
    if (!v->is_number_unsigned() || v->get<uint64_t>() != 1) {
      result.error = KeyError("version", "this agent reads version 1 only");
      return result;
    }
  }
  LaunchConfig c;
  std::string upper = "tmpfs";
  std::string on_exit = "stay";
  std::string start = "boot";
  std::string error;
  bool ok = GetStringArray(doc, "argv", &c.argv, &error) &&
            GetStringArray(doc, "env", &c.env, &error) && GetString(doc, "cwd", &c.cwd, &error) &&
            GetString(doc, "user", &c.user, &error) &&
            GetString(doc, "hostname", &c.hostname, &error) &&
            GetStringArray(doc, "layers", &c.layers, &error) &&
            GetString(doc, "upper", &upper, &error) &&
            GetString(doc, "on_exit", &on_exit, &error) &&
            GetString(doc, "start", &start, &error) && ParseVolumes(doc, &c, &error) &&
            Validate(c, &error);
  if (!ok) {
    result.error = error;
    return result;
  }
  // "readiness" is for the host (bake); the agent accepts any value and ignores it.
  constexpr std::string_view kDiskPrefix = "disk:";
  if (upper.rfind(kDiskPrefix, 0) == 0) {
    c.upper_disk = upper.substr(kDiskPrefix.size());
    if (!ValidDiskId(c.upper_disk)) {
      result.error = KeyError("upper", "\"" + upper + "\": the disk id must be 1-20 printable "
                                                      "characters");
      return result;
    }
  } else if (upper != "tmpfs") {
    result.error = KeyError("upper", "must be \"tmpfs\" or \"disk:<id>\", got \"" + upper + "\"");
    return result;
  }
  if (on_exit == "poweroff") {
    c.poweroff_on_exit = true;
  } else if (on_exit != "stay") {
    result.error =
        KeyError("on_exit", "must be \"stay\" or \"poweroff\", got \"" + on_exit + "\"");
    return result;
  }
  if (start == "restore") {
    c.start_on_restore = true;
  } else if (start != "boot") {
    result.error = KeyError("start", "must be \"boot\" or \"restore\", got \"" + start + "\"");
    return result;
  }
  result.config = std::move(c);
  return result;
}

namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

}  // namespace

std::optional<std::string> LaunchConfigFromCmdline(std::string_view cmdline,
                                                   std::string* error) {
  constexpr std::string_view kParam = "supermachine.launch=";
  std::optional<std::string_view> value;
  size_t pos = 0;
  while (pos < cmdline.size()) {
    size_t end = cmdline.find_first_of(" \t\n", pos);
    if (end == std::string_view::npos) {
      end = cmdline.size();
    }
    std::string_view word = cmdline.substr(pos, end - pos);
    if (word.substr(0, kParam.size()) == kParam) {
      value = word.substr(kParam.size());  // The last one wins, as for kernel parameters.
    }
    pos = end + 1;
  }
  if (!value) {
    return std::nullopt;
  }
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : *value) {
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = Base64Value(c);
    if (v < 0 || padding > 0) {
      *error = "kernel parameter supermachine.launch: not base64 (standard alphabet)";
      return std::string();
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (padding > 2 || bits >= 6) {
    *error = "kernel parameter supermachine.launch: truncated base64";
    return std::string();
  }
  return out;
}

}  // namespace supermachine::agent
