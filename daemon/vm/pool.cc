// File: pool.cc
#include "daemon/vm/pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace supermachine::vm {
namespace {

// How often the refill thread looks at ready VMs (worker death, idle timeout) when nothing
// wakes it earlier.
constexpr absl::Duration kHousekeeping = absl::Milliseconds(200);
constexpr absl::Duration kMinBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);
constexpr absl::Duration kStopGrace = absl::Seconds(2);

}  // namespace

Pool::Pool(std::string snapshot, PoolConfig config, Factory factory, EndSink on_end)
    : snapshot_(std::move(snapshot)),
      config_(config),
      factory_(std::move(factory)),
      on_end_(std::move(on_end)) {
  refill_ = std::thread([this] { RefillLoop(); });
}

Pool::~Pool() {
  std::deque<Ready> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  refill_.join();
  {
    absl::MutexLock lock(&mu_);
    left.swap(ready_);
  }
  for (Ready& r : left) {
    r.vm->Stop(kStopGrace);
    on_end_(r.vm->id(), VmEnd{.cause = store::EndCause::kReleased});
  }
}

std::vector<std::unique_ptr<VmInstance>> Pool::ReapLocked(
    std::vector<std::pair<std::string, VmEnd>>* ends) {
  std::vector<std::unique_ptr<VmInstance>> out;
  const absl::Time now = absl::Now();
  for (auto it = ready_.begin(); it != ready_.end();) {
    if (std::optional<VmEnd> end = it->vm->CheckExited()) {
      ends->emplace_back(it->vm->id(), *end);
      out.push_back(std::move(it->vm));
      it = ready_.erase(it);
      continue;
    }
    ++it;
  }
  // Idle VMs above min stop, oldest first (the front is the oldest).
  while (ready_.size() > config_.min && now - ready_.front().since >= config_.idle_timeout) {
    ends->emplace_back(ready_.front().vm->id(), VmEnd{.cause = store::EndCause::kReleased});
    out.push_back(std::move(ready_.front().vm));
    ready_.pop_front();
  }
  return out;
}

void Pool::RefillLoop() {
  while (true) {
    std::vector<std::unique_ptr<VmInstance>> dropped;
    std::vector<std::pair<std::string, VmEnd>> ends;
    bool launch = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
      dropped = ReapLocked(&ends);
      const absl::Time now = absl::Now();
      launch = ready_.size() + starting_ < config_.min && AliveLocked() < config_.max &&
               now >= retry_after_;
      if (launch) {
        ++starting_;
      } else if (dropped.empty()) {
        cv_.WaitWithTimeout(&mu_, kHousekeeping);
        continue;
      }
    }
    for (auto& vm : dropped) {
      vm->Stop(kStopGrace);
    }
    for (auto& [id, end] : ends) {
      on_end_(id, end);
    }
    if (!launch) {
      continue;
    }
    absl::StatusOr<std::unique_ptr<VmInstance>> vm =
        factory_(absl::Now() + config_.restore_timeout);
    absl::MutexLock lock(&mu_);
    --starting_;
    if (vm.ok()) {
      ready_.push_back({.vm = std::move(*vm), .since = absl::Now()});
      last_error_.clear();
      backoff_ = absl::ZeroDuration();
    } else {
      // A snapshot that cannot restore must not turn into a hot loop of workers.
      last_error_ = std::string(vm.status().message());
      backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
      retry_after_ = absl::Now() + backoff_;
    }
    cv_.SignalAll();
  }
}

absl::StatusOr<Acquired> Pool::Acquire(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    deadline = absl::Now() + config_.acquire_timeout;
  }
  absl::MutexLock lock(&mu_);
  while (true) {
    // A dead ready VM must not be handed out; the refill thread records and replaces it.
    for (auto it = ready_.begin(); it != ready_.end(); ++it) {
      if (it->vm->CheckExited()) {
        continue;
      }
      // CheckExited reaped nothing for this one: it is alive. Take the first live one.
      Acquired out{.vm = std::move(it->vm), .pool_hit = true};
      ready_.erase(it);
      ++in_use_;
      cv_.SignalAll();  // the refill thread replaces it
      return out;
    }
    if (!ready_.empty()) {
      // Only dead ones left: let the refill thread account for them, then look again.
      cv_.SignalAll();
    }
    if (AliveLocked() < config_.max) {
      ++starting_;
      mu_.Unlock();
      absl::StatusOr<std::unique_ptr<VmInstance>> vm = factory_(deadline);
      mu_.Lock();
      --starting_;
      cv_.SignalAll();
      if (!vm.ok()) {
        return vm.status();
      }
      ++in_use_;
      return Acquired{.vm = std::move(*vm), .pool_hit = false};
    }
    if (starting_ == 0 && ready_.empty()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "snapshot '", snapshot_, "' has reached its pool max of ", config_.max,
          " VMs, all in use; release one (smctl rm VM) or raise pools.", snapshot_,
          ".max in the daemon config"));
    }
    if (cv_.WaitWithDeadline(&mu_, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no VM of snapshot '", snapshot_, "' became ready before the acquire deadline (",
          config_.max, " VMs alive, the pool's max", last_error_.empty() ? "" : "; last restore error: ",
          last_error_, ")"));
    }
  }
}

void Pool::Done() {
  absl::MutexLock lock(&mu_);
  if (in_use_ > 0) {
    --in_use_;
  }
  cv_.SignalAll();
}

void Pool::Adopted() {
  absl::MutexLock lock(&mu_);
  ++in_use_;
}

PoolStats Pool::Stats() const {
  absl::MutexLock lock(&mu_);
  return PoolStats{.ready = static_cast<uint32_t>(ready_.size()),
                   .starting = starting_,
                   .in_use = in_use_,
                   .last_refill_error = last_error_};
}

}  // namespace supermachine::vm
