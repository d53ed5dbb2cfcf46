// File: pool.h
// Pool: the warm pool of one snapshot. Keeps `min` ready VMs (restored and handshaken, each its
// own worker), refilled one at a time by a background thread after every Acquire; above `min`
// Acquire restores on demand up to `max` VMs alive (ready + starting + handed out). A VM handed
// out never comes back: Release destroys it and only frees its slot. Ready VMs whose worker
// died are dropped (journal: worker crash) and replaced; ready VMs above `min` stop after
// `idle_timeout`.
//
// Acquire: a ready VM (pool hit), else a restore on demand when below max, else wait for a
// refill in flight until the deadline (DeadlineExceeded); at max with nothing starting:
// ResourceExhausted.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/vm/vm_instance.h"

namespace supermachine::vm {

struct PoolConfig {
  uint32_t min = 0;
  uint32_t max = 16;
  absl::Duration idle_timeout = absl::Minutes(10);
  absl::Duration acquire_timeout = absl::Seconds(30);
  // Bound on one background restore (spawn → agent ack).
  absl::Duration restore_timeout = absl::Seconds(60);
};

// Snapshot of a pool's counters (metrics, Health).
struct PoolStats {
  uint32_t ready = 0;
  uint32_t starting = 0;
  uint32_t in_use = 0;
  std::string last_refill_error;
};

struct Acquired {
  std::unique_ptr<VmInstance> vm;
  bool pool_hit = false;
};

class Pool {
 public:
  // Makes one VM: restore + handshake + journal (the launcher, with the snapshot filled in).
  using Factory =
      std::function<absl::StatusOr<std::unique_ptr<VmInstance>>(absl::Time deadline)>;
  // Records the end of a VM the pool destroyed or found dead (the journal).
  using EndSink = std::function<void(const std::string& vm_id, const VmEnd& end)>;

  Pool(std::string snapshot, PoolConfig config, Factory factory, EndSink on_end);
  ~Pool();  // Stops the refill thread and every ready VM (ended as released).
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // `deadline` is absl::InfiniteFuture() for "the pool's acquire_timeout".
  absl::StatusOr<Acquired> Acquire(absl::Time deadline);
  // A handed-out VM ended (released or died): frees its slot and wakes the refill.
  void Done();
  // A VM re-adopted after a daemon restart joins as handed out (counts against max).
  void Adopted();

  PoolStats Stats() const;
  const std::string& snapshot() const { return snapshot_; }
  const PoolConfig& config() const { return config_; }

 private:
  struct Ready {
    std::unique_ptr<VmInstance> vm;
    absl::Time since;
  };
  void RefillLoop();
  // Caller holds mu_: live VMs counted against max.
  uint32_t AliveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<uint32_t>(ready_.size()) + starting_ + in_use_;
  }
  // Drops dead ready VMs and idle ones above min; returns them to stop outside the lock.
  std::vector<std::unique_ptr<VmInstance>> ReapLocked(std::vector<std::pair<std::string, VmEnd>>* ends)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string snapshot_;
  const PoolConfig config_;
  Factory factory_;
  EndSink on_end_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // ready_ grew, a slot freed, stopping_
  std::deque<Ready> ready_ ABSL_GUARDED_BY(mu_);
  uint32_t starting_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time retry_after_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread refill_;
};

}  // namespace supermachine::vm
