// File: supervisor.cc
#include "daemon/vm/supervisor.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace supermachine::vm {
namespace {

// Bounds what a persisted or requested check can ask for: a check every millisecond would
// keep the agent busy, a timeout beyond a day is a typo. The same bounds as a baked-in health
// check's interval (daemon/bake/specs.h), so a check that bakes also runs supervised.
constexpr absl::Duration kMinCheckInterval = absl::Milliseconds(bake::kMinHealthIntervalMs);
constexpr absl::Duration kMaxCheckDuration = absl::Milliseconds(bake::kMaxHealthIntervalMs);

absl::Status Invalid(absl::string_view what, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, " '", value, "': ", why));
}

}  // namespace

std::string HealthCheckToJson(const HealthCheck& check) {
  if (!check.enabled()) {
    return "";
  }
  nlohmann::json j = {{"argv", check.argv},
                      {"interval_ms", absl::ToInt64Milliseconds(check.interval)},
                      {"timeout_ms", absl::ToInt64Milliseconds(check.timeout)},
                      {"retries", check.retries},
                      {"start_period_ms", absl::ToInt64Milliseconds(check.start_period)}};
  return j.dump();
}

absl::StatusOr<HealthCheck> HealthCheckFromJson(absl::string_view json) {
  if (json.empty()) {
    return HealthCheck{};
  }
  nlohmann::json j = nlohmann::json::parse(std::string(json), nullptr, /*allow_exceptions=*/false);
  auto bad = [&] { return Invalid("health check", json, "not the JSON this daemon writes"); };
  if (!j.is_object() || !j.value("argv", nlohmann::json()).is_array()) {
    return bad();
  }
  HealthCheck out;
  for (const nlohmann::json& a : j["argv"]) {
    if (!a.is_string()) {
      return bad();
    }
    out.argv.push_back(a.get<std::string>());
  }
  for (const char* key : {"interval_ms", "timeout_ms", "retries", "start_period_ms"}) {
    if (!j.value(key, nlohmann::json()).is_number_unsigned()) {
      return bad();
    }
  }
  out.interval = absl::Milliseconds(j["interval_ms"].get<int64_t>());
  out.timeout = absl::Milliseconds(j["timeout_ms"].get<int64_t>());
  out.retries = j["retries"].get<uint32_t>();
  out.start_period = absl::Milliseconds(j["start_period_ms"].get<int64_t>());
  if (absl::Status st = ValidateHealthCheck(out); !st.ok()) {
    return st;
  }
  return out;
}

absl::Status ValidateHealthCheck(const HealthCheck& check) {
  if (!check.enabled()) {
    return absl::OkStatus();
  }
  if (check.argv[0].empty()) {
    return absl::InvalidArgumentError("the health check command is empty");
  }
  auto in_range = [](absl::Duration d) { return d >= kMinCheckInterval && d <= kMaxCheckDuration; };
  if (!in_range(check.interval)) {
    return Invalid("health check interval", absl::FormatDuration(check.interval),
                   "must be from 100ms to 24h");
  }
  if (!in_range(check.timeout)) {
    return Invalid("health check timeout", absl::FormatDuration(check.timeout),
                   "must be from 100ms to 24h");
  }
  if (check.retries == 0 || check.retries > 1000) {
    return Invalid("health check retries", absl::StrCat(check.retries), "must be from 1 to 1000");
  }
  if (check.start_period < absl::ZeroDuration() || check.start_period > kMaxCheckDuration) {
    return Invalid("health check start period", absl::FormatDuration(check.start_period),
                   "must be from 0 to 24h");
  }
  return absl::OkStatus();
}

const char* HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kNone:
      return "";
    case HealthState::kStarting:
      return "starting";
    case HealthState::kHealthy:
      return "healthy";
    case HealthState::kUnhealthy:
      return "unhealthy";
  }
  return "";
}

std::string ExitReport::ToString() const {
  if (cause == "exited") {
    return absl::StrCat("exited ", exit_code.value_or(0));
  }
  if (cause == "killed" && signal) {
    return absl::StrCat("killed by signal ", *signal);
  }
  return cause;
}

ExitReport FromWorkloadExit(const agent::ExitInfo& exit, absl::Time at) {
  if (exit.signaled) {
    return ExitReport{.cause = "killed", .signal = exit.signal, .at = at};
  }
  return ExitReport{.cause = "exited", .exit_code = exit.code, .at = at};
}

std::string DescribeCheck(const absl::StatusOr<agent::ExitInfo>& result) {
  if (!result.ok()) {
    return absl::StrCat("could not run: ", result.status().message());
  }
  if (result->success() && !result->timed_out) {
    return "passed";
  }
  return result->ToString();  // "exited 1", "killed by signal 9 (timed out)"
}

absl::Duration RestartBackoff(uint32_t streak) {
  absl::Duration d = kRestartBackoffFirst;
  for (uint32_t i = 0; i < streak && d < kRestartBackoffMax; ++i) {
    d *= 2;
  }
  return std::min(d, kRestartBackoffMax);
}

void Supervisor::Watch(const std::string& id, const SuperviseSpec& spec, absl::Time started) {
  if (spec.empty()) {
    return;
  }
  Entry e{.spec = spec, .started = started};
  if (spec.health.enabled()) {
    e.health = HealthState::kStarting;
    e.next_check = started + spec.health.interval;
  }
  absl::MutexLock lock(&mu_);
  vms_.insert_or_assign(id, std::move(e));
}

void Supervisor::Forget(const std::string& id) {
  absl::MutexLock lock(&mu_);
  vms_.erase(id);
}

bool Supervisor::Watching(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  return vms_.contains(id);
}

bool Supervisor::Restarts(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(id);
  return it != vms_.end() && it->second.spec.policy.kind != RestartPolicy::Kind::kNo;
}

std::optional<SupervisionStatus> Supervisor::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) {
    return std::nullopt;
  }
  const Entry& e = it->second;
  SupervisionStatus s{.spec = e.spec, .health = e.health};
  if (e.pending) {
    s.spec.last_exit = e.pending;
    s.restarting = e.restart;
    s.restart_at = e.restart_at;
    s.exited = !e.restart;
  }
  return s;
}

void Supervisor::DecideLocked(Entry& e, const ExitReport& exit) {
  e.pending = exit;
  const RestartPolicy& p = e.spec.policy;
  bool restart = p.kind == RestartPolicy::Kind::kAlways ||
                 (p.kind == RestartPolicy::Kind::kOnFailure && exit.failure());
  if (restart && p.kind == RestartPolicy::Kind::kOnFailure && p.max_retries != 0 &&
      e.spec.restarts >= p.max_retries) {
    restart = false;
  }
  e.restart = restart;
  if (!restart) {
    return;
  }
  // A VM that stayed up long enough was not crash-looping: start the backoff over.
  if (exit.at - e.started >= kRestartBackoffReset) {
    e.streak = 0;
  }
  e.restart_at = hooks_.now() + RestartBackoff(e.streak);
  ++e.streak;
}

void Supervisor::ReportExit(const std::string& id, const ExitReport& exit) {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(id);
  if (it == vms_.end() || it->second.pending) {
    return;
  }
  DecideLocked(it->second, exit);
}

void Supervisor::Tick() {
  const absl::Time now = hooks_.now();
  std::vector<std::pair<std::string, ExitReport>> give_ups;
  std::vector<std::string> restarts;
  std::vector<std::pair<std::string, HealthCheck>> checks;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = vms_.begin(); it != vms_.end();) {
      Entry& e = it->second;
      if (e.acting) {
        ++it;
        continue;
      }
      if (e.pending && !e.restart) {
        give_ups.emplace_back(it->first, *e.pending);
        it = vms_.erase(it);
        continue;
      }
      if (e.pending && now >= e.restart_at) {
        e.acting = true;
        restarts.push_back(it->first);
      } else if (!e.pending && e.spec.health.enabled() && now >= e.next_check) {
        e.acting = true;
        checks.emplace_back(it->first, e.spec.health);
      }
      ++it;
    }
  }
  for (const auto& [id, exit] : give_ups) {
    hooks_.give_up(id, exit);
  }
  for (const std::string& id : restarts) {
    RunRestart(id);
  }
  for (const auto& [id, check] : checks) {
    RunCheck(id, check);
  }
}

void Supervisor::RunRestart(const std::string& id) {
  SuperviseSpec next;
  {
    absl::MutexLock lock(&mu_);
    auto it = vms_.find(id);
    if (it == vms_.end()) {
      return;
    }
    next = it->second.spec;
    ++next.restarts;
    next.last_exit = it->second.pending;
  }
  absl::StatusOr<std::string> new_id = hooks_.restart(id, next);
  if (hooks_.on_restart) {
    hooks_.on_restart(id, new_id);
  }
  const absl::Time now = hooks_.now();
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) {
    return;  // released meanwhile
  }
  Entry e = std::move(it->second);
  vms_.erase(it);
  e.acting = false;
  e.spec = next;
  if (!new_id.ok()) {
    if (absl::IsNotFound(new_id.status())) {
      return;  // the VM is gone (released while its restart was due)
    }
    // The attempt counts: a snapshot that no longer restores must not be retried forever
    // under on-failure:N. The exit that led here stays the last one.
    const RestartPolicy& p = e.spec.policy;
    if (p.kind == RestartPolicy::Kind::kOnFailure && p.max_retries != 0 &&
        e.spec.restarts >= p.max_retries) {
      e.restart = false;
    } else {
      e.restart_at = now + RestartBackoff(e.streak);
      ++e.streak;
    }
    vms_.insert_or_assign(id, std::move(e));
    return;
  }
  e.started = now;
  e.pending.reset();
  e.restart = false;
  e.failing = 0;
  e.health = e.spec.health.enabled() ? HealthState::kStarting : HealthState::kNone;
  e.next_check = now + e.spec.health.interval;
  vms_.insert_or_assign(*new_id, std::move(e));
}

void Supervisor::RunCheck(const std::string& id, const HealthCheck& check) {
  absl::StatusOr<agent::ExitInfo> result = hooks_.run_check(id, check);
  const bool passed = result.ok() && result->success() && !result->timed_out;
  const absl::Time now = hooks_.now();
  HealthState state;
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = vms_.find(id);
    if (it == vms_.end()) {
      return;
    }
    Entry& e = it->second;
    e.acting = false;
    if (e.pending) {
      return;  // the workload stopped while the check ran: the exit decides
    }
    e.next_check = now + check.interval;
    const HealthState before = e.health;
    if (passed) {
      e.health = HealthState::kHealthy;
      e.failing = 0;
    } else if (e.health == HealthState::kStarting && now - e.started < check.start_period) {
      // Still starting up: failures do not count (a success ends the start period early).
    } else if (++e.failing >= check.retries) {
      e.health = HealthState::kUnhealthy;
    }
    state = e.health;
    changed = state != before;
    if (state == HealthState::kUnhealthy && e.spec.policy.kind != RestartPolicy::Kind::kNo) {
      DecideLocked(e, ExitReport{.cause = "unhealthy", .at = now});
    }
  }
  if (changed && hooks_.on_health) {
    hooks_.on_health(id, state, DescribeCheck(result));
  }
}

}  // namespace supermachine::vm
