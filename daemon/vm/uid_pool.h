// File: uid_pool.h
// UidPool: one unprivileged uid per jailed worker, from the range the daemon config gives
// (worker_uid_range, issue #11; docs/security.md "Worker sandbox"). Firecracker's jailer is
// run with a distinct uid per microVM for the same reason: with a uid of its own, a worker that
// a guest took over cannot signal another VM's worker or open files another worker created,
// even where the jail's file view would not already stop it.
//
// Lifecycle: Acquire hands out a uid that no live lease holds, as a move-only UidLease; the
// uid is free again when the lease is destroyed or Release()d (the launcher does that once the
// worker is reaped). A re-adopted worker (daemon restart, reconcile.h) already runs as some
// uid: MarkTaken holds it so Acquire does not hand it out twice. Leases share the pool's state,
// so a lease may outlive the UidPool object. Thread-safe.
//
// Acquire is next-fit (it continues after the last uid handed out, wrapping at the range's
// end), not lowest-free: a just-freed uid is the last to be reused, which leaves the most time
// for anything the old worker left behind (a process still dying after its keeper was killed,
// files in its VM directory) to go before another VM runs as that uid.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace supermachine::vm {

namespace internal {
struct UidPoolState;
}  // namespace internal

// A held uid (the worker's gid is the same number, docs/security.md). Empty when
// default-constructed, moved from or released.
class UidLease {
 public:
  UidLease() = default;
  ~UidLease() { Release(); }
  UidLease(UidLease&& other) noexcept;
  UidLease& operator=(UidLease&& other) noexcept;
  UidLease(const UidLease&) = delete;
  UidLease& operator=(const UidLease&) = delete;

  bool held() const { return state_ != nullptr; }
  uint32_t uid() const { return uid_; }  // 0 when !held()
  // Gives the uid back to its pool now (idempotent).
  void Release();

 private:
  friend class UidPool;
  UidLease(std::shared_ptr<internal::UidPoolState> state, uint32_t uid)
      : state_(std::move(state)), uid_(uid) {}
  std::shared_ptr<internal::UidPoolState> state_;
  uint32_t uid_ = 0;
};

class UidPool {
 public:
  // The uids first .. first + count - 1 (the config has checked: first > 0, count > 0, no
  // overflow past 2^32 - 2).
  UidPool(uint32_t first, uint32_t count);

  // A uid no lease holds; ResourceExhausted naming worker_uid_range when every one is held.
  absl::StatusOr<UidLease> Acquire();

  // Holds `uid` for a worker that already runs as it (re-adoption). Holders are counted: two
  // adopted workers with one uid (e.g. both started under an earlier single worker_uid) keep it
  // taken until both are gone. A uid outside the range is not the pool's to hand out: the
  // lease is empty.
  UidLease MarkTaken(uint32_t uid);

  // How many distinct uids of the range are held.
  uint32_t InUse() const;

 private:
  std::shared_ptr<internal::UidPoolState> state_;
};

}  // namespace supermachine::vm
