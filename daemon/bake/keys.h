// File: keys.h
// The bake's three cache keys (issue 8, steps 1, 3 and 4), each the SHA-256 of a canonical,
// versioned encoding of exactly its inputs:
//   cheap key  — the request + content of kernel/agent/worker/extra files + the digest the
//                image ref last resolved to. Computable without the registry; a hit ends the
//                bake in milliseconds.
//   delta key  — what goes into the delta layer: agent, launch spec, hostname, extra files
//                (guest path, mode, content), volume list. Names the cached delta squashfs.
//   bake key   — what the snapshot's bytes depend on: layer digests, delta key, kernel,
//                agent, worker, memory, vCPUs, readiness (and guest_port for listener).
// What each key deliberately leaves out is listed in docs/bake.md ("Cache keys").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/bake/file_hash.h"
#include "daemon/bake/launch_spec.h"
#include "daemon/bake/request.h"
#include "daemon/image/digest.h"

namespace supermachine::bake {

// Bumped whenever an encoding below changes meaning, so old keys can never collide with new
// ones (every stored key then misses once and the bake reruns).
// 2: the delta key gained "start" (a parked bake's launch.json holds the workload).
inline constexpr uint32_t kKeyFormatVersion = 2;

// Length-prefixed, typed field list:
//   header  "smbake-key\0" u32be(version) then a string field "kind"
//   field   type byte ('S' string, 'U' u64, 'L' list of strings, 'N' absent optional)
//           u32be(len(name)) name, then
//           S: u64be(len) bytes   U: u64be(value)   L: u64be(count) (u64be(len) bytes)*   N: —
// No two different field sequences encode to the same bytes, so equal keys mean equal inputs.
class KeyEncoder {
 public:
  explicit KeyEncoder(absl::string_view kind, uint32_t version = kKeyFormatVersion);
  KeyEncoder& Str(absl::string_view name, absl::string_view value);
  KeyEncoder& U64(absl::string_view name, uint64_t value);
  KeyEncoder& List(absl::string_view name, const std::vector<std::string>& values);
  KeyEncoder& Absent(absl::string_view name);
  KeyEncoder& OptStr(absl::string_view name, const std::optional<std::string>& value);
  KeyEncoder& OptList(absl::string_view name,
                      const std::optional<std::vector<std::string>>& values);

  const std::string& bytes() const { return bytes_; }
  image::Digest Finish() const;  // SHA-256 of bytes()

 private:
  void Name(char type, absl::string_view name);
  std::string bytes_;
};

// Content digests of the host-side artifacts every bake uses.
struct Artifacts {
  image::Digest kernel;
  image::Digest agent;
  image::Digest worker;  // the VMM that boots and snapshots (its state format is in the snapshot)
};

// ---- cheap key -------------------------------------------------------------------------

struct CheapKeyExtras {
  Artifacts artifacts;
  // One per request.extra_files, in the same order (FingerprintExtraFiles).
  std::vector<FileFingerprint> extra_files;
  // The manifest digest the ref resolved to last (ref cache), "" when not known: then the key
  // still works but only matches bakes that did not know one either.
  std::string cached_image_digest;
};

// Hashes every extra file of the request (streaming), in request order.
absl::StatusOr<std::vector<FileFingerprint>> FingerprintExtraFiles(const BakeRequest& request);

// Inputs: image (as typed), effective name, guest_port, memory, vcpus, cmd, entrypoint,
// workdir, user, env (ordered), effective hostname, extra files (host path, guest path, mode,
// content; order-insensitive), volumes (ordered), restart, health, effective readiness,
// egress, artifacts, cached image digest. Not inputs: snapshots_dir (the key is looked up in
// it), pull_policy (changes how the image is found, not what is baked).
// InvalidArgument if extras.extra_files does not match request.extra_files in length.
absl::StatusOr<image::Digest> CheapKey(const BakeRequest& request, const CheapKeyExtras& extras);

// ---- delta key -------------------------------------------------------------------------

struct DeltaFile {
  std::string guest_path;
  uint32_t mode = 0;
  image::Digest content;
  bool operator==(const DeltaFile&) const = default;
};

struct DeltaKeyInputs {
  image::Digest agent;
  LaunchSpec launch;             // argv, env, workdir, user, hostname, restart
  std::vector<DeltaFile> files;  // any order: the delta holds a tree, encoded sorted
  std::vector<Volume> volumes;   // order significant: it is the guest's disk order
  bool park = false;             // readiness parked: launch.json "start": "restore"
};

// Pairs request.extra_files with their fingerprints (same order) into delta files.
std::vector<DeltaFile> DeltaFiles(const BakeRequest& request,
                                  const std::vector<FileFingerprint>& fingerprints);

image::Digest DeltaKey(const DeltaKeyInputs& inputs);

// ---- bake key --------------------------------------------------------------------------

struct BakeKeyInputs {
  std::vector<image::Digest> layers;  // as the layer cache keys them, bottom layer first
  image::Digest delta_key;
  Artifacts artifacts;
  uint32_t memory_mib = 0;
  uint32_t vcpus = 0;
  Readiness readiness;
  uint32_t guest_port = 0;  // an input only when readiness is kListener
};

image::Digest BakeKey(const BakeKeyInputs& inputs);

}  // namespace supermachine::bake
