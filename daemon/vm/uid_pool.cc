// File: uid_pool.cc
#include "daemon/vm/uid_pool.h"

#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace supermachine::vm {
namespace internal {

struct UidPoolState {
  UidPoolState(uint32_t first_uid, uint32_t uid_count) : first(first_uid), count(uid_count) {}
  bool InRange(uint32_t uid) const { return uid >= first && uid - first < count; }

  const uint32_t first;
  const uint32_t count;
  absl::Mutex mu;
  // uid → number of leases holding it; only uids of the range, never a zero count.
  std::map<uint32_t, uint32_t> holders ABSL_GUARDED_BY(mu);
  uint32_t next ABSL_GUARDED_BY(mu) = 0;  // offset in the range where Acquire looks first
};

}  // namespace internal

UidLease::UidLease(UidLease&& other) noexcept
    : state_(std::move(other.state_)), uid_(other.uid_) {
  other.state_ = nullptr;
  other.uid_ = 0;
}

UidLease& UidLease::operator=(UidLease&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
    uid_ = other.uid_;
    other.state_ = nullptr;
    other.uid_ = 0;
  }
  return *this;
}

void UidLease::Release() {
  if (state_ == nullptr) {
    return;
  }
  {
    absl::MutexLock lock(&state_->mu);
    auto it = state_->holders.find(uid_);
    if (it != state_->holders.end() && --it->second == 0) {
      state_->holders.erase(it);
    }
  }
  state_ = nullptr;
  uid_ = 0;
}

UidPool::UidPool(uint32_t first, uint32_t count)
    : state_(std::make_shared<internal::UidPoolState>(first, count)) {}

absl::StatusOr<UidLease> UidPool::Acquire() {
  internal::UidPoolState& s = *state_;
  absl::MutexLock lock(&s.mu);
  if (s.holders.size() >= s.count) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "every uid of worker_uid_range (", s.count, " from ", s.first,
        ") is held by a live worker: release VMs or give worker_uid_range a larger count"));
  }
  // A free uid exists (fewer holders than uids), so this ends within `count` steps.
  for (uint32_t i = 0; i < s.count; ++i) {
    const uint32_t offset = (s.next + i) % s.count;
    const uint32_t uid = s.first + offset;
    if (s.holders.count(uid) == 0) {
      s.holders[uid] = 1;
      s.next = (offset + 1) % s.count;
      return UidLease(state_, uid);
    }
  }
  return absl::InternalError("worker_uid_range: free uid count and holders disagree");
}

UidLease UidPool::MarkTaken(uint32_t uid) {
  internal::UidPoolState& s = *state_;
  if (!s.InRange(uid)) {
    return UidLease();
  }
  absl::MutexLock lock(&s.mu);
  ++s.holders[uid];
  return UidLease(state_, uid);
}

uint32_t UidPool::InUse() const {
  absl::MutexLock lock(&state_->mu);
  return static_cast<uint32_t>(state_->holders.size());
}

}  // namespace supermachine::vm
