// File: worker_sandbox.cc
#include "daemon/config/worker_sandbox.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace supermachine::config {
namespace {

// (uid_t)-1 means "unchanged" to setresuid: no range may reach it.
constexpr uint64_t kLastUsableId = 0xfffffffeu;

std::vector<DaemonConfig::UidRange> RangesOf(const std::string& text, const std::string& owner,
                                             std::optional<uint32_t> owner_uid) {
  std::vector<DaemonConfig::UidRange> out;
  const std::string owner_number = owner_uid.has_value() ? std::to_string(*owner_uid) : "";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    if (f.size() != 3 || (f[0] != owner && (owner_number.empty() || f[0] != owner_number))) {
      continue;
    }
    uint64_t first = 0;
    uint64_t count = 0;
    if (!absl::SimpleAtoi(f[1], &first) || !absl::SimpleAtoi(f[2], &count) || first == 0 ||
        count == 0 || first + count - 1 > kLastUsableId) {
      continue;
    }
    out.push_back({.first = static_cast<uint32_t>(first), .count = static_cast<uint32_t>(count)});
  }
  return out;
}

std::string RangeText(const DaemonConfig::UidRange& r) {
  return absl::StrCat(r.first, "..", uint64_t{r.first} + r.count - 1);
}

}  // namespace

std::optional<DaemonConfig::UidRange> ReservedSubidRange(const std::string& subuid,
                                                         const std::string& subgid,
                                                         const std::string& owner,
                                                         std::optional<uint32_t> owner_uid) {
  const std::vector<DaemonConfig::UidRange> uids = RangesOf(subuid, owner, owner_uid);
  const std::vector<DaemonConfig::UidRange> gids = RangesOf(subgid, owner, owner_uid);
  for (const DaemonConfig::UidRange& u : uids) {
    for (const DaemonConfig::UidRange& g : gids) {
      if (u.first == g.first) {
        return DaemonConfig::UidRange{.first = u.first, .count = std::min(u.count, g.count)};
      }
    }
  }
  return std::nullopt;
}

absl::StatusOr<WorkerSandbox> ResolveWorkerSandbox(const DaemonConfig& config,
                                                   const SandboxHost& host) {
  WorkerSandbox out;
  std::string jail_why;
  if (config.worker_jail.has_value()) {
    out.jail = *config.worker_jail;
    jail_why = "set in the config file";
  } else {
    out.jail = host.root;
    jail_why = host.root ? "auto: the daemon runs as root"
                         : "auto: the daemon does not run as root, which the jail needs";
  }
  const bool wants_ids = config.worker_uid != 0 ||
                         (config.worker_uid_range.has_value() && config.worker_uid_range->count);
  if (!host.root && (out.jail || wants_ids)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config file: ",
        out.jail ? "\"worker_jail\": true" : "worker_uid/worker_uid_range",
        " needs supermachined to run as root (the jail creates namespaces, pivot_roots and "
        "switches workers to other uids); run it as root (the systemd unit does) or remove "
        "the setting"));
  }
  if (wants_ids && !out.jail) {
    // ValidateDaemonConfig catches an explicit false; this is "auto" resolving to off.
    return absl::FailedPreconditionError(
        "config file: worker_uid/worker_uid_range need the jail, which is off");
  }
  std::string ids_why;
  if (config.worker_uid != 0) {
    out.uid = config.worker_uid;
    out.gid = config.worker_gid;
    ids_why = absl::StrCat("all workers as uid ", out.uid, " gid ", out.gid);
  } else if (config.worker_uid_range.has_value()) {
    out.uid_range = *config.worker_uid_range;
    ids_why = out.uid_range.count != 0
                  ? absl::StrCat("per-VM uids ", RangeText(out.uid_range), " (config file)")
                  : "per-VM uids off (config file)";
  } else if (out.jail) {
    std::optional<DaemonConfig::UidRange> reserved =
        ReservedSubidRange(host.subuid, host.subgid, kSubidOwner, host.owner_uid);
    if (reserved.has_value()) {
      out.uid_range = *reserved;
      ids_why = absl::StrCat("per-VM uids ", RangeText(out.uid_range), " (/etc/subuid and "
                             "/etc/subgid of '", kSubidOwner, "')");
    } else {
      ids_why = absl::StrCat(
          "per-VM uids off: no range for '", kSubidOwner, "' in both /etc/subuid and "
          "/etc/subgid, so jailed workers stay uid 0 without capabilities (deploy/setup.sh "
          "reserves one; docs/security.md)");
    }
  }
  out.summary = absl::StrCat("jail ", out.jail ? "on" : "off", " (", jail_why, ")");
  if (!ids_why.empty()) {
    absl::StrAppend(&out.summary, ", ", ids_why);
  }
  absl::StrAppend(&out.summary, ", cgroups ",
                  config.worker_cgroup_parent.empty() ? std::string("off")
                                                      : "under " + config.worker_cgroup_parent);
  return out;
}

}  // namespace supermachine::config
