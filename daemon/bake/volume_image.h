// File: volume_image.h
// The ext4 images behind a bake's volumes (`name:guest_path[:size]`, specs.h). A bake makes each
// one empty and sparse in the snapshot dir (`volumes/<name>.img`) with the genuine mke2fs (there
// is no ext4 writer library worth linking), verifies the superblock, and attaches it read-write
// as disk `v<i>`; the guest agent mounts it at guest_path when the parked workload starts.
// Where the images go after the bake — a copy per VM that lives as long as the VM — is the
// daemon's job (docs/bake.md, "Volumes").
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/bake/specs.h"

namespace supermachine::bake {

struct VolumeOwner {
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool operator==(const VolumeOwner&) const = default;
};

// The owner of a new volume's root directory for the workload `user` (launch spec syntax):
// "" → 0:0, "UID" → UID:UID, "UID:GID" → UID:GID. A user or group given by name cannot be
// resolved on the host (it lives in the image's /etc/passwd): 0:0, so the root-owned mount
// point is what the workload sees (chown it from an exec or the entrypoint).
VolumeOwner VolumeOwnerFor(const std::string& user);

struct VolumeImageOptions {
  std::string mke2fs = "mke2fs";  // looked up in PATH without a '/'
  VolumeOwner owner;
};

// Creates `<dir>/volumes/<name>.img`: a sparse file of volume.size_bytes formatted by
// `mke2fs -t ext4 -E root_owner=UID:GID`, written under a temp name, checked with
// CheckExt4Image, then renamed in. Nothing is left behind on failure. Errors:
// FailedPrecondition (mke2fs missing or failing: its output in the message), ResourceExhausted
// (disk full), AlreadyExists (the image is there already).
absl::StatusOr<std::string> CreateVolumeImage(const Volume& volume, const std::string& dir,
                                              const VolumeImageOptions& options = {});

// The file holds an ext4 superblock (magic 0xEF53 at byte 1080) describing a filesystem that
// fits in the file, labelled `label` (ext4 keeps 16 bytes of it). DataLoss otherwise.
absl::Status CheckExt4Image(const std::string& path, const std::string& label);

// The label mke2fs gets: the volume name cut to ext4's 16 bytes.
std::string VolumeLabel(const Volume& volume);

}  // namespace supermachine::bake
