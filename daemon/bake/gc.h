// File: gc.h
// Garbage collection of what bakes leave on disk (`smctl gc`, the Gc RPC):
//   layer     a converted layer no snapshot refers to: its store row (refcount 0 in
//             snapshot_layers) and its .sqfs, and any .sqfs in the layer cache the store never
//             recorded (converted for a bake that then failed);
//   delta     <state>/bake/deltas/<key>-l<N>.sqfs that no snapshot's metadata names (its
//             delta key and layer count), and the delta builder's stray temp files;
//   leftover  .tmp-bake-* / .old-bake-* dirs in a snapshots dir: a failed or interrupted bake's
//             temp dir, or an old snapshot a crash left aside.
// Snapshots themselves are never collected (`smctl rm` removes them; their layers and delta
// become garbage then). The caller must make sure no bake runs meanwhile: Baker::Gc holds the
// Baker's bake lock; another process baking into the same state dir (sm-bake) is not seen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/bake/baker.h"

namespace supermachine::bake {

struct GcItem {
  std::string kind;    // "layer" | "delta" | "leftover"
  std::string path;    // the file or dir removed (or that would be, with dry_run)
  uint64_t bytes = 0;  // disk space it takes (allocated blocks; sparse files count as stored)
  std::string digest;  // kind "layer": the layer digest, else ""
};

struct GcReport {
  bool dry_run = false;
  std::vector<GcItem> items;  // layers, then deltas, then leftovers; each sorted by path
  uint64_t bytes_freed = 0;   // sum of items' bytes (what would be freed, with dry_run)
  std::vector<std::string> errors;  // items that could not be removed (kept out of `items`)
};

struct GcPlaces {
  std::vector<std::string> snapshots_dirs;  // scanned for leftovers (duplicates ignored)
  std::string deltas_dir;                   // <state>/bake/deltas
  std::string layer_cache_dir;              // the LayerCache root (its layers/ is scanned)
};

// Finds and (unless dry_run) removes the garbage in `places`, consulting the store for what
// snapshots refer to. Store errors fail the call before anything is removed; a file that
// cannot be removed is reported in `errors` and the rest goes on.
absl::StatusOr<GcReport> CollectGarbage(const GcPlaces& places, const StoreAccess& with_store,
                                        bool dry_run);

}  // namespace supermachine::bake
