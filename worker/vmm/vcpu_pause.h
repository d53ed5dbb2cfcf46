// File: vcpu_pause.h
// PauseGate: parks every vCPU thread at a safe point and lets them go again. A snapshot needs
// all vCPUs outside KVM_RUN with no half-done I/O; the controller asks, kicks each thread out
// of KVM_RUN (kick signal + immediate_exit), and waits until all have parked.
//
// Protocol for a vCPU thread (see Vm::Run):
//   RunVcpu(vcpu, handlers, gate.leave_run())  // returns when leave_run() is set
//   if (gate.stopping()) exit
//   vcpu.Run()   // immediate_exit is 1: completes a pending PIO/MMIO read, returns at once
//   gate.Park(vcpu.run())  // until Release; clears immediate_exit before returning
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace supermachine::vmm {

class PauseGate {
 public:
  // The flag RunVcpu watches: set while a pause or a stop is asked for.
  const std::atomic<bool>& leave_run() const { return leave_run_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  // Controller: asks every vCPU in `runs` to leave KVM_RUN (sets immediate_exit under the
  // gate's lock, so it cannot race with a thread clearing it on its way out of Park). The
  // caller then kicks the threads.
  void RequestPause(const std::vector<kvm_run*>& runs);
  // Controller: waits until `threads` vCPU threads have parked. FailedPrecondition when one has
  // exited instead (the VM is ending), DeadlineExceeded after `timeout`.
  absl::Status WaitParked(size_t threads, absl::Duration timeout);
  // Controller: lets parked threads run again.
  void Release();
  // Controller: the VM is ending; parked threads return from Park and must exit.
  void Stop();
  bool paused() const;

  // vCPU thread: blocks until Release or Stop. Clears run->immediate_exit before returning
  // (under the lock: see RequestPause).
  void Park(kvm_run* run);
  // vCPU thread: it is exiting for good (counts for WaitParked).
  void MarkExited();

 private:
  std::atomic<bool> leave_run_{false};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool pause_requested_ ABSL_GUARDED_BY(mu_) = false;
  size_t parked_ ABSL_GUARDED_BY(mu_) = 0;
  size_t exited_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace supermachine::vmm
