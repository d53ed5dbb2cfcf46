// File: volume_files.h
// The host files behind a restored VM's volume disks. A bake leaves each volume as a clean,
// never-mounted ext4 template in <snapshot>/volumes/ and records the disks (delta, layers,
// volumes `v<i>`) in the snapshot's state file at the paths the bake boot used. A restore must
// never open a template (clones of one snapshot would share one ext4 file: corruption), so
// every restore passes one `--disk` per saved disk in the saved order: delta and layers
// read-only at their saved paths, each volume slot read-write at a file of that VM alone —
// a named volume's file (<state>/volumes/NAME.ext4) or a private sparse copy of the template
// in the VM's run dir. docs/volumes.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace supermachine::vm {

// One block device as the snapshot's state file records it, in the saved order.
struct SavedDisk {
  std::string path;
  bool read_only = false;
  std::string id;
  uint64_t size_bytes = 0;  // capacity_sectors * 512
};

// The disks of <snapshot_dir>/state, in order. Errors name the file.
absl::StatusOr<std::vector<SavedDisk>> ReadSavedDisks(const std::string& snapshot_dir);

// "v0", "v1", ...: the ids a bake gives volume disks (bake::VolumeDiskId).
bool IsVolumeDiskId(const std::string& id);

// The clean template of a saved volume disk: <snapshot_dir>/volumes/<file name of its saved
// path> (the bake boot saw it in its temp dir, renamed since to the snapshot dir).
std::string VolumeTemplatePath(const std::string& snapshot_dir, const SavedDisk& disk);

// Copies `src` to `dst` keeping holes (SEEK_DATA/SEEK_HOLE; a reflink when the filesystem
// offers FICLONE): a 1 GiB volume template costs its ~16 MiB of metadata, not 1 GiB. Written
// under a temp name in dst's directory, fsynced, renamed: `dst` is whole or absent.
// AlreadyExists when `dst` exists.
absl::Status SparseCopyFile(const std::string& src, const std::string& dst);

// Name grammar of named volumes (smctl run -v NAME:/path): [A-Za-z0-9][A-Za-z0-9_.-]{0,63},
// as bake volume names. InvalidArgument quoting the name otherwise.
absl::Status ValidateVolumeName(const std::string& name);

struct RestoreDisks {
  // The `--disk` values, one per saved disk in order; empty when the snapshot has no volumes
  // (the worker then reopens every saved path, all read-only layers).
  std::vector<std::string> disk_args;
  // Private copies made for this VM (deleted with it).
  std::vector<std::string> private_copies;
};

// Decides the files of a restore of `snapshot_dir` for the VM whose run dir is `vm_dir`.
// `named` maps a volume disk id ("v0") to the file of the named volume bound to that slot; it
// must have exactly the slot's size (FailedPrecondition otherwise). Every other volume slot
// gets a private copy of its template at <vm_dir>/volumes/<disk id>.img. A snapshot without a
// volumes/ subdir yields no disk args and reads nothing. On error nothing is left behind.
absl::StatusOr<RestoreDisks> PrepareRestoreDisks(const std::string& snapshot_dir,
                                                 const std::string& vm_dir,
                                                 const std::map<std::string, std::string>& named);

}  // namespace supermachine::vm
