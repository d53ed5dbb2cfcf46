// File: clock.h
// The time seam for caches with expiry (tokens, ref→digest): tests inject a fake.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace supermachine::image {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace supermachine::image
