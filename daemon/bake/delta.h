// File: delta.h
// The delta layer: the squashfs a bake boots from as /dev/vda (docs/guest-boot.md). It holds
// what the image does not: the guest agent (PID 1), its launch config, the hostname, the
// request's extra files and the empty mount points the agent mounts over:
//   /.supermachine/agent (0755)   /.supermachine/launch.json (0644)   /etc/hostname (0644)
//   /proc /sys /dev /run (0755)   /tmp (1777)   extra files (their host mode)   volume dirs
// Built in process: a tar written with libarchive into a temp file, converted by daemon/layer's
// ConvertLayer (the same code path as image layers). Cached by delta key (keys.h) plus the
// layer count (launch.json lists the layer disk ids, which the delta key does not cover).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/bake/keys.h"
#include "daemon/bake/launch_spec.h"
#include "daemon/bake/specs.h"

namespace supermachine::bake {

// Disk ids (virtio-blk serials) the bake gives its disks; launch.json names layers by them.
inline constexpr char kDeltaDiskId[] = "delta";
std::string LayerDiskId(size_t index);   // "l0", "l1", ... (bottom first)
std::string VolumeDiskId(size_t index);  // "v0", ...

struct DeltaContent {
  std::string agent_path;            // host path of the static guest agent
  LaunchSpec launch;
  size_t layer_count = 0;
  struct File {
    std::string host_path;
    std::string guest_path;
    uint32_t mode = 0644;
  };
  std::vector<File> files;           // extra files
  std::vector<Volume> volumes;       // disk order = VolumeDiskId order
  // Readiness parked: launch.json "start": "restore", so the agent holds the workload (and
  // its volumes) until the first restore. Part of the delta key (DeltaKeyInputs::park).
  bool park = false;
};

// launch.json (version 1, docs/guest-boot.md), compact, trailing newline.
std::string LaunchJson(const DeltaContent& content);

// Writes the delta squashfs to `output_path` (via `output_path`.tmp-*, renamed in on success;
// nothing is left behind on failure).
absl::Status WriteDelta(const DeltaContent& content, const std::string& output_path);

struct DeltaBuild {
  std::string path;
  bool cache_hit = false;
  uint64_t size_bytes = 0;
};

// <cache_dir>/<key hex>-l<layer_count>.sqfs, built by WriteDelta when missing. Concurrent
// builders of one key each write their own temp file; the rename makes one win whole.
absl::StatusOr<DeltaBuild> GetOrBuildDelta(const DeltaContent& content, const image::Digest& key,
                                           const std::string& cache_dir);

}  // namespace supermachine::bake
