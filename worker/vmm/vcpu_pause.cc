// File: vcpu_pause.cc
// Parking and releasing vCPU threads.
#include "worker/vmm/vcpu_pause.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace supermachine::vmm {

void PauseGate::RequestPause(const std::vector<kvm_run*>& runs) {
  std::lock_guard lock(mu_);
  pause_requested_ = true;
  leave_run_.store(true, std::memory_order_release);
  for (kvm_run* run : runs) {
    run->immediate_exit = 1;
  }
}

absl::Status PauseGate::WaitParked(size_t threads, absl::Duration timeout) {
  std::unique_lock lock(mu_);
  const bool done = cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] {
    return exited_ > 0 || parked_ >= threads;
  });
  if (exited_ > 0) {
    return absl::FailedPreconditionError("the VM is ending (a vCPU has stopped)");
  }
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat(
        threads - parked_, " of ", threads, " vCPUs did not stop within ",
        absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

void PauseGate::Release() {
  {
    std::lock_guard lock(mu_);
    pause_requested_ = false;
    if (!stopping_.load(std::memory_order_acquire)) {
      leave_run_.store(false, std::memory_order_release);
    }
  }
  cv_.notify_all();
}

void PauseGate::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_.store(true, std::memory_order_release);
    leave_run_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

bool PauseGate::paused() const {
  std::lock_guard lock(mu_);
  return pause_requested_;
}

void PauseGate::Park(kvm_run* run) {
  std::unique_lock lock(mu_);
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return !pause_requested_ || stopping_.load(std::memory_order_acquire); });
  --parked_;
  run->immediate_exit = 0;
}

void PauseGate::MarkExited() {
  {
    std::lock_guard lock(mu_);
    ++exited_;
  }
  cv_.notify_all();
}

}  // namespace supermachine::vmm
