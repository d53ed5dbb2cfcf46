// File: named_volumes.h
// Named volumes (`smctl run -v NAME:/guest/path`, docs/volumes.md): ext4 files that outlive
// VMs, at <state>/volumes/NAME.ext4, recorded in the store (migration 5). Attach binds each
// name to the volume slot a snapshot declares at that guest path, creating a missing volume as
// a sparse copy of the slot's clean template (same size, temp name + rename), and records the
// VM holding it: one live VM per volume. Detach frees what a VM holds; a VM whose store row
// ended holds nothing anyway. The manager (vm_manager.h) calls these around a VM's life;
// the API lists and removes.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/store/store.h"

namespace supermachine::vm {

// One `-v NAME:/guest/path` of an Acquire.
struct VolumeBinding {
  std::string name;
  std::string guest_path;
  bool operator==(const VolumeBinding&) const = default;
};

// "NAME:/guest/path" → binding (InvalidArgument quoting the text for anything else).
absl::StatusOr<VolumeBinding> ParseVolumeBinding(const std::string& text);
std::string ToString(const VolumeBinding& binding);

// A volume slot a snapshot declares (metadata.json `volumes`, in disk order).
struct VolumeSlot {
  std::string disk_id;     // "v<i>"
  std::string guest_path;
  uint64_t size_bytes = 0;
  std::string template_path;  // the bake's clean image in the snapshot dir
};

// The slots of the snapshot in `snapshot_dir` (none for a snapshot without volumes).
absl::StatusOr<std::vector<VolumeSlot>> ReadVolumeSlots(const std::string& snapshot_dir);

class NamedVolumes {
 public:
  // Runs a function on the store under the lock every store user holds.
  using StoreAccess =
      std::function<absl::Status(const std::function<absl::Status(store::Store&)>&)>;
  // `dir`: where the volume files live (created on first use).
  NamedVolumes(std::string dir, StoreAccess with_store)
      : dir_(std::move(dir)), with_store_(std::move(with_store)) {}

  // Binds every binding to `vm_id` and returns disk id → volume file for the launcher.
  // InvalidArgument for a bad name, a repeated name or path, or a path where the snapshot has
  // no slot (naming the slots it has); FailedPrecondition when a volume is held by another
  // live VM (naming it) or has another size than its slot. `replacing`: the previous run of a
  // restarted VM, whose volumes pass to `vm_id`. On error nothing new stays attached.
  absl::StatusOr<std::map<std::string, std::string>> Attach(
      const std::string& vm_id, const std::vector<VolumeBinding>& bindings,
      const std::string& snapshot_name, const std::string& snapshot_dir,
      const std::string& replacing = "");
  // Frees every volume `vm_id` holds.
  absl::Status Detach(const std::string& vm_id);
  // The bindings `vm_id` holds (a VM re-adopted after a daemon restart gets them back).
  absl::StatusOr<std::vector<VolumeBinding>> HeldBy(const std::string& vm_id);
  absl::StatusOr<std::vector<store::VolumeRecord>> List();
  // Deletes the volume's file and row; FailedPrecondition naming the VM while attached.
  absl::Status Remove(const std::string& name);

  const std::string& dir() const { return dir_; }

 private:
  const std::string dir_;
  StoreAccess with_store_;
  // Attach and Remove of one name must not interleave (file and row change together).
  absl::Mutex mu_;
};

}  // namespace supermachine::vm
