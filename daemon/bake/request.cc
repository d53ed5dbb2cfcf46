// File: request.cc
// BakeRequest validation, default readiness and snapshots dir.
#include "daemon/bake/request.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/bake/snapshot_name.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " '", value, "': ", why));
}

absl::Status CheckArgv(absl::string_view field, const std::vector<std::string>& argv) {
  for (const std::string& a : argv) {
    if (a.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": an argument contains a NUL byte"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckEnv(const std::vector<std::string>& env) {
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Invalid("env", e, "must look like KEY=VALUE");
    }
    if (e.find('\0') != std::string::npos) {
      return Invalid("env", e.substr(0, eq), "contains a NUL byte");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLaunchOverrides(const BakeRequest& r) {
  if (r.cmd.has_value()) {
    SM_RETURN_IF_ERROR(CheckArgv("cmd", *r.cmd));
  }
  if (r.entrypoint.has_value()) {
    SM_RETURN_IF_ERROR(CheckArgv("entrypoint", *r.entrypoint));
  }
  if (r.workdir.has_value() && !r.workdir->empty()) {
    SM_RETURN_IF_ERROR(CheckGuestPath("workdir", *r.workdir));
  }
  if (r.user.has_value() &&
      (r.user->find_first_of(std::string_view("\0\n \t", 4)) != std::string::npos ||
       std::count(r.user->begin(), r.user->end(), ':') > 1)) {
    return Invalid("user", *r.user, "expected USER, UID, USER:GROUP or UID:GID");
  }
  return CheckEnv(r.env);
}

absl::Status CheckExtraFiles(const BakeRequest& r, const FsChecks& fs) {
  std::set<std::string> guest_paths;
  for (const ExtraFile& f : r.extra_files) {
    const std::string spec = ToString(f);
    if (f.host_path.empty() || f.host_path.front() != '/') {
      return Invalid("extra file", spec, "host path must be absolute");
    }
    SM_RETURN_IF_ERROR(CheckGuestPath(absl::StrCat("extra file '", spec, "'"), f.guest_path));
    if (f.guest_path == "/") {
      return Invalid("extra file", spec, "guest path must name a file, not '/'");
    }
    if (!guest_paths.insert(f.guest_path).second) {
      return Invalid("extra file", spec,
                     "another extra file already goes to this guest path");
    }
    if (fs.readable_regular_file) {
      absl::Status st = fs.readable_regular_file(f.host_path);
      if (!st.ok()) {
        return absl::Status(st.code(), absl::StrCat("extra file '", spec, "': host file '",
                                                    f.host_path, "': ", st.message()));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckVolumes(const BakeRequest& r) {
  std::set<std::string> names;
  std::set<std::string> paths;
  for (const Volume& v : r.volumes) {
    SM_RETURN_IF_ERROR(CheckVolume(v));
    if (!names.insert(v.name).second) {
      return Invalid("volume", ToString(v), "the volume name is used twice");
    }
    if (!paths.insert(v.guest_path).second) {
      return Invalid("volume", ToString(v), "another volume is mounted at this guest path");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckReadinessFits(const BakeRequest& r) {
  if (!r.readiness.has_value()) {
    return absl::OkStatus();
  }
  const Readiness& rd = *r.readiness;
  SM_RETURN_IF_ERROR(CheckReadiness(rd));
  if (rd.mode == Readiness::Mode::kListener && r.guest_port == 0) {
    return Invalid("readiness", ModeName(rd.mode),
                   "needs guest_port (the port whose listener means ready)");
  }
  if (rd.mode != Readiness::Mode::kParked && !r.volumes.empty()) {
    return Invalid("readiness", ModeName(rd.mode),
                   "with volumes only 'parked' is allowed: a snapshot taken with a volume "
                   "mounted holds page cache that the volume file will not match on the next "
                   "restore");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckHostname(absl::string_view hostname) {
  if (hostname.empty() || hostname.size() > kMaxHostnameLength) {
    return Invalid("hostname", hostname, "must be 1 to 63 characters");
  }
  for (char c : hostname) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return Invalid("hostname", hostname, "only a-z, 0-9 and '-' allowed");
    }
  }
  if (hostname.front() == '-' || hostname.back() == '-') {
    return Invalid("hostname", hostname, "must not start or end with '-'");
  }
  return absl::OkStatus();
}

FsChecks RealFsChecks() {
  return FsChecks{.readable_regular_file = [](const std::string& path) -> absl::Status {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return base::ErrnoToStatus(errno, "stat");
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError("not a regular file");
    }
    if (access(path.c_str(), R_OK) != 0) {
      return base::ErrnoToStatus(errno, "access");
    }
    return absl::OkStatus();
  }};
}

absl::Status Validate(const BakeRequest& r, const FsChecks& fs) {
  if (r.image.empty()) {
    return absl::InvalidArgumentError("image is required");
  }
  SM_RETURN_IF_ERROR(CheckSnapshotName(r.name.empty() ? DefaultSnapshotName(r.image) : r.name));
  if (r.guest_port > kMaxGuestPort) {
    return Invalid("guest_port", absl::StrCat(r.guest_port), "must be 1 to 65535 (0: none)");
  }
  if (r.memory_mib < kMinMemoryMib || r.memory_mib > kMaxMemoryMib) {
    return Invalid("memory_mib", absl::StrCat(r.memory_mib),
                   absl::StrCat("must be between ", kMinMemoryMib, " and ", kMaxMemoryMib));
  }
  if (r.vcpus < 1 || r.vcpus > kMaxVcpus) {
    return Invalid("vcpus", absl::StrCat(r.vcpus), absl::StrCat("must be 1 to ", kMaxVcpus));
  }
  if (!r.snapshots_dir.empty() && r.snapshots_dir.front() != '/') {
    return Invalid("snapshots_dir", r.snapshots_dir, "must be an absolute path");
  }
  SM_RETURN_IF_ERROR(CheckLaunchOverrides(r));
  if (!r.hostname.empty()) {
    SM_RETURN_IF_ERROR(CheckHostname(r.hostname));
  }
  SM_RETURN_IF_ERROR(CheckVolumes(r));
  if (r.restart.kind == RestartPolicy::Kind::kOnFailure && r.restart.max_retries > 1'000'000) {
    return Invalid("restart policy", ToString(r.restart), "at most 1000000 retries");
  }
  if (r.health.has_value()) {
    SM_RETURN_IF_ERROR(CheckHealthCheck(*r.health));
  }
  SM_RETURN_IF_ERROR(CheckReadinessFits(r));
  if ((r.egress.kind == EgressPolicy::Kind::kAllowlist ||
       r.egress.kind == EgressPolicy::Kind::kDenylist) &&
      r.egress.cidrs.empty()) {
    return Invalid("egress policy", ToString(r.egress), "the list needs at least one CIDR");
  }
  // Last: the only check that touches the filesystem.
  return CheckExtraFiles(r, fs);
}

Readiness EffectiveReadiness(const BakeRequest& r) {
  if (r.readiness.has_value()) {
    return *r.readiness;
  }
  if (!r.volumes.empty() || r.guest_port == 0) {
    return Readiness{.mode = Readiness::Mode::kParked};
  }
  return Readiness{.mode = Readiness::Mode::kListener};
}

absl::StatusOr<std::string> ResolveSnapshotsDir(const BakeRequest& r, absl::string_view state_dir,
                                                absl::string_view env_value) {
  std::string dir;
  const char* from = "";
  if (!r.snapshots_dir.empty()) {
    dir = r.snapshots_dir;
    from = "snapshots_dir";
  } else if (!env_value.empty()) {
    dir = std::string(env_value);
    from = kSnapshotsDirEnv;
  } else {
    dir = absl::StrCat(state_dir, "/snapshots");
    from = "snapshots dir (<state dir>/snapshots)";
  }
  if (dir.empty() || dir.front() != '/') {
    return Invalid(from, dir, "must be an absolute path");
  }
  return dir;
}

}  // namespace supermachine::bake
