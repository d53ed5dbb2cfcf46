// File: named_volumes.cc
#include "daemon/vm/named_volumes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/bake/metadata.h"
#include "daemon/vm/volume_files.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

constexpr char kVolumeSuffix[] = ".ext4";

std::string SlotPaths(const std::vector<VolumeSlot>& slots) {
  std::vector<std::string> paths;
  paths.reserve(slots.size());
  for (const VolumeSlot& s : slots) {
    paths.push_back(s.guest_path);
  }
  return absl::StrJoin(paths, ", ");
}

}  // namespace

absl::StatusOr<VolumeBinding> ParseVolumeBinding(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon + 1 >= text.size() || text[colon + 1] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume '", text, "': expected NAME:/guest/path (the guest path of one of the "
        "snapshot's volumes)"));
  }
  VolumeBinding b{.name = text.substr(0, colon), .guest_path = text.substr(colon + 1)};
  SM_RETURN_IF_ERROR(ValidateVolumeName(b.name));
  return b;
}

std::string ToString(const VolumeBinding& binding) {
  return absl::StrCat(binding.name, ":", binding.guest_path);
}

absl::StatusOr<std::vector<VolumeSlot>> ReadVolumeSlots(const std::string& snapshot_dir) {
  SM_ASSIGN_OR_RETURN(bake::SnapshotMetadata md, bake::ReadMetadata(snapshot_dir));
  std::vector<VolumeSlot> out;
  for (size_t i = 0; i < md.volumes.size(); ++i) {
    const bake::Volume& v = md.volumes[i];
    // Disk ids follow the bake's order (bake::VolumeDiskId, daemon/bake/delta.h).
    out.push_back({.disk_id = absl::StrCat("v", i),
                   .guest_path = v.guest_path,
                   .size_bytes = v.size_bytes,
                   .template_path = absl::StrCat(snapshot_dir, "/", bake::VolumeImageRelPath(v))});
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> NamedVolumes::Attach(
    const std::string& vm_id, const std::vector<VolumeBinding>& bindings,
    const std::string& snapshot_name, const std::string& snapshot_dir,
    const std::string& replacing) {
  std::map<std::string, std::string> files;
  if (bindings.empty()) {
    return files;
  }
  absl::StatusOr<std::vector<VolumeSlot>> slots = ReadVolumeSlots(snapshot_dir);
  if (!slots.ok()) {
    return base::Annotate(slots.status(),
                          absl::StrCat("read the volumes of snapshot '", snapshot_name, "'"));
  }
  // Check every binding before touching anything.
  std::vector<const VolumeSlot*> slot_of;
  std::set<std::string> names;
  std::set<std::string> paths;
  for (const VolumeBinding& b : bindings) {
    SM_RETURN_IF_ERROR(ValidateVolumeName(b.name));
    if (!names.insert(b.name).second || !paths.insert(b.guest_path).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "volume ", ToString(b), ": each volume name and guest path may appear once"));
    }
    const VolumeSlot* found = nullptr;
    for (const VolumeSlot& s : *slots) {
      if (s.guest_path == b.guest_path) {
        found = &s;
      }
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snapshot '", snapshot_name, "' ",
          slots->empty() ? "declares no volumes"
                         : absl::StrCat("declares volumes at ", SlotPaths(*slots)),
          "; bake with -v NAME:", b.guest_path, " to have one at ", b.guest_path));
    }
    slot_of.push_back(found);
  }

  absl::MutexLock lock(&mu_);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("create ", dir_, ": ", ec.message()));
  }
  std::vector<std::string> attached;
  // Passes `st` through; an error first frees what this call attached.
  auto undo = [&](absl::Status st) {
    if (st.ok()) {
      return st;
    }
    for (const std::string& name : attached) {
      with_store_([&](store::Store& s) { return s.DetachVolumes(vm_id, name); }).IgnoreError();
    }
    return st;
  };
  for (size_t i = 0; i < bindings.size(); ++i) {
    const VolumeBinding& b = bindings[i];
    const VolumeSlot& slot = *slot_of[i];
    const std::string path = absl::StrCat(dir_, "/", b.name, kVolumeSuffix);
    absl::StatusOr<store::VolumeRecord> row = absl::NotFoundError("");
    SM_RETURN_IF_ERROR(undo(with_store_([&](store::Store& s) {
      row = s.GetVolume(b.name);
      return absl::IsNotFound(row.status()) ? absl::OkStatus() : row.status();
    })));
    if (row.ok() && static_cast<uint64_t>(row->size_bytes) != slot.size_bytes) {
      return undo(absl::FailedPreconditionError(absl::StrCat(
          "volume '", b.name, "' is ", row->size_bytes, " bytes but snapshot '", snapshot_name,
          "' has a ", slot.size_bytes, "-byte volume at ", slot.guest_path,
          "; a named volume only fits slots of its own size")));
    }
    struct stat st {};
    const bool have_file = ::stat(path.c_str(), &st) == 0;
    if (!row.ok() || !have_file) {
      // New (or its file lost): a fresh copy of the slot's clean template. A file without a
      // row is a leftover of a crash between the two: replaced.
      if (have_file) {
        ::unlink(path.c_str());
      }
      SM_RETURN_IF_ERROR(undo(SparseCopyFile(slot.template_path, path)));
    }
    if (!row.ok()) {
      absl::Status created = with_store_([&](store::Store& s) {
        return s.CreateVolume({.name = b.name,
                               .path = path,
                               .size_bytes = static_cast<int64_t>(slot.size_bytes)});
      });
      if (!created.ok()) {
        ::unlink(path.c_str());
        return undo(created);
      }
    }
    SM_RETURN_IF_ERROR(undo(with_store_([&](store::Store& s) {
      return s.AttachVolume(b.name, vm_id, b.guest_path, replacing);
    })));
    attached.push_back(b.name);
    files[slot.disk_id] = path;
  }
  return files;
}

absl::Status NamedVolumes::Detach(const std::string& vm_id) {
  return with_store_([&](store::Store& s) { return s.DetachVolumes(vm_id); });
}

absl::StatusOr<std::vector<VolumeBinding>> NamedVolumes::HeldBy(const std::string& vm_id) {
  SM_ASSIGN_OR_RETURN(std::vector<store::VolumeRecord> all, List());
  std::vector<VolumeBinding> out;
  for (const store::VolumeRecord& v : all) {
    if (v.attached_vm == vm_id) {
      out.push_back({.name = v.name, .guest_path = v.guest_path});
    }
  }
  return out;
}

absl::StatusOr<std::vector<store::VolumeRecord>> NamedVolumes::List() {
  absl::StatusOr<std::vector<store::VolumeRecord>> out;
  SM_RETURN_IF_ERROR(with_store_([&](store::Store& s) {
    out = s.ListVolumes();
    return out.status();
  }));
  return out;
}

absl::Status NamedVolumes::Remove(const std::string& name) {
  SM_RETURN_IF_ERROR(ValidateVolumeName(name));
  absl::MutexLock lock(&mu_);
  absl::StatusOr<store::VolumeRecord> row = absl::NotFoundError("");
  SM_RETURN_IF_ERROR(with_store_([&](store::Store& s) {
    row = s.GetVolume(name);
    return row.status();
  }));
  if (!row->attached_vm.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume '", name, "' is attached to VM ", row->attached_vm,
        "; release that VM first (smctl rm ", row->attached_vm, ")"));
  }
  // The file first: a crash between leaves a row without a file, which the next Attach
  // re-creates clean, never a stale file a new volume of that name would inherit.
  if (::unlink(row->path.c_str()) != 0 && errno != ENOENT) {
    return base::ErrnoToStatus(errno, absl::StrCat("remove volume file ", row->path));
  }
  return with_store_([&](store::Store& s) { return s.RemoveVolume(name); });
}

}  // namespace supermachine::vm
