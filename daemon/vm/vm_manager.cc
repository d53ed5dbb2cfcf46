// File: vm_manager.cc
#include "daemon/vm/vm_manager.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/agent/agent_client.h"
#include "daemon/vm/identity.h"
#include "daemon/vm/ports_json.h"
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

}  // namespace

VmManager::VmManager(VmManagerOptions options) : options_(std::move(options)) {
  monitor_ = std::thread([this] { MonitorLoop(); });
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
  {
    absl::MutexLock lock(&mu_);
    active.swap(active_);
    pools.swap(pools_);
  }
  for (auto& [id, a] : active) {
    a.forwarders.clear();
    a.view.vm->Stop(options_.stop_grace);
    options_.journal->End(id, VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
  }
  pools.clear();  // each pool stops its ready VMs
}

absl::StatusOr<Pool*> VmManager::PoolFor(const std::string& snapshot, const std::string& dir,
                                         const std::string& egress_policy) {
  absl::MutexLock lock(&mu_);
  const PoolKey key{snapshot, egress_policy};
  auto it = pools_.find(key);
  if (it != pools_.end()) {
    return it->second.get();
  }
  auto cfg = options_.pools.find(snapshot);
  PoolConfig config = cfg != options_.pools.end() ? cfg->second : options_.default_pool;
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
  SM_ASSIGN_OR_RETURN(Pool * pool, PoolFor(snapshot, *dir, options.egress_policy));
  SM_ASSIGN_OR_RETURN(Acquired got, pool->Acquire(options.deadline));
  std::shared_ptr<VmInstance> vm = std::move(got.vm);

  Active active{.view = {.id = vm->id(),
                         .name = options.name,
                         .snapshot = snapshot,
                         .vm = vm,
                         .pool_hit = got.pool_hit,
                         .acquired = absl::Now(),
                         .egress_policy = options.egress_policy},
                .pool = pool};
  for (const PortSpec& p : options.ports) {
    absl::StatusOr<std::unique_ptr<PortForwarder>> fwd = StartForwarder(*vm, p);
    if (!fwd.ok()) {
      // The VM was never handed out: destroy it rather than leak it.
      active.forwarders.clear();
      vm->Stop(options_.stop_grace);
      pool->Done();
      options_.journal->End(vm->id(), VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
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
          .egress_policy = options.egress_policy});
      !st.ok()) {
    active.forwarders.clear();
    vm->Stop(options_.stop_grace);
    pool->Done();
    options_.journal->End(vm->id(), VmEnd{.cause = store::EndCause::kReleased}).IgnoreError();
    return base::Annotate(st, "record the acquired VM in the store");
  }
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

absl::StatusOr<std::unique_ptr<PortForwarder>> VmManager::StartForwarder(VmInstance& vm,
                                                                       const PortSpec& port) {
  const agent::AgentClient* agent = vm.agent();
  const uint32_t guest_port = port.guest_port;
  return PortForwarder::Start(
      port.host_address, port.host_port,
      [agent, guest_port](absl::Time deadline) -> absl::StatusOr<base::UniqueFd> {
        if (agent == nullptr) {
          return absl::UnavailableError("no agent");
        }
        return agent->Connect(guest_port, deadline);
      });
}

absl::StatusOr<std::vector<std::string>> VmManager::Adopt(std::unique_ptr<VmInstance> instance,
                                                          const store::VmRecord& row) {
  SM_ASSIGN_OR_RETURN(std::vector<PortSpec> ports, PortsFromJson(row.ports_json));
  std::vector<std::string> warnings;
  // The VM counts against its pool's max like any handed-out VM (Release frees the slot).
  Pool* pool = nullptr;
  if (absl::StatusOr<std::string> dir = options_.resolve_snapshot(row.snapshot_name); dir.ok()) {
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
                         .egress_policy = row.egress_policy},
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
  active.forwarders.clear();
  active.view.vm->Stop(options_.stop_grace);
  if (active.pool != nullptr) {
    active.pool->Done();
  }
  End(active.view.id, VmEnd{.cause = store::EndCause::kReleased});
  return absl::OkStatus();
}

absl::StatusOr<VmView> VmManager::Get(const std::string& id_or_name) const {
  absl::MutexLock lock(&mu_);
  auto it = const_cast<VmManager*>(this)->FindLocked(id_or_name);
  if (it == active_.end()) {
    return GoneLocked(id_or_name);
  }
  return it->second.view;
}

std::vector<VmView> VmManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<VmView> out;
  for (const auto& [id, a] : active_) {
    out.push_back(a.view);
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
    for (auto it = active_.begin(); it != active_.end();) {
      if (std::optional<VmEnd> end = it->second.view.vm->CheckExited()) {
        dead.emplace_back(std::move(it->second), *end);
        it = active_.erase(it);
      } else {
        ++it;
      }
    }
    if (dead.empty()) {
      continue;
    }
    mu_.Unlock();
    for (auto& [active, end] : dead) {
      active.forwarders.clear();
      if (active.pool != nullptr) {
        active.pool->Done();
      }
      End(active.view.id, end);
      if (options_.on_worker_crash) {
        options_.on_worker_crash();
      }
    }
    mu_.Lock();
  }
}

}  // namespace supermachine::vm
