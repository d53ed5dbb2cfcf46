// File: metadata.h
// metadata.json, the description a bake leaves in its snapshot dir: what was baked (image,
// digest, layers), under which keys, how the guest was launched, the runtime policies the
// daemon applies on restore, and how long each step took. The SQLite store keeps a copy
// (snapshots.metadata_json); the file makes a snapshot dir self-describing.
// Format and compatibility rules: docs/bake.md ("metadata.json").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/bake/keys.h"
#include "daemon/bake/launch_spec.h"
#include "daemon/bake/specs.h"
#include "daemon/image/digest.h"

namespace supermachine::bake {

// Readers accept exactly this version. Adding an optional field keeps it; removing, renaming
// or retyping a field, or adding a required one, bumps it.
inline constexpr int kMetadataFormatVersion = 1;
inline constexpr char kMetadataFileName[] = "metadata.json";
// A real file is a few KiB; refuse to parse anything absurd.
inline constexpr size_t kMaxMetadataBytes = 4 << 20;

// Wall time per bake step, in milliseconds (0 for a step a cache hit skipped).
struct BakeTimings {
  uint64_t resolve_ms = 0;   // ref → manifest + config
  uint64_t pull_ms = 0;      // layer blobs fetched
  uint64_t convert_ms = 0;   // layers → squashfs
  uint64_t delta_ms = 0;     // delta layer built
  uint64_t boot_ms = 0;      // worker start → agent up
  uint64_t ready_ms = 0;     // agent up → readiness met
  uint64_t snapshot_ms = 0;  // snapshot written
  uint64_t total_ms = 0;     // request received → metadata written
  bool operator==(const BakeTimings&) const = default;
};

struct SnapshotMetadata {
  std::string name;
  std::string image;         // as requested ("redis:7")
  image::Digest image_digest;  // the manifest it resolved to
  std::vector<image::Digest> layers;  // bottom layer first
  image::Digest cheap_key;
  image::Digest delta_key;
  image::Digest bake_key;
  std::string kernel_version;
  image::Digest kernel_digest;
  std::string agent_version;
  image::Digest agent_digest;
  uint32_t memory_mib = 0;
  uint32_t vcpus = 0;
  uint32_t guest_port = 0;  // 0: none
  LaunchSpec launch;        // argv, env, workdir, user, hostname, restart
  std::vector<DeltaFile> extra_files;
  std::vector<Volume> volumes;
  std::optional<HealthCheck> health;
  Readiness readiness;
  EgressPolicy egress;
  int64_t baked_at_unix_ms = 0;
  BakeTimings timings;
  bool operator==(const SnapshotMetadata&) const = default;
};

// Pretty JSON, fields in a fixed order, trailing newline. format_version is always
// kMetadataFormatVersion.
std::string SerializeMetadata(const SnapshotMetadata& metadata);

// Strict: every field of the current version must be present with its type; unknown fields
// are ignored (so a later minor addition still reads). FailedPrecondition for another
// format_version ("metadata.json format_version 2: this supermachined reads only 1; ..."),
// InvalidArgument naming the field for anything else.
absl::StatusOr<SnapshotMetadata> ParseMetadata(absl::string_view json);

// <dir>/metadata.json via a temp file in `dir`: write, fsync, rename, fsync(dir). Readers see
// the old file or the new one, never a part.
absl::Status WriteMetadata(const std::string& dir, const SnapshotMetadata& metadata);

// Reads <dir>/metadata.json (NotFound if absent; InvalidArgument above kMaxMetadataBytes).
// Errors name the file.
absl::StatusOr<SnapshotMetadata> ReadMetadata(const std::string& dir);

}  // namespace supermachine::bake
