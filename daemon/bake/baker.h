// File: baker.h
// Baker: the bake pipeline (issue 8) behind one call. A BakeRequest becomes a snapshot dir
// <snapshots_dir>/<name> holding the worker's snapshot and metadata.json, recorded in the store.
//
//   cheap key → store hit?  ──yes──▶ done (no registry, no boot)
//   resolve + pull (pull policy) → layers → squashfs (layer cache)
//   delta squashfs (agent, launch.json, hostname, extra files, volumes; cached by delta key)
//   bake key  → store hit?  ──yes──▶ done (no boot)
//   boot worker (one ro disk per layer + delta as /dev/vda) → agent up → readiness
//   → snapshot into <snapshots_dir>/.tmp-<name>-<id> → stop worker → metadata.json
//   → rename into place → store rows (bake, snapshot, layers)
//
// A failed bake leaves a 'failed' bake row with the error and no dir under the snapshot's name;
// a crash leaves a 'running' row that the next Baker::Create marks failed (its temp dir is
// removed, its worker killed if it outlived the crash: orphan_sweep.h). Docs: docs/bake.md ("Pipeline").
//
// Every call writes a bakes row (cache hits too: 'succeeded' with the old snapshot's timings).
// Thread safety: Bake() may run concurrently from several threads; every store call goes through
// BakerOptions::with_store, which the caller serialises. Two bakes of one snapshot (same name
// and snapshots dir) never overlap: the second waits for the first (then usually hits its
// cache) or fails with DeadlineExceeded when its own deadline passes while it waits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/bake/metadata.h"
#include "daemon/bake/orphan_sweep.h"
#include "daemon/bake/request.h"
#include "daemon/image/image_config.h"
#include "daemon/store/store.h"
#include "daemon/vm/process_table.h"

namespace supermachine::bake {

struct GcReport;  // gc.h

// Runs `fn` with exclusive access to the store (the daemon holds its store mutex around it).
using StoreFn = std::function<absl::Status(store::Store&)>;
using StoreAccess = std::function<absl::Status(const StoreFn&)>;

// StoreAccess over a store guarded by `mu` (both not owned, must outlive the Baker).
StoreAccess LockedStoreAccess(store::Store* store, absl::Mutex* mu);

struct BakeProgress {
  enum class Stage { kResolve, kPull, kConvert, kDelta, kBoot, kReady, kSnapshot, kDone };
  Stage stage = Stage::kResolve;
  std::string layer_digest;  // kPull / kConvert: the layer concerned, else ""
  uint64_t bytes_done = 0;   // kPull: bytes of that layer so far
  uint64_t bytes_total = 0;
  std::string message;       // one human line ("booting worker", "cache hit (cheap key)")
};
const char* StageName(BakeProgress::Stage stage);
using ProgressFn = std::function<void(const BakeProgress&)>;

struct BakeResult {
  std::string snapshot_name;
  std::string snapshot_dir;       // absolute
  SnapshotMetadata metadata;      // as in <snapshot_dir>/metadata.json
  bool cache_hit = false;
  std::string hit_kind;           // "cheap" | "full" | "none"
  int64_t bake_id = 0;            // store row of this bake (cache hits get a row too)
};

// ---- seams (tests replace them; Create() fills in the real ones when left null) -------------

// The layers of a resolved image, converted.
struct ResolvedLayers {
  std::string image_digest;                 // manifest digest
  image::ImageConfig config;
  std::vector<std::string> layer_digests;   // bottom first
  std::vector<std::string> sqfs_paths;      // same order
  std::vector<uint64_t> sqfs_sizes;
  uint64_t resolve_ms = 0, pull_ms = 0, convert_ms = 0;
};

class ImageFetcher {
 public:
  virtual ~ImageFetcher() = default;
  // The digest the ref last resolved to without network ("" if unknown) — a cheap key input.
  virtual std::string CachedDigest(const std::string& image) = 0;
  virtual absl::StatusOr<ResolvedLayers> Fetch(const BakeRequest& request,
                                               const ProgressFn& progress) = 0;
};

// What a boot needs; the VmBooter turns it into a running worker and a snapshot.
struct BootPlan {
  std::vector<std::string> layer_sqfs;  // bottom first; disk ids per docs/guest-boot.md
  std::string delta_sqfs;               // /dev/vda (root)
  // Volume ext4 images, read-write, disk ids v0, v1, ... (VolumeDiskId) in request order.
  std::vector<std::string> volume_images;
  std::string out_dir;                  // snapshot written here (exists, empty)
  std::string work_dir;                 // sockets + console.log (exists)
  uint32_t memory_mib = 0, vcpus = 0, guest_port = 0;
  Readiness readiness;
  absl::Time deadline;
};
struct BootTimings {
  uint64_t boot_ms = 0, ready_ms = 0, snapshot_ms = 0;
  std::string agent_version;  // from the agent's ping
};

class VmBooter {
 public:
  virtual ~VmBooter() = default;
  // Boots, waits for readiness, snapshots into plan.out_dir, stops the worker. Errors:
  // FailedPrecondition "workload exited with status N before it was ready; last lines of its
  // output: ...", DeadlineExceeded "not ready within ...".
  virtual absl::StatusOr<BootTimings> BootAndSnapshot(const BootPlan& plan,
                                                      const ProgressFn& progress) = 0;
};

struct BakerOptions {
  StoreAccess with_store;       // required
  std::string state_dir;        // required, absolute: <state>/bake/{deltas,tmp}, layer cache
  std::string snapshots_dir;    // default for requests naming none ("" = <state_dir>/snapshots)
  std::string kernel_path;      // vmlinux / bzImage (required)
  std::string agent_path;       // static guest agent (required)
  std::string worker_path;      // supermachine-worker (required)
  bool worker_balloon = true;  // bake workers get --balloon (docs/balloon.md)
  uint64_t console_max_bytes = uint64_t{8} << 20;  // bake workers' --serial-max-bytes
  // Bake workers run jailed (worker_booter.h): the daemon sets it as for restored workers.
  bool worker_jail = false;
  // Image pipeline. "" image_cache_dir = <state_dir>/images (blobs + refs).
  std::string image_cache_dir;
  std::vector<std::string> insecure_registries;
  std::string docker_config_path;
  std::string layer_cache_dir;  // "" = <state_dir>/layers
  std::string mke2fs_path = "mke2fs";  // formats volume images (e2fsprogs); PATH lookup
  std::function<int64_t()> now_ms;  // nullptr = wall clock
  // Seams; nullptr = the real ones.
  std::shared_ptr<ImageFetcher> fetcher;
  std::shared_ptr<VmBooter> booter;
  // The host's processes, for the startup sweep of bake workers a daemon crash orphaned
  // (orphan_sweep.h); nullptr = /proc.
  vm::ProcessTable* procs = nullptr;
};

// What Create found of a previous daemon's crash (logged by the daemon at startup).
struct BakeRecovery {
  size_t interrupted_bakes = 0;                // 'running' rows marked failed
  std::vector<OrphanBakeWorker> killed_workers;  // their workers, still running, killed
  std::vector<std::string> problems;             // one line each
};

class Baker {
 public:
  // Checks kernel/agent/worker exist (FailedPrecondition naming the missing one), creates the
  // state dirs, marks interrupted bakes failed and removes every leftover temp dir.
  // Also kills the workers of those interrupted bakes that outlived the crash (their argv
  // names the bake's temp dir; other daemons' bake workers are left alone): see recovery().
  static absl::StatusOr<std::unique_ptr<Baker>> Create(BakerOptions options);
  ~Baker();

  const BakeRecovery& recovery() const;

  // Runs the pipeline. `progress` may be null; it is called on the calling thread.
  // Errors carry the codes of their cause: InvalidArgument (request), NotFound (image),
  // PermissionDenied/Unauthenticated (auth), FailedPrecondition (workload exited early,
  // missing artifact), DeadlineExceeded, ResourceExhausted (disk full).
  absl::StatusOr<BakeResult> Bake(const BakeRequest& request, const ProgressFn& progress,
                                  absl::Time deadline = absl::InfiniteFuture());

  // Removes unreferenced layers, deltas no snapshot uses and failed bakes' leftovers (gc.h) in
  // this Baker's state and snapshots dirs, plus the snapshots dirs of the store's snapshots.
  // Waits until no bake of this Baker runs and holds new ones off meanwhile.
  absl::StatusOr<GcReport> Gc(bool dry_run);

 private:
  struct Impl;
  explicit Baker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace supermachine::bake
