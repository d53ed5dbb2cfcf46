// File: specs.h
// The small value types of a bake request and the parsers for their text forms, as typed on
// `smctl bake` and carried as strings in the gRPC BakeRequest: extra files (`host:guest`),
// volumes (`name:guest_path[:size]`), restart policy, health check, readiness; the egress
// policy's types and parser are worker/net's, re-exported here.
// Every parser returns InvalidArgument naming the field and quoting the bad value; every type
// has a canonical ToString() that parses back to an equal value (cache keys and metadata.json
// use it, so two spellings of one policy cannot bake twice).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/net/egress_policy.h"

namespace supermachine::bake {

// ---- guest paths -------------------------------------------------------------------------

// A path inside the guest: absolute, no NUL or newline, no "." or ".." component, no empty
// component ("//"), no trailing '/' (except "/" itself). `field` names the request field in
// the message: "extra file '/a:b': guest path 'b' must be absolute (start with '/')".
absl::Status CheckGuestPath(absl::string_view field, absl::string_view path);

// ---- extra files -------------------------------------------------------------------------

// A host file copied into the delta layer at `guest_path`, keeping its mode bits.
struct ExtraFile {
  std::string host_path;   // absolute (the daemon does not share the client's cwd)
  std::string guest_path;  // absolute
  bool operator==(const ExtraFile&) const = default;
};

// "HOST:GUEST", split at the first ':' (as upstream): host paths cannot contain ':'.
// Checks syntax only; that the host file exists is Validate()'s job (request.h).
absl::StatusOr<ExtraFile> ParseExtraFile(absl::string_view spec);
std::string ToString(const ExtraFile& file);

// ---- volumes -----------------------------------------------------------------------------

// A persistent read-write ext4 disk, created sparse on first use under the daemon's volume dir
// and mounted at `guest_path`.
struct Volume {
  std::string name;        // [A-Za-z0-9][A-Za-z0-9_.-]{0,63}
  std::string guest_path;  // absolute, not "/"
  uint64_t size_bytes = 0;
  bool operator==(const Volume&) const = default;
};

inline constexpr uint64_t kDefaultVolumeSizeBytes = uint64_t{1} << 30;  // 1 GiB, sparse
// ext4 with its journal does not fit in less (mke2fs refuses below ~1 MiB with a journal).
inline constexpr uint64_t kMinVolumeSizeBytes = uint64_t{16} << 20;
// ext4's limit with 4 KiB blocks and 32-bit block numbers (no 64bit feature assumed).
inline constexpr uint64_t kMaxVolumeSizeBytes = uint64_t{16} << 40;

// Sizes: a decimal integer of bytes with an optional binary suffix, case-insensitive:
// K/KiB = 1024, M/MiB = 1024², G/GiB = 1024³, T/TiB = 1024⁴ ("512M", "1G", "1GiB", "1048576").
// A fraction ("1.5G"), a sign, an SI "GB" (ambiguous) or overflow is an error.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);
// The shortest exact form: 1073741824 → "1G", 1536 → "1536" (not "1.5K").
std::string FormatSize(uint64_t bytes);

// "NAME:GUEST_PATH[:SIZE]"; SIZE defaults to kDefaultVolumeSizeBytes. Guest paths containing
// ':' are not supported (the last ':' separates the size).
absl::StatusOr<Volume> ParseVolume(absl::string_view spec);
absl::Status CheckVolume(const Volume& volume);  // name, path and size bounds
std::string ToString(const Volume& volume);      // always with the size: "data:/var/lib:1G"

// Sub-dir of a snapshot dir that holds the volume images (volume_image.h makes them).
inline constexpr char kVolumesSubdir[] = "volumes";
// "volumes/<name>.img": the image's path relative to the snapshot dir (metadata.json `image`).
std::string VolumeImageRelPath(const Volume& volume);

// ---- restart policy ----------------------------------------------------------------------

struct RestartPolicy {
  enum class Kind { kNo, kOnFailure, kAlways };
  Kind kind = Kind::kNo;
  uint32_t max_retries = 0;  // kOnFailure only; 0 = no limit
  bool operator==(const RestartPolicy&) const = default;
};

// "no" | "on-failure" | "on-failure:N" (1 ≤ N ≤ 1000000) | "always"; "" = "no" (Docker's
// default). Also the supervisor's (daemon/vm/supervisor.h re-exports it): Acquire's
// restart_policy and the store's restart_policy column use this grammar.
absl::StatusOr<RestartPolicy> ParseRestartPolicy(absl::string_view text);
std::string ToString(const RestartPolicy& policy);

// ---- health check ------------------------------------------------------------------------

// Run in the guest through the agent every `interval_ms`; a non-zero exit is unhealthy.
struct HealthCheck {
  std::vector<std::string> cmd;  // argv, never empty
  uint32_t interval_ms = 0;
  bool operator==(const HealthCheck&) const = default;
};

inline constexpr uint32_t kDefaultHealthIntervalMs = 30'000;  // upstream's 30 s
inline constexpr uint32_t kMinHealthIntervalMs = 100;
inline constexpr uint32_t kMaxHealthIntervalMs = 24 * 3600 * 1000;

// `cmd`: a JSON argv (`["curl","-f","http://localhost/"]`) or a shell line run as
// `/bin/sh -c LINE` (Docker's HEALTHCHECK CMD shell form). `interval`: "" (30 s), a plain
// number of seconds ("30", upstream's form), or a number with "ms", "s", "m" or "h".
// An empty `cmd` with an empty interval is "no health check" (nullopt); an interval without a
// command is an error.
absl::StatusOr<std::optional<HealthCheck>> ParseHealthCheck(absl::string_view cmd,
                                                            absl::string_view interval);
absl::StatusOr<uint32_t> ParseDurationMs(absl::string_view field, absl::string_view text);
absl::Status CheckHealthCheck(const HealthCheck& health);

// ---- readiness ---------------------------------------------------------------------------

inline constexpr uint32_t kDefaultSettleMs = 50;
inline constexpr uint32_t kDefaultFallbackMs = 7000;
inline constexpr uint32_t kDefaultDeadlineMs = 240'000;
inline constexpr uint32_t kMaxDeadlineMs = 3600 * 1000;

// When a bake takes its snapshot.
//   kListener: when a TCP listener on guest_port appears, after `settle_ms` more (lets the
//              workload finish the accept-loop set-up that follows listen()); if none appears
//              within `fallback_ms`, snapshot anyway (upstream's fallback; 0 = no fallback:
//              the bake fails at the deadline).
//   kExit:     when the workload exits with status 0 (set-up images); non-zero fails the bake.
//   kParked:   before the workload starts: restores start it fresh. Always correct, slower
//              to first response; the only mode allowed with volumes (see Validate).
//   kAfter:    `after_ms` after the workload started, whatever it is doing.
// `deadline_ms` bounds the whole boot-to-snapshot wait in every mode.
struct Readiness {
  enum class Mode { kListener, kExit, kParked, kAfter };
  Mode mode = Mode::kListener;
  uint32_t after_ms = 0;  // kAfter only
  uint32_t settle_ms = kDefaultSettleMs;
  uint32_t fallback_ms = kDefaultFallbackMs;
  uint32_t deadline_ms = kDefaultDeadlineMs;
  bool operator==(const Readiness&) const = default;
};

// MODE[,OPTION=MS]... where MODE is "listener" | "exit" | "parked" | "after=<ms>", and
// OPTION is "deadline" (any mode) or "settle" / "fallback" (listener only):
// "listener", "after=2000", "listener,settle=200,fallback=0", "exit,deadline=600000".
// "" is not accepted here: an unset readiness is resolved by DefaultReadiness (request.h).
absl::StatusOr<Readiness> ParseReadiness(absl::string_view text);
absl::Status CheckReadiness(const Readiness& readiness);
// Canonical: every option spelled out, "listener,settle=50,fallback=7000,deadline=240000".
std::string ToString(const Readiness& readiness);
const char* ModeName(Readiness::Mode mode);

// ---- egress policy -----------------------------------------------------------------------

// One grammar and one parser for bake requests, Acquire overrides and the worker's frame
// filter: the worker's (worker/net/egress_policy.h), whose canonical ToString keys the bake
// cache and metadata.json. "allow_all" | "deny_private" | "allowlist:CIDR,..." |
// "denylist:CIDR,..."; "" = deny_private; a list needs at least one CIDR, duplicates removed.
// Validated and recorded at bake time; enforced by the VM's network device.
using ::supermachine::net::Cidr;
using ::supermachine::net::EgressPolicy;
using ::supermachine::net::ParseCidr;
using ::supermachine::net::ParseEgressPolicy;
using ::supermachine::net::ToString;

}  // namespace supermachine::bake
