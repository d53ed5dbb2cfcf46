// File: supervisor.h
// Supervisor: the restart policy and health checks of handed-out VMs (docs/supervision.md).
// It is pure decision logic over injected hooks — a clock, "restart this VM", "end this VM",
// "run this check" — so its tests drive it tick by tick with no threads, no KVM, no agent.
// VmManager owns one and feeds it: workload exits (the agent's WaitExit) and worker deaths
// come in through ReportExit; a supervise thread calls Tick, which runs the health checks that
// are due and the restarts and give-ups decided since the last tick. Hooks are never called
// with the supervisor's lock held and never from ReportExit (its callers may hold the VM the
// hook would destroy), only from Tick.
//
// Restart backoff: 100 ms before the first restart, doubling per consecutive failure up to
// 30 s; the streak resets when a VM had been up for 10 s before it exited (as Docker).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/agent/types.h"
#include "daemon/bake/specs.h"

namespace supermachine::vm {

inline constexpr absl::Duration kRestartBackoffFirst = absl::Milliseconds(100);
inline constexpr absl::Duration kRestartBackoffMax = absl::Seconds(30);
inline constexpr absl::Duration kRestartBackoffReset = absl::Seconds(10);

// The restart policy is the bake request's (daemon/bake/specs.h): one grammar and one parser
// for `smctl bake --restart`, `smctl run --restart`, metadata.json and the store's
// restart_policy column. "" or "no", "on-failure", "on-failure:N" (1 <= N <= 1000000),
// "always"; InvalidArgument quotes the value.
using ::supermachine::bake::ParseRestartPolicy;
using ::supermachine::bake::RestartPolicy;
using ::supermachine::bake::ToString;

// A health check run through the agent's exec (Docker's HEALTHCHECK semantics): every
// `interval` the command runs with `timeout`; `retries` consecutive failures make the VM
// unhealthy; failures within `start_period` of the start do not count (a success does).
struct HealthCheck {
  std::vector<std::string> argv;  // empty: no health check
  absl::Duration interval = absl::Seconds(30);
  absl::Duration timeout = absl::Seconds(30);
  uint32_t retries = 3;
  absl::Duration start_period = absl::ZeroDuration();
  bool enabled() const { return !argv.empty(); }
  bool operator==(const HealthCheck&) const = default;
};
// The store's health_json column: "" for no check, else {"argv":[...],"interval_ms":...,...}.
std::string HealthCheckToJson(const HealthCheck& check);
absl::StatusOr<HealthCheck> HealthCheckFromJson(absl::string_view json);
// InvalidArgument when a set check has a non-positive interval/timeout or zero retries.
absl::Status ValidateHealthCheck(const HealthCheck& check);

// Values are fixed: the metrics refresh counts VMs per state by index.
enum class HealthState { kNone = 0, kStarting = 1, kHealthy = 2, kUnhealthy = 3 };
const char* HealthStateName(HealthState state);  // "", "starting", "healthy", "unhealthy"

// How a VM's workload last stopped. cause: "exited", "killed" (by a signal), "worker_crash",
// "unhealthy" (stopped by the supervisor after failed health checks), or another store end
// cause name.
struct ExitReport {
  std::string cause = "exited";
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;
  absl::Time at;
  // Anything but a clean exit 0 is a failure (what on-failure restarts).
  bool failure() const { return cause != "exited" || exit_code.value_or(0) != 0; }
  // "exited 1", "killed by signal 9", "worker_crash", "unhealthy".
  std::string ToString() const;
  bool operator==(const ExitReport&) const = default;
};
// The workload exit the agent reported, in these terms.
ExitReport FromWorkloadExit(const agent::ExitInfo& exit, absl::Time at);

// What a VM is supervised with; persisted with the VM (store migration 4) so a restarted
// daemon re-adopts it with the same policy and count.
struct SuperviseSpec {
  RestartPolicy policy;
  HealthCheck health;
  uint32_t restarts = 0;  // restarts so far (attempts, successful or not)
  std::optional<ExitReport> last_exit;
  // Nothing to supervise: the VM behaves as an unsupervised one.
  bool empty() const { return policy.kind == RestartPolicy::Kind::kNo && !health.enabled(); }
};

struct SupervisionStatus {
  SuperviseSpec spec;
  HealthState health = HealthState::kNone;
  bool restarting = false;  // an exit was seen and a restart is scheduled
  absl::Time restart_at;    // when restarting
  bool exited = false;      // an exit was seen and the policy does not restart
};

struct SupervisorHooks {
  std::function<absl::Time()> now;
  // Replaces VM `id` by a fresh restore of its snapshot (same name, ports, labels, egress),
  // recording `next` with it; returns the new VM's id. On error the VM is retried after the
  // next backoff step (the attempt counts against on-failure's max).
  std::function<absl::StatusOr<std::string>(const std::string& id, const SuperviseSpec& next)>
      restart;
  // The policy does not restart VM `id` after `exit`: stop it and journal its end.
  std::function<void(const std::string& id, const ExitReport& exit)> give_up;
  // Runs `check` in VM `id` (bounded by check.timeout). An error counts as a failed check.
  std::function<absl::StatusOr<agent::ExitInfo>(const std::string& id, const HealthCheck& check)>
      run_check;
  // Optional observers (metrics, logs).
  // on_health: the VM's health state changed; `check` says how the check that changed it
  // ended (DescribeCheck).
  std::function<void(const std::string& id, HealthState state, const std::string& check)>
      on_health;
  std::function<void(const std::string& old_id, const absl::StatusOr<std::string>& new_id)>
      on_restart;
};

// How a health check run ended, for logs: "passed", else the exit as agent::ExitInfo says it
// ("exited 1", "killed by signal 9 (timed out)"), or "could not run: <why>".
std::string DescribeCheck(const absl::StatusOr<agent::ExitInfo>& result);

// The delay before restart number `streak` + 1 of a run of quick failures.
absl::Duration RestartBackoff(uint32_t streak);

class Supervisor {
 public:
  explicit Supervisor(SupervisorHooks hooks) : hooks_(std::move(hooks)) {}
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts supervising VM `id`, started (restored or re-adopted) at `started`. An empty spec
  // is ignored. A watched id is replaced.
  void Watch(const std::string& id, const SuperviseSpec& spec, absl::Time started);
  // Stops supervising (the VM was released). Pending actions for it are dropped.
  void Forget(const std::string& id);
  // The VM's workload stopped (agent report) or its worker died. The first report per run
  // counts; the decision is carried out by the next Tick. Unknown ids are ignored.
  void ReportExit(const std::string& id, const ExitReport& exit);
  // Carries out give-ups and due restarts, then runs due health checks.
  void Tick();

  bool Watching(const std::string& id) const;
  // True when `id` is watched with a restart policy (its worker's death is the supervisor's).
  bool Restarts(const std::string& id) const;
  std::optional<SupervisionStatus> Get(const std::string& id) const;

 private:
  struct Entry {
    SuperviseSpec spec;
    absl::Time started;
    HealthState health = HealthState::kNone;
    absl::Time next_check;
    uint32_t failing = 0;    // consecutive failed checks
    uint32_t streak = 0;     // consecutive quick exits (backoff exponent)
    std::optional<ExitReport> pending;  // exit seen this run
    bool restart = false;    // pending: restart (else give up)
    absl::Time restart_at;
    bool acting = false;     // a hook runs for it outside the lock
  };
  // Caller holds mu_: decides what `exit` means for `e`.
  void DecideLocked(Entry& e, const ExitReport& exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunRestart(const std::string& id);
  void RunCheck(const std::string& id, const HealthCheck& check);

  SupervisorHooks hooks_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> vms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::vm
