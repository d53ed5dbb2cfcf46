// File: fake_clock.h
// A Clock tests move by hand.
#pragma once

#include "absl/synchronization/mutex.h"
#include "daemon/image/clock.h"

namespace supermachine::image::testing {

class FakeClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

}  // namespace supermachine::image::testing
