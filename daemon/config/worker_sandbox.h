// File: worker_sandbox.h
// The worker sandbox settings supermachined runs with, resolved once at start from what the
// config file says (daemon_config.h) and what the host offers. Secure by default where the
// host allows it (issue #11, docs/security.md "Worker sandbox"):
// - the jail is on when the daemon runs as root (it needs root for its namespaces, pivot_root
//   and the switch to other uids) and the file does not turn it off; a file that asks for it
//   on a daemon that is not root is an error, not a silently weaker sandbox;
// - per-VM uids come from the subordinate id range the host reserved for the user
//   'supermachine' (/etc/subuid and /etc/subgid, the file pair newuidmap, podman and useradd
//   already use to keep such ranges apart; deploy/setup.sh reserves 65536 ids there), unless
//   the file names its own range, turns it off, or gives one worker_uid for all.
// Reading the host is main's job; this module only decides, so every combination is testable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/config/daemon_config.h"

namespace supermachine::config {

// The user whose subordinate ids the daemon uses for per-VM uids by default.
inline constexpr char kSubidOwner[] = "supermachine";

// What the host offers, as main read it.
struct SandboxHost {
  bool root = false;  // euid 0: namespaces, pivot_root, setresuid to any uid
  // kSubidOwner's uid when that user exists: subid files may name the owner by number.
  std::optional<uint32_t> owner_uid;
  std::string subuid;  // /etc/subuid's text ("" when missing)
  std::string subgid;  // /etc/subgid's text
};

struct WorkerSandbox {
  bool jail = false;
  uint32_t uid = 0;  // one uid/gid for all workers (0: none)
  uint32_t gid = 0;
  DaemonConfig::UidRange uid_range;  // count 0: no per-VM uids
  // One line for the start-up log saying what is on and why, e.g. "jail on (auto: the daemon
  // runs as root), per-VM uids 100000..165535 (/etc/subuid 'supermachine')".
  std::string summary;
};

// FailedPrecondition, naming the field and the way out, when the file asks for something the
// host cannot give (the jail, a worker uid or a uid range on a daemon that is not root).
absl::StatusOr<WorkerSandbox> ResolveWorkerSandbox(const DaemonConfig& config,
                                                   const SandboxHost& host);

// The first range that /etc/subuid (`subuid`) and /etc/subgid (`subgid`) both give `owner`
// (by name, or by `owner_uid` as a number) starting at the same id — a worker's gid is its
// uid's number, so both must be reserved — with the smaller of the two counts. nullopt when
// there is none. Lines are "owner:first:count"; malformed lines, ranges that include 0 or
// run past 2^32 - 2 are skipped.
std::optional<DaemonConfig::UidRange> ReservedSubidRange(const std::string& subuid,
                                                         const std::string& subgid,
                                                         const std::string& owner,
                                                         std::optional<uint32_t> owner_uid);

}  // namespace supermachine::config
