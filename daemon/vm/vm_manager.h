// File: vm_manager.h
// VmManager: every VM the daemon hands out. Acquire takes a VM from the snapshot's Pool (made
// on first use, or at startup for configured pools), starts its port forwarders and keeps it
// by id; Release destroys it (never back to the pool) and journals `released`; a monitor
// thread notices handed-out VMs whose worker died and journals `worker crash`, after which
// calls naming that VM get NotFound saying so. VMs acquired with a restart policy or a health
// check are supervised (supervisor.h, docs/supervision.md): a thread per such VM waits for the
// workload's exit through the agent, a supervise thread runs the checks and restarts (a fresh
// restore with the same name, ports, labels and egress policy, under a new id). Handed-out VMs
// idle for a while have their balloon inflated (idle_balloon.h, docs/balloon.md "Daemon
// policy"); exec and new forwarded connections deflate it first.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/vm/idle_balloon.h"
#include "daemon/vm/named_volumes.h"
#include "daemon/vm/pool.h"
#include "daemon/vm/port_forwarder.h"
#include "daemon/vm/supervisor.h"
#include "daemon/vm/vm_instance.h"

namespace supermachine::vm {

struct PortSpec {
  std::string host_address;  // "" = 127.0.0.1
  uint16_t host_port = 0;    // 0 = ephemeral
  uint32_t guest_port = 0;
};

struct AcquireOptions {
  std::string snapshot;  // snapshot name, or an image ref when a baker is configured
  bool no_bake = false;
  std::string name;
  std::string labels_json = "{}";
  std::vector<PortSpec> ports;
  absl::Time deadline = absl::InfiniteFuture();  // infinite: the pool's acquire_timeout
  // Egress policy override in canonical form (net::ToString; the API validates it); "" = the
  // snapshot's own. Part of the pool key: a VM restored with one policy is never handed out
  // for another.
  std::string egress_policy;
  // Supervision (supervisor.h); the defaults leave the VM unsupervised.
  RestartPolicy restart;
  HealthCheck health;
  // Named volumes bound to the snapshot's volume slots (named_volumes.h). A VM with any skips
  // the pool: it is a fresh restore with those files (a pooled VM was restored with private
  // copies). Kept across supervised restarts.
  std::vector<VolumeBinding> volumes;
};

// A handed-out VM as callers see it. `vm` stays valid while held, even after Release (its
// worker is then gone and agent calls fail Unavailable).
struct VmView {
  std::string id;
  std::string name;
  std::string snapshot;
  std::shared_ptr<VmInstance> vm;
  std::vector<PortSpec> ports;  // host_port filled in
  bool pool_hit = false;
  absl::Time acquired;
  std::string egress_policy;  // the Acquire's override ("" = the snapshot's own)
  std::string labels_json = "{}";
  // Supervision: policy, restarts so far, last exit (restarted VMs), health state.
  RestartPolicy restart;
  uint32_t restarts = 0;
  std::optional<ExitReport> last_exit;
  HealthState health = HealthState::kNone;
  bool restarting = false;  // the workload stopped; a restart is scheduled
  std::vector<VolumeBinding> volumes;  // named volumes it holds
};

struct NamedPoolStats {
  std::string snapshot;
  PoolStats stats;
  std::string egress_policy;  // the pool's override ("" = the snapshot's own policy)
};

struct VmManagerOptions {
  VmLauncher* launcher = nullptr;  // not owned
  VmJournal* journal = nullptr;    // not owned
  // Snapshot name → its directory; NotFound for an unknown name.
  std::function<absl::StatusOr<std::string>(const std::string& name)> resolve_snapshot;
  // Image ref → snapshot name, baking if needed (null: no bake pipeline in this build).
  std::function<absl::StatusOr<std::string>(const std::string& image, absl::Time deadline)> bake;
  std::map<std::string, PoolConfig> pools;  // configured pools, started by StartPools
  PoolConfig default_pool;                  // for snapshots without a configured pool
  // Observers (metrics); optional.
  std::function<void(const std::string& snapshot, bool pool_hit, absl::Duration)> on_acquire;
  std::function<void()> on_worker_crash;
  // A supervised VM was restarted (new_id) or its restart failed (the error).
  std::function<void(const std::string& old_id, const absl::StatusOr<std::string>& new_id)>
      on_restart;
  // A supervised VM's health state changed; `check`: how the check that changed it ended.
  std::function<void(const std::string& id, HealthState state, const std::string& check)>
      on_health;
  absl::Duration monitor_interval = absl::Milliseconds(200);
  // How often the supervisor looks for due restarts and health checks.
  absl::Duration supervise_interval = absl::Milliseconds(100);
  // A restart's restore (and its pool wait) is bounded by this.
  absl::Duration restart_timeout = absl::Minutes(2);
  absl::Duration stop_grace = absl::Seconds(2);
  // On destruction (the daemon's clean stop), handed-out VMs are left running, their journal
  // rows untouched, for the next start to re-adopt (keep_vms_on_stop, docs/operations.md);
  // pooled VMs are stopped either way. False: every VM is stopped and journaled released.
  bool keep_handed_out_on_stop = false;
  // Named volumes; null: Acquire with volumes fails (FailedPrecondition).
  NamedVolumes* volumes = nullptr;
  // The idle-VM balloon policy (idle_balloon.h); off by default here (main turns it on from
  // the config). Its thread looks for idle VMs every balloon_interval.
  IdleBalloonConfig idle_balloon;
  absl::Duration balloon_interval = absl::Seconds(1);
  std::function<void(const IdleBalloonEvent&)> on_balloon;  // optional observer
};

class VmManager {
 public:
  explicit VmManager(VmManagerOptions options);
  // Releases every VM (journal: released), or with keep_handed_out_on_stop leaves the live
  // handed-out ones running, and stops the pools.
  ~VmManager();
  VmManager(const VmManager&) = delete;
  VmManager& operator=(const VmManager&) = delete;

  // Creates the configured pools (they fill in the background). Unknown snapshots are
  // reported, not fatal: they can be baked later.
  absl::Status StartPools();

  absl::StatusOr<VmView> Acquire(const AcquireOptions& options);
  // NotFound for an unknown id (or one that already ended, saying how).
  absl::Status Release(const std::string& id_or_name);
  // Takes in a VM re-adopted after a daemon restart (reconcile.h) as handed out, with the name
  // and port forwards its journal row recorded (rebound to the same host ports). InvalidArgument
  // for unreadable ports_json; a forward that cannot be rebound (port taken meanwhile) is left
  // out and named in the returned warnings.
  absl::StatusOr<std::vector<std::string>> Adopt(std::unique_ptr<VmInstance> vm,
                                                 const store::VmRecord& row);
  absl::StatusOr<VmView> Get(const std::string& id_or_name) const;
  // What became of VM `id` once Get no longer finds it: the id of the VM a supervised restart
  // replaced it with, "" when it ended for good (or is unknown), Unavailable while a restart of
  // it is under way (ask again). `smctl logs -f` follows a supervised VM across restarts so.
  absl::StatusOr<std::string> Successor(const std::string& id) const;
  // VM ids and names of handed-out VMs.
  std::vector<VmView> List() const;
  std::vector<NamedPoolStats> PoolStatistics() const;
  size_t Running() const;
  // Activity in VM `id` (an exec) for as long as the scope lives: its balloon is deflated
  // first if the idle policy inflated it, and it is not idle meanwhile. Unknown ids and a
  // policy that is off give a scope that does nothing.
  [[nodiscard]] IdleBalloon::Activity BeginActivity(const std::string& id);
  // Handed-out VMs whose balloon the idle policy holds inflated now.
  size_t BalloonsInflated() const;

 private:
  class ExitWatcher;
  struct Active {
    VmView view;
    Pool* pool = nullptr;  // null: adopted VM of a snapshot that is gone
    bool counted = true;   // holds a slot of `pool` (false once a restart gave it back)
    bool dead = false;     // worker died or stopped; its supervisor decides what follows
    bool ended = false;    // its row is journaled ended (kept while a restart is retried)
    bool watch_exit = false;  // supervised with a restart policy: wants a watcher
    std::vector<std::unique_ptr<PortForwarder>> forwarders;
    // Waits for the workload's exit (supervised VMs with a restart policy). Declared last:
    // destroyed first, after the VM was stopped, which ends its wait. Never copied (shared
    // only because ExitWatcher is defined in the .cc).
    std::shared_ptr<ExitWatcher> watcher;
  };
  // The snapshot's configured pool settings, else the default pool's.
  const PoolConfig& PoolConfigOf(const std::string& snapshot) const;
  // One pool per (snapshot, egress override): pooled VMs equal fresh ones.
  absl::StatusOr<Pool*> PoolFor(const std::string& snapshot, const std::string& dir,
                                const std::string& egress_policy = "");
  absl::StatusOr<std::unique_ptr<PortForwarder>> StartForwarder(VmInstance& vm,
                                                               const PortSpec& port);
  // A fresh restore outside any pool with `bindings` attached to the new VM (passed on from
  // `replacing`, a restarted VM's previous id). On error nothing new stays attached.
  absl::StatusOr<std::unique_ptr<VmInstance>> LaunchWithVolumes(
      const std::string& snapshot, const std::string& dir, const std::string& egress_policy,
      const std::vector<VolumeBinding>& bindings, const std::string& replacing,
      absl::Time deadline);
  // Frees the named volumes of a VM that ended for good.
  void DetachVolumes(const VmView& view);
  void MonitorLoop();
  void SuperviseLoop();
  void BalloonLoop();
  // IdleBalloon hooks: a control command to a handed-out VM's worker; a snapshot's guest RAM.
  absl::StatusOr<std::string> BalloonCommand(const std::string& id, const std::string& command);
  std::optional<uint64_t> GuestRamMib(const std::string& snapshot) const;
  void End(const std::string& id, const VmEnd& end);
  // Whether the destructor leaves `a` running for the next start (keep_handed_out_on_stop and
  // its worker still live).
  bool KeptThroughStop(const Active& a) const {
    return options_.keep_handed_out_on_stop && !a.dead && !a.ended;
  }
  // Starts supervising a handed-out VM (no-op for an empty spec).
  void Supervise(Active& active, const SuperviseSpec& spec, absl::Time started);
  // Supervisor hooks (supervisor.h).
  absl::StatusOr<std::string> Restart(const std::string& id, const SuperviseSpec& next);
  void GiveUp(const std::string& id, const ExitReport& exit);
  absl::StatusOr<agent::ExitInfo> RunCheck(const std::string& id, const HealthCheck& check);
  void FillSupervision(VmView& view) const;
  // Caller holds mu_. Finds by id, then by name.
  std::map<std::string, Active>::iterator FindLocked(const std::string& id_or_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status GoneLocked(const std::string& id_or_name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  VmManagerOptions options_;
  mutable absl::Mutex mu_;
  absl::CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Keyed by (snapshot, egress override).
  using PoolKey = std::pair<std::string, std::string>;
  std::map<PoolKey, std::unique_ptr<Pool>> pools_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Active> active_ ABSL_GUARDED_BY(mu_);
  // Why recently ended VMs ended, for the message a late caller gets (bounded).
  std::map<std::string, std::string> ended_ ABSL_GUARDED_BY(mu_);
  // Restarted VMs' successors (old id -> new id, bounded like ended_), and the ids a restart
  // is replacing right now (out of active_, successor not known yet).
  std::map<std::string, std::string> successors_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> restarting_ ABSL_GUARDED_BY(mu_);
  std::thread monitor_;
  Supervisor supervisor_;
  std::thread supervise_;
  IdleBalloon balloon_;
  std::thread balloon_thread_;  // only when options_.idle_balloon is enabled
};

}  // namespace supermachine::vm
