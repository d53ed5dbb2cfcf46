// File: gc.cc
// Mark (what the store's snapshots refer to), then sweep the three places bakes write.
#include "daemon/bake/gc.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/bake/metadata.h"
#include "daemon/layer/layer_cache.h"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

// baker.cc's temp and aside prefixes (a bake in progress / an old snapshot being replaced).
constexpr const char* kLeftoverPrefixes[] = {".tmp-bake-", ".old-bake-"};

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") {
        out.push_back(name);
      }
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Allocated bytes of a file or a whole tree (no symlinks followed).
uint64_t Bytes(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return 0;
  }
  uint64_t total = static_cast<uint64_t>(st.st_blocks) * 512;
  if (S_ISDIR(st.st_mode)) {
    for (const std::string& name : List(path)) {
      total += Bytes(absl::StrCat(path, "/", name));
    }
  }
  return total;
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

// rm -rf; "" or why not.
std::string Remove(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? "" : absl::StrCat(path, ": ", strerror(errno));
  }
  const int rc = S_ISDIR(st.st_mode) ? ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS)
                                     : ::unlink(path.c_str());
  return rc == 0 ? "" : absl::StrCat(path, ": ", strerror(errno));
}

// "sha256:<hex>" for a layer-cache file name "sha256_<hex>.sqfs"; "" for anything else.
std::string LayerFileDigest(const std::string& file) {
  if (!absl::EndsWith(file, ".sqfs")) {
    return "";
  }
  const size_t us = file.find('_');
  if (us == std::string::npos || us == 0) {
    return "";
  }
  return absl::StrCat(file.substr(0, us), ":", file.substr(us + 1, file.size() - us - 6));
}

}  // namespace

absl::StatusOr<GcReport> CollectGarbage(const GcPlaces& places, const StoreAccess& with_store,
                                        bool dry_run) {
  // Mark.
  std::vector<store::SnapshotRecord> snapshots;
  std::vector<store::LayerRecord> unreferenced;
  SM_RETURN_IF_ERROR(with_store([&](store::Store& s) -> absl::Status {
    SM_ASSIGN_OR_RETURN(snapshots, s.ListSnapshots());
    SM_ASSIGN_OR_RETURN(unreferenced, s.UnreferencedLayers());
    return absl::OkStatus();
  }));
  std::set<std::string> live_layers, live_deltas;
  std::set<std::string> snapshot_dirs(places.snapshots_dirs.begin(), places.snapshots_dirs.end());
  for (const store::SnapshotRecord& snap : snapshots) {
    live_layers.insert(snap.layer_digests.begin(), snap.layer_digests.end());
    // The delta file a snapshot boots from: its key and layer count (delta.h).
    absl::StatusOr<SnapshotMetadata> md = ParseMetadata(snap.metadata_json);
    if (!md.ok()) {
      // Unknown delta: keep every delta rather than delete one a snapshot may need.
      return absl::FailedPreconditionError(absl::StrCat(
          "gc: snapshot '", snap.name, "' has unreadable metadata (", md.status().message(),
          "); remove or re-bake it first"));
    }
    live_deltas.insert(absl::StrCat(md->delta_key.hex(), "-l", md->layers.size(), ".sqfs"));
    const size_t slash = snap.path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      snapshot_dirs.insert(snap.path.substr(0, slash));
    }
  }

  GcReport report{.dry_run = dry_run};
  auto sweep = [&](const std::string& kind, const std::string& path, const std::string& digest) {
    const uint64_t bytes = Bytes(path);
    if (!dry_run) {
      if (std::string err = Remove(path); !err.empty()) {
        report.errors.push_back(err);
        return false;
      }
      if (kind == "layer") {
        // Its checksum goes with it; a missing one is fine (older caches had none).
        if (std::string err = Remove(layer::LayerCache::ChecksumPathOf(path)); !err.empty()) {
          report.errors.push_back(err);
        }
      }
    }
    report.items.push_back({.kind = kind, .path = path, .bytes = bytes, .digest = digest});
    report.bytes_freed += bytes;
    return true;
  };

  // Layers: rows with no snapshot left, then files the store never knew.
  std::set<std::string> done;
  for (const store::LayerRecord& layer : unreferenced) {
    if (live_layers.count(layer.digest) != 0) {
      continue;  // an image row refers to it only if the store says so; belt and braces
    }
    if (!sweep("layer", layer.sqfs_path, layer.digest)) {
      continue;
    }
    done.insert(layer.sqfs_path);
    if (!dry_run) {
      SM_RETURN_IF_ERROR(with_store([&](store::Store& s) { return s.RemoveLayer(layer.digest); }));
    }
  }
  if (!places.layer_cache_dir.empty()) {
    const std::string dir = places.layer_cache_dir + "/layers";
    for (const std::string& file : List(dir)) {
      const std::string digest = LayerFileDigest(file);
      const std::string path = absl::StrCat(dir, "/", file);
      if (!digest.empty() && live_layers.count(digest) == 0 && done.count(path) == 0) {
        sweep("layer", path, digest);
      }
    }
  }

  // Deltas (and the builder's temp files: a present .sqfs only ever appears by rename).
  if (!places.deltas_dir.empty()) {
    for (const std::string& file : List(places.deltas_dir)) {
      if (live_deltas.count(file) == 0) {
        sweep("delta", places.deltas_dir + "/" + file, "");
      }
    }
  }

  // Failed bakes' temp dirs and crash leftovers.
  for (const std::string& dir : snapshot_dirs) {
    for (const std::string& name : List(dir)) {
      for (const char* prefix : kLeftoverPrefixes) {
        if (absl::StartsWith(name, prefix)) {
          sweep("leftover", absl::StrCat(dir, "/", name), "");
        }
      }
    }
  }
  return report;
}

}  // namespace supermachine::bake
