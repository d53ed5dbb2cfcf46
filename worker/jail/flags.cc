// File: flags.cc
// Parsing of the sandbox flags (flags.h).
#include "worker/jail/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace supermachine::jail {
namespace {

absl::StatusOr<uint32_t> ParseId(absl::string_view flag, const std::string& v) {
  uint32_t id;
  if (!absl::SimpleAtoi(v, &id) || id == 0 || id == static_cast<uint32_t>(-1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " '", v, "': expected a non-zero numeric id (not root)"));
  }
  return id;
}

}  // namespace

absl::StatusOr<SandboxFlags> ExtractSandboxFlags(std::vector<std::string>& args,
                                                 const char* env_seccomp) {
  SandboxFlags f;
  if (env_seccomp != nullptr && env_seccomp[0] != '\0') {
    absl::StatusOr<SeccompMode> m = ParseSeccompMode(env_seccomp);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kSeccompEnv, "='", env_seccomp, "': expected on, off or trap"));
    }
    f.seccomp = *m;
  }
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string name = a;
    std::optional<std::string> value;
    if (const size_t eq = a.find('='); absl::StartsWith(a, "--") && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    if (i == 0 ||
        (name != "--seccomp" && name != "--jail-dir" && name != "--uid" && name != "--gid" &&
         name != "--cgroup" && name != "--jail-share")) {
      rest.push_back(a);
      continue;
    }
    if (!value.has_value()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(name, " needs a value (see --help)"));
      }
      value = args[++i];
    }
    if (name == "--seccomp") {
      absl::StatusOr<SeccompMode> m = ParseSeccompMode(*value);
      if (!m.ok()) {
        return m.status();
      }
      f.seccomp = *m;
    } else if (name == "--jail-dir") {
      f.jail_dir = *value;
    } else if (name == "--jail-share") {
      if (value->empty() || (*value)[0] != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat("--jail-share '", *value, "': must be an absolute path"));
      }
      f.jail_shares.push_back(*value);
    } else if (name == "--uid") {
      absl::StatusOr<uint32_t> id = ParseId(name, *value);
      if (!id.ok()) {
        return id.status();
      }
      f.uid = *id;
    } else if (name == "--gid") {
      absl::StatusOr<uint32_t> id = ParseId(name, *value);
      if (!id.ok()) {
        return id.status();
      }
      f.gid = *id;
    } else {
      f.cgroup = *value;
    }
  }
  if (!f.jail_shares.empty() && f.jail_dir.empty()) {
    return absl::InvalidArgumentError("--jail-share needs --jail-dir");
  }
  if ((f.uid.has_value() || f.gid.has_value()) && f.jail_dir.empty()) {
    return absl::InvalidArgumentError("--uid/--gid need --jail-dir (the jail drops privileges)");
  }
  if (f.uid.has_value() != f.gid.has_value()) {
    return absl::InvalidArgumentError("give both --uid and --gid, or neither");
  }
  args = std::move(rest);
  return f;
}

const char* SandboxFlagsHelp() {
  return "Sandbox (docs/seccomp.md, docs/security.md):\n"
         "  --seccomp on|off|trap  seccomp allowlist from the first KVM_RUN on; trap prints the\n"
         "                         offending syscall before dying (default: $SM_WORKER_SECCOMP,\n"
         "                         else on; off in AddressSanitizer builds)\n"
         "  --jail-dir DIR         after setup: new mount/IPC/UTS/net namespaces, pivot_root\n"
         "                         into a tmpfs on DIR with only the VM's socket directory,\n"
         "                         no capabilities, no_new_privs\n"
         "  --uid N --gid N        with --jail-dir: run as this uid/gid after setup\n"
         "  --jail-share DIR       with --jail-dir: DIR stays reachable (read-write, same path),\n"
         "                         e.g. for `snapshot DIR`; repeatable\n"
         "  --cgroup DIR           create and join this cgroup v2 directory before anything is\n"
         "                         allocated; memory.max = guest RAM + 128 MiB, cpu.max from\n"
         "                         the vCPUs, pids.max\n";
}

}  // namespace supermachine::jail
