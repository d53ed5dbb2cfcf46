// File: baker.cc
// The pipeline of baker.h. The order of checks is chosen so that the cheap path touches only
// files already hashed (artifact fingerprints are cached by inode/size/mtime) and one store
// query; everything that can fail for a user reason (request, image, workload) fails before
// anything under the snapshot's name changes.
#include "daemon/bake/baker.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/bake/delta.h"
#include "daemon/bake/gc.h"
#include "daemon/bake/image_fetcher.h"
#include "daemon/bake/keys.h"
#include "daemon/bake/launch_spec.h"
#include "daemon/bake/snapshot_name.h"
#include "daemon/bake/volume_image.h"
#include "daemon/bake/worker_booter.h"
#include "nlohmann/json.hpp"
#include "worker/base/status_macros.h"

namespace supermachine::bake {
namespace {

constexpr char kTempPrefix[] = ".tmp-bake-";
constexpr char kOldPrefix[] = ".old-bake-";

uint64_t MsSince(absl::Time t0) {
  return static_cast<uint64_t>(absl::ToInt64Milliseconds(absl::Now() - t0));
}

absl::Status MkdirP(const std::string& path) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = path.find('/', pos + 1);
    const std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return base::ErrnoToStatus(errno, "mkdir " + part);
    }
  }
  return absl::OkStatus();
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

void RemoveTree(const std::string& path) {
  ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

// Bytes the dir's files occupy on disk (the memory file is sparse).
int64_t DiskUsage(const std::string& dir) {
  int64_t total = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return 0;
  }
  while (const dirent* e = ::readdir(d)) {
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<int64_t>(st.st_blocks) * 512;
    }
  }
  ::closedir(d);
  return total;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return base::ErrnoToStatus(errno, "open " + dir);
  }
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : base::ErrnoToStatus(errno, "fsync " + dir);
}

std::string TimingsJson(const BakeTimings& t) {
  nlohmann::ordered_json j = {{"resolve_ms", t.resolve_ms}, {"pull_ms", t.pull_ms},
                              {"convert_ms", t.convert_ms}, {"delta_ms", t.delta_ms},
                              {"boot_ms", t.boot_ms},       {"ready_ms", t.ready_ms},
                              {"snapshot_ms", t.snapshot_ms}, {"total_ms", t.total_ms}};
  return j.dump();
}

std::string RequestJson(const BakeRequest& r) {
  nlohmann::ordered_json j;
  j["image"] = r.image;
  j["name"] = r.name;
  j["guest_port"] = r.guest_port;
  j["memory_mib"] = r.memory_mib;
  j["vcpus"] = r.vcpus;
  j["pull_policy"] = static_cast<int>(r.pull_policy);
  j["snapshots_dir"] = r.snapshots_dir;
  if (r.cmd) {
    j["cmd"] = *r.cmd;
  }
  if (r.entrypoint) {
    j["entrypoint"] = *r.entrypoint;
  }
  if (r.workdir) {
    j["workdir"] = *r.workdir;
  }
  if (r.user) {
    j["user"] = *r.user;
  }
  j["env"] = r.env;
  j["hostname"] = r.hostname;
  std::vector<std::string> files, volumes;
  for (const ExtraFile& f : r.extra_files) {
    files.push_back(ToString(f));
  }
  for (const Volume& v : r.volumes) {
    volumes.push_back(ToString(v));
  }
  j["extra_files"] = files;
  j["volumes"] = volumes;
  j["restart"] = ToString(r.restart);
  j["readiness"] = ToString(EffectiveReadiness(r));
  j["egress"] = ToString(r.egress);
  return j.dump();
}

// Fingerprints of kernel/agent/worker, re-hashed only when the file changes (a 20 MB kernel
// takes longer to hash than the cheap path's whole budget).
class ArtifactCache {
 public:
  absl::StatusOr<FileFingerprint> Get(const std::string& what, const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " '", path, "' is missing (", strerror(errno), "); ",
          what == "kernel" ? "build it with kernel/build.sh" : "reinstall supermachine"));
    }
    const Stamp stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    {
      absl::MutexLock lock(&mu_);
      auto it = cache_.find(path);
      if (it != cache_.end() && it->second.first == stamp) {
        return it->second.second;
      }
    }
    absl::StatusOr<FileFingerprint> fp = FingerprintFile(path);
    if (!fp.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": ", fp.status().message()));
    }
    absl::MutexLock lock(&mu_);
    cache_[path] = {stamp, *fp};
    return *fp;
  }

 private:
  struct Stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    time_t sec;
    long nsec;
    bool operator==(const Stamp&) const = default;
  };
  absl::Mutex mu_;
  std::map<std::string, std::pair<Stamp, FileFingerprint>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

namespace {

struct NameWait {
  const std::set<std::string>* busy;
  const std::string* dir;
};
bool NameFree(NameWait* w) { return w->busy->count(*w->dir) == 0; }

// Holds one snapshot dir for a bake (Baker::Impl::LockName); releases it when destroyed.
class NameLock {
 public:
  using Release = std::function<void()>;
  explicit NameLock(Release release) : release_(std::move(release)) {}
  NameLock(NameLock&& other) noexcept : release_(std::exchange(other.release_, nullptr)) {}
  NameLock& operator=(NameLock&&) = delete;
  NameLock(const NameLock&) = delete;
  ~NameLock() {
    if (release_) {
      release_();
    }
  }

 private:
  Release release_;
};

}  // namespace

StoreAccess LockedStoreAccess(store::Store* store, absl::Mutex* mu) {
  return [store, mu](const StoreFn& fn) {
    absl::MutexLock lock(mu);
    return fn(*store);
  };
}

const char* StageName(BakeProgress::Stage stage) {
  switch (stage) {
    case BakeProgress::Stage::kResolve: return "resolve";
    case BakeProgress::Stage::kPull: return "pull";
    case BakeProgress::Stage::kConvert: return "convert";
    case BakeProgress::Stage::kDelta: return "delta";
    case BakeProgress::Stage::kBoot: return "boot";
    case BakeProgress::Stage::kReady: return "ready";
    case BakeProgress::Stage::kSnapshot: return "snapshot";
    case BakeProgress::Stage::kDone: return "done";
  }
  return "?";
}

struct Baker::Impl {
  BakerOptions options;
  std::string deltas_dir;
  ArtifactCache artifacts;
  std::atomic<uint64_t> counter{0};
  BakeRecovery recovery;  // set once by Create
  // Bake() holds it shared for its whole run, Gc() exclusively: a collection never sees a bake's
  // delta or layers before its snapshot row refers to them.
  absl::Mutex gc_mu;
  // Snapshot dirs (<snapshots>/<name>) with a bake in progress.
  absl::Mutex names_mu;
  std::set<std::string> busy_names ABSL_GUARDED_BY(names_mu);

  // Waits until no other bake holds `final_dir`, then holds it until the NameLock goes.
  absl::StatusOr<NameLock> LockName(const std::string& final_dir, const std::string& name,
                                    absl::Time deadline, const ProgressFn& progress) {
    absl::MutexLock lock(&names_mu);
    NameWait wait{.busy = &busy_names, .dir = &final_dir};
    if (!NameFree(&wait)) {
      if (progress) {
        progress({.stage = BakeProgress::Stage::kResolve,
                  .message = "waiting for another bake of snapshot '" + name + "' to finish"});
      }
      if (!names_mu.AwaitWithDeadline(absl::Condition(&NameFree, &wait), deadline)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "another bake of snapshot '", name, "' (", final_dir,
            ") was still running when this bake's deadline passed; retry when it has finished"));
      }
    }
    busy_names.insert(final_dir);
    return NameLock([this, final_dir] { UnlockName(final_dir); });
  }
  void UnlockName(const std::string& final_dir) {
    absl::MutexLock lock(&names_mu);
    busy_names.erase(final_dir);
  }

  int64_t NowMs() const {
    return options.now_ms ? options.now_ms() : absl::ToUnixMillis(absl::Now());
  }

  absl::StatusOr<Artifacts> ArtifactDigests() {
    Artifacts a;
    SM_ASSIGN_OR_RETURN(FileFingerprint k, artifacts.Get("kernel", options.kernel_path));
    SM_ASSIGN_OR_RETURN(FileFingerprint g, artifacts.Get("guest agent", options.agent_path));
    SM_ASSIGN_OR_RETURN(FileFingerprint w, artifacts.Get("worker", options.worker_path));
    a.kernel = k.digest;
    a.agent = g.digest;
    a.worker = w.digest;
    return a;
  }

  // The snapshot `name` in the store if it was made under `key` (column: cheap or bake key)
  // in `want_dir`, and that dir still holds a readable metadata.json.
  std::optional<SnapshotMetadata> Lookup(const std::string& name, const std::string& want_dir,
                                         const std::string& key, bool cheap, std::string* dir) {
    store::SnapshotRecord rec;
    absl::Status st = options.with_store([&](store::Store& s) -> absl::Status {
      SM_ASSIGN_OR_RETURN(rec, s.GetSnapshot(name));
      return absl::OkStatus();
    });
    // The keys leave the snapshots dir out: a hit must also be in the dir asked for.
    if (!st.ok() || rec.path != want_dir || (cheap ? rec.cheap_key : rec.bake_key) != key) {
      return std::nullopt;
    }
    absl::StatusOr<SnapshotMetadata> md = ReadMetadata(rec.path);
    if (!md.ok()) {
      return std::nullopt;
    }
    *dir = rec.path;
    return *md;
  }

  absl::StatusOr<BakeResult> Run(const BakeRequest& request, const ProgressFn& progress,
                                 absl::Time deadline, int64_t bake_id, const std::string& name,
                                 const std::string& snapshots_dir, const std::string& temp_dir);
};

Baker::Baker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Baker::~Baker() = default;

absl::StatusOr<std::unique_ptr<Baker>> Baker::Create(BakerOptions options) {
  if (!options.with_store) {
    return absl::InvalidArgumentError("Baker: no store access");
  }
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("Baker: state dir '", options.state_dir, "' must be an absolute path"));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  BakerOptions& o = impl->options;
  SM_RETURN_IF_ERROR(impl->ArtifactDigests().status());
  if (o.snapshots_dir.empty()) {
    o.snapshots_dir = o.state_dir + "/snapshots";
  }
  if (o.image_cache_dir.empty()) {
    o.image_cache_dir = o.state_dir + "/images";
  }
  if (o.layer_cache_dir.empty()) {
    o.layer_cache_dir = o.state_dir + "/layers";
  }
  impl->deltas_dir = o.state_dir + "/bake/deltas";
  for (const std::string& d : {o.snapshots_dir, o.image_cache_dir, o.layer_cache_dir,
                               impl->deltas_dir}) {
    SM_RETURN_IF_ERROR(MkdirP(d));
  }
  if (!o.fetcher) {
    SM_ASSIGN_OR_RETURN(o.fetcher, MakeImageFetcher({.image_cache_dir = o.image_cache_dir,
                                                     .layer_cache_dir = o.layer_cache_dir,
                                                     .insecure_registries = o.insecure_registries,
                                                     .docker_config_path = o.docker_config_path}));
  }
  if (!o.booter) {
    o.booter =
        MakeWorkerBooter(o.worker_path, o.kernel_path, o.worker_balloon, o.console_max_bytes,
                         o.worker_jail);
  }
  // A crash mid-bake left 'running' rows and their temp dirs: mark them failed, remove the dirs.
  std::vector<store::BakeRecord> interrupted;
  SM_RETURN_IF_ERROR(o.with_store([&](store::Store& s) -> absl::Status {
    SM_ASSIGN_OR_RETURN(interrupted, s.RecoverInterruptedBakes());
    return absl::OkStatus();
  }));
  // Their workers run in their own session and outlived the crash: kill them before their dirs
  // go. Only the temp dirs of this store's rows are matched, so another daemon's bakes are safe.
  std::vector<std::string> interrupted_dirs;
  for (const store::BakeRecord& b : interrupted) {
    if (absl::StrContains(b.temp_dir, kTempPrefix)) {
      interrupted_dirs.push_back(b.temp_dir);
    }
  }
  vm::ProcFs proc_fs;
  vm::ProcessTable* procs = o.procs != nullptr ? o.procs : &proc_fs;
  OrphanSweepReport swept = KillOrphanBakeWorkers(
      *procs, FindOrphanBakeWorkers(*procs, interrupted_dirs), absl::Seconds(10));
  impl->recovery = {.interrupted_bakes = interrupted.size(),
                    .killed_workers = std::move(swept.killed),
                    .problems = std::move(swept.problems)};
  for (const std::string& dir : interrupted_dirs) {
    RemoveTree(dir);
  }
  // Leftovers in the default snapshots dir whose row is gone (or a rename-aside never undone).
  if (DIR* d = ::opendir(o.snapshots_dir.c_str())) {
    std::vector<std::string> stale;
    while (const dirent* e = ::readdir(d)) {
      if (absl::StartsWith(e->d_name, kTempPrefix) || absl::StartsWith(e->d_name, kOldPrefix)) {
        stale.push_back(o.snapshots_dir + "/" + e->d_name);
      }
    }
    ::closedir(d);
    for (const std::string& s : stale) {
      RemoveTree(s);
    }
  }
  return std::unique_ptr<Baker>(new Baker(std::move(impl)));
}

const BakeRecovery& Baker::recovery() const { return impl_->recovery; }

absl::StatusOr<BakeResult> Baker::Bake(const BakeRequest& request_in, const ProgressFn& progress,
                                       absl::Time deadline) {
  Impl& impl = *impl_;
  BakeRequest request = request_in;
  // Fill in the defaults once, so keys, metadata and the store see the effective values.
  const std::string name = request.name.empty() ? DefaultSnapshotName(request.image) : request.name;
  request.name = name;
  if (request.hostname.empty()) {
    request.hostname = kDefaultHostname;
  }

  absl::Status valid = CheckSnapshotName(name);
  if (valid.ok()) {
    valid = Validate(request, RealFsChecks());
  }
  absl::StatusOr<std::string> snapshots_dir =
      ResolveSnapshotsDir(request, impl.options.state_dir, impl.options.snapshots_dir);
  if (valid.ok() && !snapshots_dir.ok()) {
    valid = snapshots_dir.status();
  }
  if (valid.ok() && snapshots_dir.ok()) {
    valid = MkdirP(*snapshots_dir);
  }
  const std::string temp_dir =
      snapshots_dir.ok()
          ? absl::StrCat(*snapshots_dir, "/", kTempPrefix, ::getpid(), "-", impl.NowMs(), "-",
                         impl.counter.fetch_add(1))
          : "";

  // One bake per snapshot at a time: a second bake of the same name (and dir) waits for the
  // first, then usually hits its cache. Gc waits for every bake (gc_mu, shared here).
  absl::ReaderMutexLock gc_lock(&impl.gc_mu);
  std::optional<NameLock> name_lock;
  if (valid.ok()) {
    absl::StatusOr<NameLock> locked =
        impl.LockName(*snapshots_dir + "/" + name, name, deadline, progress);
    if (locked.ok()) {
      name_lock.emplace(std::move(*locked));
    } else {
      valid = locked.status();
    }
  }

  int64_t bake_id = 0;
  SM_RETURN_IF_ERROR(impl.options.with_store([&](store::Store& s) -> absl::Status {
    SM_ASSIGN_OR_RETURN(bake_id, s.BeginBake("", RequestJson(request), temp_dir));
    return absl::OkStatus();
  }));

  absl::StatusOr<BakeResult> result =
      valid.ok() ? impl.Run(request, progress, deadline, bake_id, name, *snapshots_dir, temp_dir)
                 : absl::StatusOr<BakeResult>(valid);
  if (!temp_dir.empty()) {
    RemoveTree(temp_dir);  // renamed away on success; whatever is left is a failure's
  }
  if (!result.ok()) {
    impl.options
        .with_store([&](store::Store& s) {
          return s.FinishBake(bake_id, false, std::string(result.status().message()), "");
        })
        .IgnoreError();
    return result;
  }
  result->bake_id = bake_id;
  SM_RETURN_IF_ERROR(impl.options.with_store([&](store::Store& s) {
    return s.FinishBake(bake_id, true, "", TimingsJson(result->metadata.timings));
  }));
  if (progress) {
    progress({.stage = BakeProgress::Stage::kDone,
              .message = absl::StrCat(result->cache_hit ? "cache hit (" + result->hit_kind + ")"
                                                        : "baked",
                                      ": ", result->snapshot_dir)});
  }
  return result;
}

absl::StatusOr<GcReport> Baker::Gc(bool dry_run) {
  Impl& impl = *impl_;
  absl::WriterMutexLock lock(&impl.gc_mu);
  return CollectGarbage({.snapshots_dirs = {impl.options.snapshots_dir},
                         .deltas_dir = impl.deltas_dir,
                         .layer_cache_dir = impl.options.layer_cache_dir},
                        impl.options.with_store, dry_run);
}

absl::StatusOr<BakeResult> Baker::Impl::Run(const BakeRequest& request, const ProgressFn& progress,
                                            absl::Time deadline, int64_t bake_id,
                                            const std::string& name,
                                            const std::string& snapshots_dir,
                                            const std::string& temp_dir) {
  const absl::Time t_start = absl::Now();
  auto report = [&](BakeProgress::Stage stage, std::string message) {
    if (progress) {
      progress({.stage = stage, .message = std::move(message)});
    }
  };
  const std::string final_dir = snapshots_dir + "/" + name;
  BakeResult result{.snapshot_name = name, .snapshot_dir = final_dir};

  // 1. Cheap key.
  SM_ASSIGN_OR_RETURN(Artifacts artifacts, ArtifactDigests());
  SM_ASSIGN_OR_RETURN(std::vector<FileFingerprint> extra_fps, FingerprintExtraFiles(request));
  const std::string cached_digest = options.fetcher->CachedDigest(request.image);
  SM_ASSIGN_OR_RETURN(image::Digest cheap_key,
                      CheapKey(request, {.artifacts = artifacts, .extra_files = extra_fps,
                                         .cached_image_digest = cached_digest}));
  // pull_policy always asks the registry for its current answer; an unknown digest could name
  // anything (docs/bake.md "Using the cheap key").
  if (request.pull_policy != image::PullPolicy::kAlways && !cached_digest.empty()) {
    std::string dir;
    if (auto md = Lookup(name, final_dir, cheap_key.ToString(), /*cheap=*/true, &dir)) {
      result.cache_hit = true;
      result.hit_kind = "cheap";
      result.snapshot_dir = dir;
      result.metadata = *md;
      return result;
    }
  }

  // 2. Resolve + pull + convert.
  report(BakeProgress::Stage::kResolve, "resolving " + request.image);
  SM_ASSIGN_OR_RETURN(ResolvedLayers layers, options.fetcher->Fetch(request, progress));
  BakeTimings timings{.resolve_ms = layers.resolve_ms, .pull_ms = layers.pull_ms,
                      .convert_ms = layers.convert_ms};
  SM_ASSIGN_OR_RETURN(image::Digest image_digest, image::Digest::Parse(layers.image_digest));
  std::vector<image::Digest> layer_digests;
  for (const std::string& d : layers.layer_digests) {
    SM_ASSIGN_OR_RETURN(image::Digest parsed, image::Digest::Parse(d));
    layer_digests.push_back(parsed);
  }

  // 3. Delta.
  const absl::Time t_delta = absl::Now();
  SM_ASSIGN_OR_RETURN(LaunchSpec launch, ResolveLaunchSpec(layers.config, request));
  const std::vector<DeltaFile> delta_files = DeltaFiles(request, extra_fps);
  // Parked: the agent holds the workload (and its volumes) until the first restore.
  const bool park = EffectiveReadiness(request).mode == Readiness::Mode::kParked;
  const image::Digest delta_key =
      DeltaKey({.agent = artifacts.agent, .launch = launch, .files = delta_files,
                .volumes = request.volumes, .park = park});
  DeltaContent content{.agent_path = options.agent_path, .launch = launch,
                       .layer_count = layers.sqfs_paths.size(), .volumes = request.volumes,
                       .park = park};
  for (size_t i = 0; i < request.extra_files.size(); ++i) {
    content.files.push_back({.host_path = request.extra_files[i].host_path,
                             .guest_path = request.extra_files[i].guest_path,
                             .mode = extra_fps[i].mode});
  }
  report(BakeProgress::Stage::kDelta, "delta layer " + delta_key.ToString());
  SM_ASSIGN_OR_RETURN(DeltaBuild delta, GetOrBuildDelta(content, delta_key, deltas_dir));
  timings.delta_ms = MsSince(t_delta);

  // 4. Full key.
  const Readiness readiness = EffectiveReadiness(request);
  const image::Digest bake_key =
      BakeKey({.layers = layer_digests, .delta_key = delta_key, .artifacts = artifacts,
               .memory_mib = request.memory_mib, .vcpus = request.vcpus, .readiness = readiness,
               .guest_port = request.guest_port});
  SM_RETURN_IF_ERROR(options.with_store([&](store::Store& s) {
    return s.SetBakeKeys(bake_id, cheap_key.ToString(), delta_key.ToString(), bake_key.ToString());
  }));
  {
    std::string dir;
    if (auto md = Lookup(name, final_dir, bake_key.ToString(), /*cheap=*/false, &dir)) {
      // Re-key so the next identical request is a cheap hit.
      options.with_store([&](store::Store& s) {
        return s.SetSnapshotCheapKey(name, cheap_key.ToString());
      }).IgnoreError();
      result.cache_hit = true;
      result.hit_kind = "full";
      result.snapshot_dir = dir;
      result.metadata = *md;
      return result;
    }
  }

  // 5. Boot, readiness, snapshot — into the temp dir.
  if (::mkdir(temp_dir.c_str(), 0755) != 0) {
    return base::ErrnoToStatus(errno, "bake: mkdir " + temp_dir);
  }
  // Volumes: empty ext4 images in the snapshot's volumes/ (renamed into place with it).
  std::vector<std::string> volume_images;
  for (const Volume& v : request.volumes) {
    report(BakeProgress::Stage::kDelta, "volume " + ToString(v));
    SM_ASSIGN_OR_RETURN(std::string image,
                        CreateVolumeImage(v, temp_dir, {.mke2fs = options.mke2fs_path,
                                                        .owner = VolumeOwnerFor(launch.user)}));
    volume_images.push_back(std::move(image));
  }
  BootPlan plan{.layer_sqfs = layers.sqfs_paths, .delta_sqfs = delta.path,
                .volume_images = volume_images, .out_dir = temp_dir,
                .work_dir = temp_dir, .memory_mib = request.memory_mib, .vcpus = request.vcpus,
                .guest_port = request.guest_port, .readiness = readiness, .deadline = deadline};
  SM_ASSIGN_OR_RETURN(BootTimings boot, options.booter->BootAndSnapshot(plan, progress));
  timings.boot_ms = boot.boot_ms;
  timings.ready_ms = boot.ready_ms;
  timings.snapshot_ms = boot.snapshot_ms;

  // 6. metadata.json, then the rename into place.
  SnapshotMetadata& md = result.metadata;
  md.name = name;
  md.image = request.image;
  md.image_digest = image_digest;
  md.layers = layer_digests;
  md.cheap_key = cheap_key;
  md.delta_key = delta_key;
  md.bake_key = bake_key;
  md.kernel_version = options.kernel_path;
  md.kernel_digest = artifacts.kernel;
  md.agent_version = boot.agent_version;
  md.agent_digest = artifacts.agent;
  md.memory_mib = request.memory_mib;
  md.vcpus = request.vcpus;
  md.guest_port = request.guest_port;
  md.launch = launch;
  md.extra_files = delta_files;
  md.volumes = request.volumes;
  md.health = request.health;
  md.readiness = readiness;
  md.egress = request.egress;
  md.baked_at_unix_ms = NowMs();
  timings.total_ms = MsSince(t_start);
  md.timings = timings;
  SM_RETURN_IF_ERROR(WriteMetadata(temp_dir, md));

  // Replace an older snapshot of this name: aside, in, delete. A crash in between leaves the
  // old one under .old-bake-* (removed at the next start) and no half-written one by name.
  const std::string aside = absl::StrCat(snapshots_dir, "/", kOldPrefix, ::getpid(), "-",
                                         counter.fetch_add(1));
  const bool had_old = IsDir(final_dir);
  if (had_old && ::rename(final_dir.c_str(), aside.c_str()) != 0) {
    return base::ErrnoToStatus(errno, "bake: move the old snapshot aside: rename " + final_dir);
  }
  if (::rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
    absl::Status st = base::ErrnoToStatus(errno, "bake: rename into " + final_dir);
    if (had_old) {
      ::rename(aside.c_str(), final_dir.c_str());
    }
    return st;
  }
  FsyncDir(snapshots_dir).IgnoreError();
  if (had_old) {
    RemoveTree(aside);
  }

  // 7. Store rows.
  store::SnapshotRecord rec{.name = name, .bake_id = bake_id, .bake_key = bake_key.ToString(),
                            .path = final_dir, .created_ms = md.baked_at_unix_ms,
                            .size_bytes = DiskUsage(final_dir),
                            .metadata_json = SerializeMetadata(md),
                            .layer_digests = layers.layer_digests,
                            .cheap_key = cheap_key.ToString()};
  SM_RETURN_IF_ERROR(options.with_store([&](store::Store& s) -> absl::Status {
    for (size_t i = 0; i < layers.layer_digests.size(); ++i) {
      SM_RETURN_IF_ERROR(s.PutLayer({.digest = layers.layer_digests[i],
                                     .sqfs_path = layers.sqfs_paths[i],
                                     .size_bytes = static_cast<int64_t>(
                                         i < layers.sqfs_sizes.size() ? layers.sqfs_sizes[i] : 0)}));
    }
    return s.PutSnapshot(rec);
  }));
  result.hit_kind = "none";
  return result;
}

}  // namespace supermachine::bake
