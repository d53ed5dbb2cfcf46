// File: request.h
// BakeRequest: everything a bake is asked to do, already parsed from its text forms (specs.h),
// and Validate(), which checks what the parsers cannot see alone: ranges, cross-field rules
// (readiness vs guest_port and volumes), duplicates, and that extra files exist on the host.
// Docs: docs/bake.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/bake/specs.h"
#include "daemon/image/pull.h"

namespace supermachine::bake {

inline constexpr uint32_t kDefaultMemoryMib = 256;
inline constexpr uint32_t kMinMemoryMib = 32;  // the worker refuses less (docs/worker.md)
inline constexpr uint32_t kMaxMemoryMib = 1024 * 1024;
inline constexpr uint32_t kDefaultVcpus = 1;
inline constexpr uint32_t kMaxVcpus = 32;  // worker/arch/x86_64/layout.h kMaxVcpus (MP table)
inline constexpr uint32_t kMaxGuestPort = 65535;
inline constexpr size_t kMaxHostnameLength = 63;
// Overrides the snapshots dir for every bake that does not name one (as upstream's
// SUPERMACHINE_SNAPSHOTS). Read by main(); the library gets its value passed in.
inline constexpr char kSnapshotsDirEnv[] = "SUPERMACHINE_SNAPSHOTS_DIR";

struct BakeRequest {
  // Any source the image pipeline takes: "redis:7", "oci-layout:/d:tag", ... (image/source_spec.h)
  std::string image;
  // Snapshot name; "" = DefaultSnapshotName(image) (snapshot_name.h).
  std::string name;
  // The port whose listener means ready (readiness kListener); 0 = none.
  uint32_t guest_port = 0;
  uint32_t memory_mib = kDefaultMemoryMib;
  uint32_t vcpus = kDefaultVcpus;
  image::PullPolicy pull_policy = image::PullPolicy::kMissing;
  // Where the snapshot dir <snapshots_dir>/<name> goes; "" = ResolveSnapshotsDir's default.
  std::string snapshots_dir;

  // Launch overrides, Docker's rules (launch_spec.h): `cmd` replaces the image Cmd and keeps
  // its Entrypoint; `entrypoint` replaces the Entrypoint and drops the image Cmd.
  std::optional<std::vector<std::string>> cmd;
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::string> workdir;
  std::optional<std::string> user;  // "user", "uid", "user:group", "uid:gid"
  // "KEY=VALUE" added to the image's env; a KEY already present is replaced in place. Order
  // is significant: a later duplicate wins, and the guest sees env in this order.
  std::vector<std::string> env;
  std::string hostname;  // "" = kDefaultHostname (launch_spec.h)

  std::vector<ExtraFile> extra_files;  // guest paths unique
  std::vector<Volume> volumes;         // names and guest paths unique; order = disk order
  RestartPolicy restart;
  std::optional<HealthCheck> health;
  // nullopt = DefaultReadiness(request).
  std::optional<Readiness> readiness;
  EgressPolicy egress;  // default deny_private
};

// Filesystem checks Validate needs, injectable so tests need no fixture files.
struct FsChecks {
  // OK if `path` is a regular file the daemon can read; else a Status whose message says why
  // ("No such file or directory", "is a directory", ...).
  std::function<absl::Status(const std::string& path)> readable_regular_file;
};

// stat() + S_ISREG + access(R_OK).
FsChecks RealFsChecks();

// Every check; the first failure is returned as InvalidArgument naming the field and value
// ("hostname 'Foo_bar': only a-z, 0-9 and '-' allowed"), except a missing/unreadable extra
// file, which keeps its code (NotFound / PermissionDenied) with the field added.
absl::Status Validate(const BakeRequest& request, const FsChecks& fs);

// RFC 1123 label, lowercase: 1–63 of [a-z0-9-], no leading or trailing '-'.
absl::Status CheckHostname(absl::string_view hostname);

// The readiness a bake uses: the request's if set, else
//   volumes present → parked (a snapshot of mounted ext4 would not match the volume file on
//                     the next restore; upstream makes the same choice),
//   guest_port set  → listener with the default settle/fallback/deadline,
//   otherwise       → parked (with no port there is nothing to wait for that we can see).
Readiness EffectiveReadiness(const BakeRequest& request);

// The snapshots dir: the request's if set, else the env override (value of
// SUPERMACHINE_SNAPSHOTS_DIR, "" when unset), else <state_dir>/snapshots. InvalidArgument if
// the chosen path is not absolute.
absl::StatusOr<std::string> ResolveSnapshotsDir(const BakeRequest& request,
                                                absl::string_view state_dir,
                                                absl::string_view env_value);

}  // namespace supermachine::bake
