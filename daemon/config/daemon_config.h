// File: daemon_config.h
// supermachined's configuration: defaults (default_paths.h), then an optional JSON file
// (--config), then flags, each overriding the one before. Validation happens here, before
// anything is opened, so a bad value is reported with the flag or field that carries it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/config/default_paths.h"
#include "daemon/config/log.h"

namespace supermachine::config {

// One snapshot's warm pool (daemon/vm/pool.h).
struct PoolSettings {
  uint32_t min = 0;                 // ready VMs kept restored
  uint32_t max = 16;                // VMs alive at most (ready + starting + handed out)
  uint32_t idle_timeout_s = 600;    // ready VMs above min stop after this
  uint32_t acquire_timeout_s = 30;  // Acquire's default deadline
};

struct DaemonConfig {
  std::string socket;             // Unix socket path
  uint32_t socket_mode = 0660;    // permission bits of the socket
  std::string socket_group;       // group owning the socket ("" keeps the daemon's)
  std::string state_dir;          // store.db lives here
  std::string snapshots_dir;      // default <state_dir>/snapshots
  std::string metrics_address = "127.0.0.1:9464";  // "" disables the exporter
  std::string worker_binary;      // "" = supermachine-worker next to supermachined
  std::string kernel;             // guest kernel for bakes ("" = Bake unavailable)
  std::string guest_agent;        // static guest agent for bakes ("" = Bake unavailable)
  std::string vm_dir;             // per-VM sockets and logs; default <state_dir>/vms
  std::map<std::string, PoolSettings> pools;  // snapshot name → its pool
  PoolSettings default_pool;      // snapshots without an entry in pools
  LogLevel log_level = LogLevel::kInfo;
  // Remote access (daemon/api/remote_listener.h): TCP only with TLS and a bearer token;
  // ValidateDaemonConfig refuses a tcp address without them.
  std::string tcp;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string token_file;
  // The worker sandbox (docs/security.md "Worker sandbox"), config file only. What the file
  // says; the settings the daemon runs with are resolved at start against the host
  // (worker_sandbox.h), where "unset" means the default named here:
  // seccomp mode for every worker ("" = the worker's own default, on; on, off, trap);
  // the namespace/pivot_root jail (unset: on when the daemon runs as root), optionally with
  // one unprivileged uid/gid for all workers (0 = not set); a cgroup v2 parent under which
  // each worker gets its own limited cgroup ("" = none).
  std::string worker_seccomp;
  std::optional<bool> worker_jail;
  uint32_t worker_uid = 0;
  uint32_t worker_gid = 0;
  // worker_uid_range: with the jail, each restored VM's worker runs as a uid of its own from
  // first .. first + count - 1, its gid the same number, freed when the worker is reaped
  // (daemon/vm/uid_pool.h, issue #11). count 0 = off ("off" in the file). Excludes
  // worker_uid/worker_gid. Unset ("auto", the default): the subordinate id range reserved for
  // the user 'supermachine' in /etc/subuid and /etc/subgid, when the jail is on and there is
  // one (deploy/setup.sh reserves it).
  struct UidRange {
    uint32_t first = 0;
    uint32_t count = 0;
  };
  std::optional<UidRange> worker_uid_range;
  std::string worker_cgroup_parent;
  // Bake workers boot with a virtio-balloon (free page reporting), so VMs restored from new
  // snapshots give freed memory back (docs/balloon.md). On by default since it passed CI
  // (worker_lab_balloon) and every bake lab test with it; false bakes without the device.
  bool worker_balloon = true;
  // Each VM's console.log is rotated to console.log.1 before it would pass this many MiB
  // (the worker's --serial-max-bytes), so a VM keeps at most twice this on disk; 0: unbounded.
  uint32_t console_log_max_mib = 8;
  // Restored workers get --ksm: guest RAM marked mergeable for the kernel's KSM
  // (docs/memory.md). Off by default: ksmd's CPU, and page merging across VMs is a timing side
  // channel between tenants.
  bool worker_ksm = false;
  // A clean stop (SIGTERM: `systemctl stop`/`restart`) leaves handed-out VMs running for the
  // next start to re-adopt, as a crash does (docs/operations.md, "Stopping"); pooled VMs are
  // stopped either way. Off by default: stopping the service stops its VMs.
  bool keep_vms_on_stop = false;
  // The idle-VM balloon policy (docs/balloon.md "Daemon policy", daemon/vm/idle_balloon.h): a
  // handed-out VM without exec or new forwarded connections for this many seconds is asked to
  // inflate its balloon to balloon_idle_target_percent of guest RAM (1..95), which goes back
  // to the host; its next activity deflates it first. 0 turns the policy off. VMs whose worker
  // has no balloon device are asked once.
  uint32_t balloon_idle_after_s = 300;
  uint32_t balloon_idle_target_percent = 70;
};

// Result of parsing the command line: either a config to run with, or text to print and an
// exit code (--help, --version, or an error).
struct ParsedFlags {
  bool exit_now = false;
  int exit_code = 0;
  std::string output;  // for stdout when exit_code == 0, stderr otherwise
  DaemonConfig config;
};

ParsedFlags ParseDaemonFlags(int argc, const char* const* argv, const UserEnvironment& env,
                             const std::string& version);

// Applies the JSON config file text over `config`. Unknown fields are an error (a typo must
// not be silently ignored). Fields: socket, socket_mode ("0660" octal string or number),
// socket_group, state_dir, snapshots_dir, metrics_address, log_level, worker_binary, vm_dir,
// kernel, guest_agent, tcp, tls_cert, tls_key, tls_client_ca, token_file, worker_seccomp,
// worker_jail (bool, or "auto"), worker_uid, worker_gid (numbers),
// worker_uid_range ({"first": N, "count": M}, "auto" or "off"), worker_cgroup_parent, worker_balloon (bool),
// console_log_max_mib (number, 0 = unbounded), worker_ksm (bool), keep_vms_on_stop (bool),
// balloon_idle_after_s
// (number, 0 = off), balloon_idle_target_percent (number, 1..95),
// pools ({"NAME": {min, max, idle_timeout_s, acquire_timeout_s}}), default_pool ({...}).
absl::Status ApplyJsonConfig(const std::string& json_text, DaemonConfig* config);

// "0660" → 0660; InvalidArgument unless it is octal and within 0777.
absl::StatusOr<uint32_t> ParseSocketMode(const std::string& text);

// {"min": 2, "max": 8, "idle_timeout_s": 600, "acquire_timeout_s": 30} over `out`; unknown
// fields and min > max are InvalidArgument naming `what`.
absl::Status ApplyPoolJson(const std::string& what, const std::string& json_text,
                           PoolSettings* out);

// Final checks on a complete config (metrics address shape, TCP/TLS/token rules, balloon
// target range).
absl::Status ValidateDaemonConfig(const DaemonConfig& config);

}  // namespace supermachine::config
