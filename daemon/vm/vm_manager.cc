// File: vm_manager.cc
#include "daemon/vm/vm_manager.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/agent/agent_client.h"
#include "daemon/bake/metadata.h"
#include "daemon/vm/identity.h"
#include "daemon/vm/ports_json.h"
#include "daemon/vm/worker_control.h"
#include "worker/base/status_macros.h"

namespace supermachine::vm {
namespace {

// Ended VMs remembered for error messages; older ones fall back to a plain NotFound.
constexpr size_t kEndedMemory = 1024;
// VM ids are 12 hex digits (as short container ids): they name the per-VM directory, and the
// vsock socket path inside it must stay within sun_path's 108 bytes.
constexpr size_t kVmIdLength = 12;

const char* CauseText(const VmEnd& end) {
  switch (end.cause) {
    case store::EndCause::kReleased:
      return "it was released";
    case store::EndCause::kWorkerCrash:
      return "its worker process died (see the VM's worker.log)";
    default:
      return store::EndCauseName(end.cause);
  }
}

// One WaitExit call of an exit watcher: long, so an idle VM costs one parked connection, and
// bounded, so a watcher notices its stop flag even if a connection never breaks.
constexpr absl::Duration kWaitExitSlice = absl::Seconds(5);
// After an agent error (worker stopping, agent not answering) the next try comes this late.
constexpr absl::Duration kWaitExitRetry = absl::Seconds(1);
// Bounds a health check's RunCommand beyond the check's own guest-side timeout (a wedged
// agent connection).
constexpr absl::Duration kCheckGrace = absl::Seconds(5);
// A health check's output is not kept; only a little is read.
constexpr size_t kCheckOutputBytes = 4096;
// A balloon-target exchange is one line each way; a worker that takes longer is wedged, and
// an exec waiting on its deflate should not wait with it.
constexpr absl::Duration kBalloonCommandTimeout = absl::Seconds(2);

// The store's end cause for a supervised VM's run that the supervisor ends (restart or give-up).
VmEnd EndOf(const ExitReport& exit) {
  VmEnd end{.cause = store::EndCause::kWorkerCrash, .exit_code = exit.exit_code,
            .signal = exit.signal};
  if (exit.cause == "exited") {
    end.cause = store::EndCause::kExited;
  } else if (exit.cause == "killed" || exit.cause == "unhealthy") {
    // An unhealthy VM's workload is stopped by us: the row says killed, the next run's
    // last exit says "unhealthy".
    end.cause = store::EndCause::kKilled;
  } else if (exit.cause == store::EndCauseName(store::EndCause::kGuestOom)) {
    end.cause = store::EndCause::kGuestOom;
  }
  return end;
}

ExitReport ReportOf(const VmEnd& end, absl::Time at) {
  return ExitReport{.cause = store::EndCauseName(end.cause),
                    .exit_code = end.exit_code,
                    .signal = end.signal,
                    .at = at};
}

}  // namespace

// Waits in its own thread for the workload of one VM to exit (the agent's WaitExit) and
// reports it once. Destroyed after the VM was stopped, which ends a pending wait at once.
class VmManager::ExitWatcher {
 public:
  ExitWatcher(std::shared_ptr<VmInstance> vm, std::function<void(const ExitReport&)> report)
      : thread_([this, vm = std::move(vm), report = std::move(report)] { Run(*vm, report); }) {}
  ~ExitWatcher() {
    stop_ = true;
    thread_.join();
  }
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

 private:
  void Run(const VmInstance& vm, const std::function<void(const ExitReport&)>& report) {
    const agent::AgentClient* agent = vm.agent();
    if (agent == nullptr) {
      return;  // tests' fakes: deaths come through CheckExited only
    }
    while (!stop_) {
      absl::StatusOr<agent::WorkloadExitInfo> e = agent->WaitExit(absl::Now() + kWaitExitSlice);
      if (e.ok()) {
        report(FromWorkloadExit(e->status, absl::Now()));
        return;
      }
      if (absl::IsDeadlineExceeded(e.status())) {
        continue;
      }
      // The worker is going away (the monitor sees its death) or the agent is not answering
      // yet: try again a little later.
      for (absl::Time until = absl::Now() + kWaitExitRetry; !stop_ && absl::Now() < until;) {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

VmManager::VmManager(VmManagerOptions options)
    : options_(std::move(options)),
      supervisor_(SupervisorHooks{
          .now = [] { return absl::Now(); },
          .restart = [this](const std::string& id, const SuperviseSpec& next) {
            return Restart(id, next);
          },
          .give_up = [this](const std::string& id, const ExitReport& exit) { GiveUp(id, exit); },
          .run_check = [this](const std::string& id, const HealthCheck& check) {
            return RunCheck(id, check);
          },
          .on_health = options_.on_health,
          .on_restart = options_.on_restart,
      }),
      balloon_(options_.idle_balloon,
               IdleBalloonHooks{
                   .now = [] { return absl::Now(); },
                   .send = [this](const std::string& id, const std::string& command) {
                     return BalloonCommand(id, command);
                   },
                   .guest_ram_mib = [this](const std::string& snapshot) {
                     return GuestRamMib(snapshot);
                   },
                   .on_event = options_.on_balloon,
               }) {
  monitor_ = std::thread([this] { MonitorLoop(); });
  supervise_ = std::thread([this] { SuperviseLoop(); });
  if (options_.idle_balloon.enabled()) {
    balloon_thread_ = std::thread([this] { BalloonLoop(); });
  }
}

VmManager::~VmManager() {
  std::map<std::string, Active> active;
  std::map<PoolKey, std::unique_ptr<Pool>> pools;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  monitor_.join();
  supervise_.join();
  if (balloon_thread_.joinable()) {
    balloon_thread_.join();
  }
  // VMs left running are deflated first if the idle policy inflated them: the next daemon
  // takes every re-adopted VM as deflated. (Touch sends through active_, so before the swap;
  // a no-op for a VM that is not inflated or with the policy off.)
  std::vector<std::string> kept;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, a] : active_) {
      if (KeptThroughStop(a)) {
        kept.push_back(id);
      }
    }
  }
  for (const std::string& id : kept) {
    balloon_.Touch(id);
  }
  {
    absl::MutexLock lock(&mu_);
    active.swap(active_);
    pools.swap(pools_);
  }
  for (auto& [id, a] : active) {
    a.forwarders.clear();
    if (KeptThroughStop(a)) {
      // As after a crash: the row stays running with its name, ports and labels, and the next
      // start re-adopts the worker (reconcile.h). The watcher goes first: it uses the agent.
      a.watcher.reset();
      a.view.vm->Detach();
      continue;
    }
    a.view.vm->Stop(options_.stop_grace);
    a.watcher.reset();
    if (!a.ended) {
      options_.journal->End(id, VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
    }
    DetachVolumes(a.view);
  }
  pools.clear();  // each pool stops its ready VMs
}

const PoolConfig& VmManager::PoolConfigOf(const std::string& snapshot) const {
  auto cfg = options_.pools.find(snapshot);
  return cfg != options_.pools.end() ? cfg->second : options_.default_pool;
}

absl::StatusOr<Pool*> VmManager::PoolFor(const std::string& snapshot, const std::string& dir,
                                         const std::string& egress_policy) {
  absl::MutexLock lock(&mu_);
  const PoolKey key{snapshot, egress_policy};
  auto it = pools_.find(key);
  if (it != pools_.end()) {
    return it->second.get();
  }
  PoolConfig config = PoolConfigOf(snapshot);
  if (!egress_policy.empty()) {
    // A policy override restores on demand: keeping warm VMs for every policy a caller once
    // named would multiply the configured pool.
    config.min = 0;
  }
  VmLauncher* launcher = options_.launcher;
  VmJournal* journal = options_.journal;
  auto pool = std::make_unique<Pool>(
      snapshot, config,
      [launcher, snapshot, dir, egress_policy](absl::Time deadline)
          -> absl::StatusOr<std::unique_ptr<VmInstance>> {
        SM_ASSIGN_OR_RETURN(std::string id, RandomHexId());
        id.resize(kVmIdLength);
        return launcher->Launch(LaunchRequest{.vm_id = id,
                                              .snapshot_name = snapshot,
                                              .snapshot_dir = dir,
                                              .egress_policy = egress_policy},
                                deadline);
      },
      [journal](const std::string& id, const VmEnd& end) {
        journal->End(id, end).IgnoreError();
      });
  Pool* out = pool.get();
  pools_.emplace(key, std::move(pool));
  return out;
}

absl::Status VmManager::StartPools() {
  absl::Status first_error;
  for (const auto& [name, config] : options_.pools) {
    absl::StatusOr<std::string> dir = options_.resolve_snapshot(name);
    if (!dir.ok()) {
      first_error.Update(base::Annotate(dir.status(), absl::StrCat("pool '", name, "'")));
      continue;
    }
    first_error.Update(PoolFor(name, *dir).status());
  }
  return first_error;
}

absl::StatusOr<VmView> VmManager::Acquire(const AcquireOptions& options) {
  const absl::Time start = absl::Now();
  if (options.snapshot.empty()) {
    return absl::InvalidArgumentError("a snapshot name or image ref is required");
  }
  for (const PortSpec& p : options.ports) {
    if (p.guest_port == 0 || p.guest_port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("guest port ", p.guest_port, " is not a TCP port (1-65535)"));
    }
  }
  SM_RETURN_IF_ERROR(ValidateHealthCheck(options.health));
  std::string snapshot = options.snapshot;
  absl::StatusOr<std::string> dir = options_.resolve_snapshot(snapshot);
  if (absl::IsNotFound(dir.status()) && !options.no_bake && options_.bake) {
    SM_ASSIGN_OR_RETURN(snapshot, options_.bake(options.snapshot, options.deadline));
    dir = options_.resolve_snapshot(snapshot);
  }
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) {
      return absl::NotFoundError(absl::StrCat(
          "snapshot '", options.snapshot, "' not found",
          options_.bake ? "" : " (this daemon cannot bake on acquire)",
          "; list snapshots with `smctl images` or bake one with `smctl bake IMAGE`"));
    }
    return dir.status();
  }
  Pool* pool = nullptr;
  Acquired got;
  if (options.volumes.empty()) {
    SM_ASSIGN_OR_RETURN(pool, PoolFor(snapshot, *dir, options.egress_policy));
    SM_ASSIGN_OR_RETURN(got, pool->Acquire(options.deadline));
  } else {
    // Named volumes: a fresh restore with their files; pooled VMs hold private copies.
    const absl::Time deadline = options.deadline == absl::InfiniteFuture()
                                    ? absl::Now() + PoolConfigOf(snapshot).acquire_timeout
                                    : options.deadline;
    SM_ASSIGN_OR_RETURN(got.vm, LaunchWithVolumes(snapshot, *dir, options.egress_policy,
                                                  options.volumes, "", deadline));
  }
  std::shared_ptr<VmInstance> vm = std::move(got.vm);

  Active active{.view = {.id = vm->id(),
                         .name = options.name,
                         .snapshot = snapshot,
                         .vm = vm,
                         .pool_hit = got.pool_hit,
                         .acquired = absl::Now(),
                         .egress_policy = options.egress_policy,
                         .labels_json = options.labels_json,
                         .volumes = options.volumes},
                .pool = pool};
  for (const PortSpec& p : options.ports) {
    absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = StartForwarder(*vm, p);
    if (!fwd.ok()) {
      // The VM was never handed out: destroy it rather than leak it.
      active.forwarders.clear();
      vm->Stop(options_.stop_grace);
      if (pool != nullptr) {
        pool->Done();
      }
      options_.journal->End(vm->id(), VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
      DetachVolumes(active.view);
      return fwd.status();
    }
    active.view.ports.push_back(PortSpec{.host_address = (*fwd)->address(),
                                         .host_port = (*fwd)->port(),
                                         .guest_port = p.guest_port});
    active.forwarders.push_back(std::move(*fwd));
  }
  // The hand-out is journaled before the caller learns of the VM: a daemon restart re-adopts
  // exactly the VMs some caller may hold, with their names and ports (reconcile.h).
  if (absl::Status st = options_.journal->Acquired(store::VmRecord{
          .id = vm->id(),
          .name = options.name,
          .ports_json = PortsToJson(active.view.ports),
          .labels_json = options.labels_json,
          .egress_policy = options.egress_policy,
          .restart_policy = ToString(options.restart),
          .health_json = HealthCheckToJson(options.health)});
      !st.ok()) {
    active.forwarders.clear();
    vm->Stop(options_.stop_grace);
    if (pool != nullptr) {
      pool->Done();
    }
    options_.journal->End(vm->id(), VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
    DetachVolumes(active.view);
    return base::Annotate(st, "record the acquired VM in the store");
  }
  Supervise(active, SuperviseSpec{.policy = options.restart, .health = options.health},
            active.view.acquired);
  VmView view = active.view;
  {
    absl::MutexLock lock(&mu_);
    active_.emplace(view.id, std::move(active));
  }
  if (options_.on_acquire) {
    options_.on_acquire(snapshot, view.pool_hit, absl::Now() - start);
  }
  return view;
}

absl::StatusOr<std::unique_ptr<VmInstance>> VmManager::LaunchWithVolumes(
    const std::string& snapshot, const std::string& dir, const std::string& egress_policy,
    const std::vector<VolumeBinding>& bindings, const std::string& replacing,
    absl::Time deadline) {
  if (options_.volumes == nullptr) {
    return absl::FailedPreconditionError("this daemon has no named volumes configured");
  }
  SM_ASSIGN_OR_RETURN(std::string id, RandomHexId());
  id.resize(kVmIdLength);
  SM_ASSIGN_OR_RETURN(auto files,
                      options_.volumes->Attach(id, bindings, snapshot, dir, replacing));
  absl::StatusOr<std::unique_ptr<VmInstance>> vm =
      options_.launcher->Launch(LaunchRequest{.vm_id = id,
                                              .snapshot_name = snapshot,
                                              .snapshot_dir = dir,
                                              .egress_policy = egress_policy,
                                              .volume_files = std::move(files)},
                                deadline);
  if (!vm.ok()) {
    if (replacing.empty()) {
      options_.volumes->Detach(id).IgnoreError();
    } else {
      // Back to the run they came from, which a later restart attempt replaces again.
      options_.volumes->Attach(replacing, bindings, snapshot, dir, id).IgnoreError();
    }
  }
  return vm;
}

void VmManager::DetachVolumes(const VmView& view) {
  if (!view.volumes.empty() && options_.volumes != nullptr) {
    options_.volumes->Detach(view.id).IgnoreError();
  }
}

absl::StatusOr<std::unique_ptr<PortForwarder>> VmManager::StartForwarder(VmInstance& vm,
                                                                       const PortSpec& port) {
  const agent::AgentClient* agent = vm.agent();
  const uint32_t guest_port = port.guest_port;
  return PortForwarder::Start(
      port.host_address, port.host_port,
      [this, agent, guest_port, id = vm.id()](absl::Time deadline)
          -> absl::StatusOr<base::UniqueFd> {
        if (agent == nullptr) {
          return absl::UnavailableError("no agent");
        }
        // A new connection is activity: an idle-inflated balloon is deflated first (on the
        // forwarder's connect thread, which may block).
        balloon_.Touch(id);
        return agent->Connect(guest_port, deadline);
      });
}

absl::StatusOr<std::vector<std::string>> VmManager::Adopt(std::unique_ptr<VmInstance> instance,
                                                          const store::VmRecord& row) {
  SM_ASSIGN_OR_RETURN(std::vector<PortSpec> ports, PortsFromJson(row.ports_json));
  std::vector<std::string> warnings;
  // Named volumes it held before the daemon restart stay with it (and skip the pool).
  std::vector<VolumeBinding> volumes;
  if (options_.volumes != nullptr) {
    absl::StatusOr<std::vector<VolumeBinding>> held = options_.volumes->HeldBy(row.id);
    if (held.ok()) {
      volumes = *held;
    } else {
      warnings.push_back(absl::StrCat("named volumes unknown: ", held.status().message()));
    }
  }
  // The VM counts against its pool's max like any handed-out VM (Release frees the slot).
  Pool* pool = nullptr;
  if (!volumes.empty()) {
    // Restored outside the pools; counts against none.
  } else if (absl::StatusOr<std::string> dir = options_.resolve_snapshot(row.snapshot_name);
             dir.ok()) {
    SM_ASSIGN_OR_RETURN(pool, PoolFor(row.snapshot_name, *dir, row.egress_policy));
    pool->Adopted();
  } else {
    warnings.push_back(absl::StrCat("snapshot '", row.snapshot_name, "': ", dir.status().message(),
                                    " (the VM counts against no pool)"));
  }
  std::shared_ptr<VmInstance> vm = std::move(instance);
  Active active{.view = {.id = row.id,
                         .name = row.name,
                         .snapshot = row.snapshot_name,
                         .vm = vm,
                         .pool_hit = false,
                         .acquired = absl::FromUnixMillis(row.acquired_ms.value_or(row.created_ms)),
                         .egress_policy = row.egress_policy,
                         .labels_json = row.labels_json,
                         .volumes = volumes},
                .pool = pool};
  for (const PortSpec& p : ports) {
    // The same host port as before the restart: clients of the forward keep their address.
    absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = StartForwarder(*vm, p);
    if (!fwd.ok()) {
      warnings.push_back(absl::StrCat("port forward ", p.host_address, ":", p.host_port,
                                      " -> guest ", p.guest_port, " not restored: ",
                                      fwd.status().message()));
      continue;
    }
    active.view.ports.push_back(p);
    active.forwarders.push_back(std::move(*fwd));
  }
  // Supervised as before the daemon restart, with the restarts counted so far.
  SuperviseSpec spec{.restarts = static_cast<uint32_t>(row.restart_count)};
  absl::StatusOr<RestartPolicy> policy = ParseRestartPolicy(row.restart_policy);
  absl::StatusOr<HealthCheck> health = HealthCheckFromJson(row.health_json);
  if (policy.ok() && health.ok()) {
    spec.policy = *policy;
    spec.health = *health;
  } else {
    warnings.push_back(absl::StrCat(
        "supervision not restored: ",
        (policy.ok() ? health.status() : policy.status()).message()));
  }
  if (row.last_exit_cause) {
    spec.last_exit = ExitReport{.cause = *row.last_exit_cause,
                                .exit_code = row.last_exit_code,
                                .signal = row.last_exit_signal,
                                .at = absl::FromUnixMillis(row.last_exit_ms.value_or(0))};
  }
  Supervise(active, spec, absl::Now());
  absl::MutexLock lock(&mu_);
  active_.emplace(row.id, std::move(active));
  return warnings;
}

std::map<std::string, VmManager::Active>::iterator VmManager::FindLocked(
    const std::string& id_or_name) {
  auto it = active_.find(id_or_name);
  if (it != active_.end()) {
    return it;
  }
  for (it = active_.begin(); it != active_.end(); ++it) {
    if (!it->second.view.name.empty() && it->second.view.name == id_or_name) {
      return it;
    }
  }
  return active_.end();
}

absl::Status VmManager::GoneLocked(const std::string& id_or_name) const {
  auto e = ended_.find(id_or_name);
  if (e != ended_.end()) {
    return absl::NotFoundError(absl::StrCat("VM ", id_or_name, " has ended: ", e->second));
  }
  return absl::NotFoundError(
      absl::StrCat("no running VM '", id_or_name, "' (list them with `smctl ps`)"));
}

void VmManager::End(const std::string& id, const VmEnd& end) {
  options_.journal->End(id, end).IgnoreError();
  absl::MutexLock lock(&mu_);
  if (ended_.size() >= kEndedMemory) {
    ended_.erase(ended_.begin());
  }
  ended_[id] = CauseText(end);
}

absl::Status VmManager::Release(const std::string& id_or_name) {
  Active active;
  {
    absl::MutexLock lock(&mu_);
    auto it = FindLocked(id_or_name);
    if (it == active_.end()) {
      return GoneLocked(id_or_name);
    }
    active = std::move(it->second);
    active_.erase(it);
  }
  supervisor_.Forget(active.view.id);
  active.forwarders.clear();
  active.view.vm->Stop(options_.stop_grace);
  active.watcher.reset();
  if (active.pool != nullptr && active.counted) {
    active.pool->Done();
  }
  if (!active.ended) {
    End(active.view.id, VmEnd{.cause = store::EndCause::kReleased});
  }
  DetachVolumes(active.view);
  return absl::OkStatus();
}

absl::StatusOr<VmView> VmManager::Get(const std::string& id_or_name) const {
  absl::MutexLock lock(&mu_);
  auto it = const_cast<VmManager*>(this)->FindLocked(id_or_name);
  if (it == active_.end()) {
    return GoneLocked(id_or_name);
  }
  VmView view = it->second.view;
  FillSupervision(view);
  return view;
}

absl::StatusOr<std::string> VmManager::Successor(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  if (restarting_.count(id) != 0) {
    return absl::UnavailableError(absl::StrCat("VM ", id, " is being restarted"));
  }
  auto it = successors_.find(id);
  return it == successors_.end() ? std::string() : it->second;
}

std::vector<VmView> VmManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<VmView> out;
  for (const auto& [id, a] : active_) {
    out.push_back(a.view);
    FillSupervision(out.back());
  }
  return out;
}

std::vector<NamedPoolStats> VmManager::PoolStatistics() const {
  absl::MutexLock lock(&mu_);
  std::vector<NamedPoolStats> out;
  for (const auto& [key, pool] : pools_) {
    out.push_back({.snapshot = key.first, .stats = pool->Stats(), .egress_policy = key.second});
  }
  return out;
}

size_t VmManager::Running() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

void VmManager::MonitorLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    stop_cv_.WaitWithTimeout(&mu_, options_.monitor_interval);
    std::vector<std::pair<Active, VmEnd>> dead;
    int supervised_deaths = 0;
    for (auto it = active_.begin(); it != active_.end();) {
      if (it->second.dead) {
        ++it;  // its supervisor restarts or ends it
        continue;
      }
      std::optional<VmEnd> end = it->second.view.vm->CheckExited();
      if (end && supervisor_.Restarts(it->first)) {
        // The restart policy decides: the VM stays listed until its restart replaces it.
        it->second.dead = true;
        supervisor_.ReportExit(it->first, ReportOf(*end, absl::Now()));
        ++supervised_deaths;
        ++it;
      } else if (end) {
        supervisor_.Forget(it->first);
        dead.emplace_back(std::move(it->second), *end);
        it = active_.erase(it);
      } else {
        ++it;
      }
    }
    if (dead.empty() && supervised_deaths == 0) {
      continue;
    }
    mu_.Unlock();
    for (int i = 0; i < supervised_deaths; ++i) {
      if (options_.on_worker_crash) {
        options_.on_worker_crash();
      }
    }
    for (auto& [active, end] : dead) {
      active.forwarders.clear();
      active.watcher.reset();
      if (active.pool != nullptr && active.counted) {
        active.pool->Done();
      }
      End(active.view.id, end);
      DetachVolumes(active.view);
      if (options_.on_worker_crash) {
        options_.on_worker_crash();
      }
    }
    mu_.Lock();
  }
}

void VmManager::Supervise(Active& active, const SuperviseSpec& spec, absl::Time started) {
  active.view.restart = spec.policy;
  active.view.restarts = spec.restarts;
  active.view.last_exit = spec.last_exit;
  if (spec.empty()) {
    return;
  }
  supervisor_.Watch(active.view.id, spec, started);
  active.watch_exit = spec.policy.kind != RestartPolicy::Kind::kNo;
}

void VmManager::FillSupervision(VmView& view) const {
  std::optional<SupervisionStatus> st = supervisor_.Get(view.id);
  if (!st) {
    return;
  }
  view.restart = st->spec.policy;
  view.restarts = st->spec.restarts;
  view.last_exit = st->spec.last_exit;
  view.health = st->health;
  view.restarting = st->restarting;
}

void VmManager::SuperviseLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    stop_cv_.WaitWithTimeout(&mu_, options_.supervise_interval);
    if (stopping_) {
      break;
    }
    mu_.Unlock();
    supervisor_.Tick();
    mu_.Lock();
    // Watchers start here, after the Tick that handed out their VM's id: a workload that
    // exits at once is then reported under an id the supervisor already knows.
    for (auto& [id, a] : active_) {
      if (a.watch_exit && a.watcher == nullptr && !a.dead) {
        a.watcher = std::make_shared<ExitWatcher>(
            a.view.vm, [this, id = id](const ExitReport& exit) {
              supervisor_.ReportExit(id, exit);
            });
      }
    }
  }
}

absl::StatusOr<std::string> VmManager::Restart(const std::string& id, const SuperviseSpec& next) {
  Active old;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      return absl::NotFoundError(absl::StrCat("VM ", id, " is gone"));
    }
    old = std::move(it->second);
    active_.erase(it);
    restarting_.insert(id);
  }
  auto put_back = [&](absl::Status st) {
    // Listed (and releasable) until a later attempt replaces it or the policy gives up.
    absl::MutexLock lock(&mu_);
    restarting_.erase(id);
    active_.emplace(id, std::move(old));
    return st;
  };
  // The old run ends first: its host ports are the new run's, its pool slot the new VM's.
  old.forwarders.clear();
  old.view.vm->Stop(options_.stop_grace);
  old.watcher.reset();
  old.dead = true;
  if (old.pool != nullptr && old.counted) {
    old.pool->Done();
    old.counted = false;
  }
  if (!old.ended) {
    End(id, EndOf(next.last_exit.value_or(ExitReport{.cause = "worker_crash"})));
    old.ended = true;
  }
  absl::StatusOr<Acquired> got;
  if (!old.view.volumes.empty()) {
    // Its named volumes pass to the new run: a fresh restore outside the pools.
    absl::StatusOr<std::string> dir = options_.resolve_snapshot(old.view.snapshot);
    if (!dir.ok()) {
      return put_back(dir.status());
    }
    absl::StatusOr<std::unique_ptr<VmInstance>> launched =
        LaunchWithVolumes(old.view.snapshot, *dir, old.view.egress_policy, old.view.volumes, id,
                          absl::Now() + options_.restart_timeout);
    if (!launched.ok()) {
      return put_back(launched.status());
    }
    got = Acquired{.vm = std::move(*launched)};
  } else {
    if (old.pool == nullptr) {
      absl::StatusOr<std::string> dir = options_.resolve_snapshot(old.view.snapshot);
      if (!dir.ok()) {
        return put_back(dir.status());
      }
      absl::StatusOr<Pool*> pool = PoolFor(old.view.snapshot, *dir, old.view.egress_policy);
      if (!pool.ok()) {
        return put_back(pool.status());
      }
      old.pool = *pool;
    }
    got = old.pool->Acquire(absl::Now() + options_.restart_timeout);
    if (!got.ok()) {
      return put_back(got.status());
    }
  }
  std::shared_ptr<VmInstance> vm = std::move(got->vm);
  Active fresh{.view = old.view, .pool = old.pool};
  fresh.view.id = vm->id();
  fresh.view.vm = vm;
  fresh.view.pool_hit = got->pool_hit;
  fresh.view.acquired = absl::Now();
  fresh.view.ports.clear();
  fresh.view.restart = next.policy;
  fresh.view.restarts = next.restarts;
  fresh.view.last_exit = next.last_exit;
  for (const PortSpec& p : old.view.ports) {
    // The same host port: clients of the forward keep their address across restarts. One
    // that cannot be bound again (taken meanwhile) is left out; the VM still runs.
    absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = StartForwarder(*vm, p);
    if (fwd.ok()) {
      fresh.view.ports.push_back(p);
      fresh.forwarders.push_back(std::move(*fwd));
    }
  }
  store::VmRecord row{.id = fresh.view.id,
                      .name = fresh.view.name,
                      .ports_json = PortsToJson(fresh.view.ports),
                      .labels_json = fresh.view.labels_json,
                      .egress_policy = fresh.view.egress_policy,
                      .restart_policy = ToString(next.policy),
                      .health_json = HealthCheckToJson(next.health),
                      .restart_count = next.restarts};
  if (next.last_exit) {
    row.last_exit_cause = next.last_exit->cause;
    row.last_exit_code = next.last_exit->exit_code;
    row.last_exit_signal = next.last_exit->signal;
    row.last_exit_ms = absl::ToUnixMillis(next.last_exit->at);
  }
  if (absl::Status st = options_.journal->Acquired(row); !st.ok()) {
    fresh.forwarders.clear();
    vm->Stop(options_.stop_grace);
    if (fresh.pool != nullptr) {
      fresh.pool->Done();
    }
    options_.journal->End(vm->id(), VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
    DetachVolumes(fresh.view);
    return put_back(base::Annotate(st, "record the restarted VM in the store"));
  }
  fresh.watch_exit = next.policy.kind != RestartPolicy::Kind::kNo;
  const std::string new_id = fresh.view.id;
  absl::MutexLock lock(&mu_);
  active_.emplace(new_id, std::move(fresh));
  restarting_.erase(id);
  if (successors_.size() >= kEndedMemory) {
    successors_.erase(successors_.begin());
  }
  successors_[id] = new_id;
  if (ended_.size() >= kEndedMemory) {
    ended_.erase(ended_.begin());
  }
  ended_[id] = absl::StrCat("its workload stopped (", next.last_exit ? next.last_exit->ToString()
                                                                    : "worker_crash",
                            ") and it was restarted as ", new_id,
                            old.view.name.empty() ? "" : absl::StrCat(" (name ", old.view.name, ")"));
  return new_id;
}

void VmManager::GiveUp(const std::string& id, const ExitReport& exit) {
  Active active;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      return;
    }
    active = std::move(it->second);
    active_.erase(it);
  }
  active.forwarders.clear();
  active.view.vm->Stop(options_.stop_grace);
  active.watcher.reset();
  if (active.pool != nullptr && active.counted) {
    active.pool->Done();
  }
  if (!active.ended) {
    End(id, EndOf(exit));
  }
  DetachVolumes(active.view);
}

absl::StatusOr<agent::ExitInfo> VmManager::RunCheck(const std::string& id,
                                                    const HealthCheck& check) {
  std::shared_ptr<VmInstance> vm;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      return absl::NotFoundError(absl::StrCat("VM ", id, " is gone"));
    }
    vm = it->second.view.vm;
  }
  const agent::AgentClient* agent = vm->agent();
  if (agent == nullptr) {
    return absl::UnavailableError("the VM has no agent");
  }
  SM_ASSIGN_OR_RETURN(agent::CommandResult r,
                      agent->RunCommand(agent::ExecOptions{.argv = check.argv,
                                                           .timeout = check.timeout},
                                        "", absl::Now() + check.timeout + kCheckGrace,
                                        agent::RunLimits{.max_output_bytes = kCheckOutputBytes}));
  return r.exit;
}

IdleBalloon::Activity VmManager::BeginActivity(const std::string& id) {
  return balloon_.Begin(id);
}

size_t VmManager::BalloonsInflated() const { return balloon_.InflatedCount(); }

void VmManager::BalloonLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    stop_cv_.WaitWithTimeout(&mu_, options_.balloon_interval);
    if (stopping_) {
      break;
    }
    std::vector<IdleVm> handed_out;
    for (const auto& [id, a] : active_) {
      if (!a.dead) {
        handed_out.push_back(IdleVm{.id = id, .snapshot = a.view.snapshot});
      }
    }
    // Tick talks to workers: never with mu_ held.
    mu_.Unlock();
    balloon_.Tick(handed_out);
    mu_.Lock();
  }
}

absl::StatusOr<std::string> VmManager::BalloonCommand(const std::string& id,
                                                      const std::string& command) {
  std::string socket;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it == active_.end()) {
      return absl::NotFoundError(absl::StrCat("VM ", id, " is gone"));
    }
    socket = it->second.view.vm->control_socket();
  }
  return WorkerControl(socket, command, absl::Now() + kBalloonCommandTimeout);
}

std::optional<uint64_t> VmManager::GuestRamMib(const std::string& snapshot) const {
  if (!options_.resolve_snapshot) {
    return std::nullopt;
  }
  absl::StatusOr<std::string> dir = options_.resolve_snapshot(snapshot);
  if (!dir.ok()) {
    return std::nullopt;
  }
  // The bake's metadata.json records the RAM the guest was booted (and so restored) with.
  absl::StatusOr<bake::SnapshotMetadata> md = bake::ReadMetadata(*dir);
  if (!md.ok() || md->memory_mib == 0) {
    return std::nullopt;
  }
  return md->memory_mib;
}

}  // namespace supermachine::vm
